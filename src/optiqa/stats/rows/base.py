"""The :class:`Row` base: a dataclass that writes itself as plain JSON and reads itself back.

``to_json`` gives a plain dict (nested rows as dicts, tuples as lists), the form written to
``analysis.json``. ``from_json`` is strict and typed: a missing required key or an unknown key is
an :class:`~optiqa.core.errors.InputError` naming the row type and the key (and the path of
fields above it), so a typo fails where the row is read, not as a silently empty table cell; a
field annotated with a row type (``PermutationTest | None``, ``list[RankAgreement]``,
``dict[str, DatasetSrcc]``) is read back as that row.

A row may list in ``OMIT_IF_NONE`` fields that its JSON leaves out while they are None (parts
of ``analysis.json`` that only some writers add, e.g. the study's ``key``): the file keeps the
shape it always had.
"""
from __future__ import annotations

import types
import typing
from dataclasses import MISSING, fields
from functools import lru_cache
from typing import ClassVar

from optiqa.core.errors import InputError


class Row:
    """``to_json``/``from_json`` for a dataclass of JSON-able fields and nested rows."""

    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict:
        return {f.name: _dump(v) for f in fields(self)
                if not ((v := getattr(self, f.name)) is None and f.name in self.OMIT_IF_NONE)}

    @classmethod
    def from_json(cls, d):
        name = cls.__name__
        if not isinstance(d, dict):
            raise InputError(f"{name}: expected a JSON object, got {type(d).__name__}")
        spec = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(spec))
        if unknown:
            raise InputError(f"{name}: unknown key {unknown[0]!r} (keys: "
                             f"{', '.join(sorted(spec))})")
        missing = [k for k, f in spec.items() if k not in d and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise InputError(f"{name}: missing key {missing[0]!r}")
        hints = _hints(cls)
        values = {}
        for key, value in d.items():
            try:
                values[key] = _load(hints[key], value)
            except InputError as e:
                raise InputError(f"{name}.{key}: {e}") from None
        return cls(**values)

    @classmethod
    def many(cls, rows) -> list:
        return [cls.from_json(r) for r in rows or []]


@lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _dump(v):
    if isinstance(v, Row):
        return v.to_json()
    if isinstance(v, (list, tuple)):
        return [_dump(x) for x in v]
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    return v


def _load(tp, v):
    """``v`` (parsed JSON) as the annotated type ``tp``: rows, lists, tuples and dicts of them."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if v is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return _load(inner[0], v) if len(inner) == 1 else v
    if isinstance(tp, type) and issubclass(tp, Row):
        return tp.from_json(v)
    if v is None:
        return v
    if origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            raise InputError(f"expected a list, got {type(v).__name__}")
        item = args[0] if args else typing.Any
        out = [_load(item, x) for x in v]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(v, dict):
            raise InputError(f"expected an object, got {type(v).__name__}")
        item = args[1] if len(args) == 2 else typing.Any
        return {k: _load(item, x) for k, x in v.items()}
    return v
