"""One generic name -> entry registry, used for every kind of named thing in optiqa.

Metrics, backbones, generators, discriminators, IQA datasets and degradations each keep a
:class:`Registry` of specs (data: a dataclass naming a factory and its metadata), filled once from
a table in their own module, not by import-time decorators scattered over files. A user registers
their own entry from their code with :meth:`Registry.register`; unknown names raise
:class:`~optiqa.core.errors.UnknownNameError` with a did-you-mean; :meth:`Registry.names` filters
by glob (``'dists_*'``), as ``timm.list_models`` does.
"""
from __future__ import annotations

import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

from optiqa.core.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` is how error messages call them).

    ``resolver``: an optional ``name -> entry or None`` consulted for names not registered, for
    families whose members follow a pattern (``dists_<backbone>`` exists for every backbone,
    including ones registered later by the user).
    """

    def __init__(self, kind: str, entries: dict[str, T] | None = None,
                 resolver: Callable[[str], T | None] | None = None,
                 resolvable: Callable[[], list[str]] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = dict(entries or {})
        self._resolver = resolver
        self._resolvable = resolvable

    # -- lookup ----------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry called ``name``; :class:`UnknownNameError` (with a did-you-mean) if none."""
        entry = self._entries.get(name)
        if entry is None and self._resolver is not None and isinstance(name, str):
            entry = self._resolver(name)
        if entry is None:
            raise UnknownNameError(self.kind, name, self.names())
        return entry

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name) -> bool:
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names (and those the resolver derives) in order, filtered by a glob."""
        names = list(self._entries)
        if self._resolvable is not None:
            names += [n for n in self._resolvable() if n not in self._entries]
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def items(self) -> list[tuple[str, T]]:
        return [(n, self.get(n)) for n in self.names()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    # -- changes ---------------------------------------------------------------------------
    def register(self, name: str, entry: T, overwrite: bool = False) -> T:
        """Add ``entry`` under ``name``; an existing name needs ``overwrite=True``."""
        if not isinstance(name, str) or not name or any(c in name for c in "*?[] /"):
            raise ConfigError(f"{self.kind} name must be a non-empty word without spaces, "
                              f"slashes or glob characters, got {name!r}")
        if name in self._entries and not overwrite:
            raise ConfigError(f"{self.kind} {name!r} is already registered (pass "
                              "overwrite=True to replace it)")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove a registered entry (e.g. a user's, after a test); returns it."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries.pop(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
