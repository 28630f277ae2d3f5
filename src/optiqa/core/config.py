"""Typed configuration: YAML -> nested dataclasses, ``key.path=value`` overrides, validation.

The loader is generic: :func:`load_config` works with any dataclass schema (the training run's
``TrainConfig`` in :mod:`optiqa.train.config`, the study's in :mod:`optiqa.study.config`). Rules:

- an unknown key is a :class:`ConfigError` naming its dotted path (``unknown key
  train.optim_g.lrr (did you mean lr?)``), and so is a value of the wrong type; every problem
  of a config is reported at once (one line each), not one per run;
- overrides ``a.b.c=value`` are applied to the raw mapping before it is typed; ``value`` is
  parsed as YAML (``train.total_iter=20``, ``val.metrics=[psnr_y,lpips_alex]``, ``network_d=null``);
  missing intermediate mappings are created, so an override can add a whole block;
- floats also accept YAML 1.1's dot-less exponent strings (``1e-4`` is a string to PyYAML);
- a dataclass may define ``check(self, path)`` for its own numbers (checks across blocks and
  against the registries live with each schema), each failure one line;
- :func:`save_config` writes the resolved configuration (defaults filled in) atomically, so a run
  folder's ``config.yaml`` describes the run completely (BasicSR copies its YAML likewise).
"""
from __future__ import annotations

import contextvars
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import yaml

from optiqa.core.atomic import atomic_write_text
from optiqa.core.errors import ConfigError, Problems

T = typing.TypeVar("T")
# the Problems that need() records into while a check() runs (None: need() raises)
_NEEDS: contextvars.ContextVar[Problems | None] = contextvars.ContextVar("optiqa_needs",
                                                                         default=None)


# --------------------------------------------------------------------------------------------
# generic loader
# --------------------------------------------------------------------------------------------
def join_path(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp, value, path: str):
    """``value`` checked (and minimally coerced) against annotation ``tp``; errors name ``path``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{path}: a value is required (got null)")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{path}: expected {' or '.join(_type_name(a) for a in args)}, "
                          f"got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, float) and value.is_integer():  # 4.0e5 written for 400000
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp) or (Any,)
        problems, out = Problems(), []
        for i, v in enumerate(value):
            with problems.collect():
                out.append(_convert(arg, v, f"{path}[{i}]"))
        problems.raise_any()
        return out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a schema bug, not user input


def from_mapping(cls: type[T], data, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types name their path.

    Fields without a default are required. After construction, ``obj.check(path)`` runs when the
    class defines it (range checks of its own numbers). Every problem found is reported, not only
    the first: unknown and missing keys, wrong values of every field, and every failed
    :func:`need` of ``check`` (:class:`optiqa.core.errors.Problems`).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    problems = Problems()
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.add(f"unknown key {join_path(path, key)}{hint}; valid keys here: "
                         f"{', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            with problems.collect():
                kwargs[name] = _convert(hints[name], data[name], join_path(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.add(f"missing key {join_path(path, name)}")
    problems.raise_any()
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        token = _NEEDS.set(problems)  # need() records instead of raising: every check runs
        try:
            check(path)
        except ConfigError as e:
            problems.add(e)
        except Exception:
            if not problems:
                raise
            # a consequence of a value already reported (a check that assumed it was valid)
        finally:
            _NEEDS.reset(token)
        problems.raise_any()
    return obj


def to_mapping(obj) -> dict:
    """A dataclass config as plain YAML-able data (tuples become lists)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(dataclasses.asdict(obj))


def config_differences(old: dict | None, new: dict) -> list[str]:
    """``key.path: old -> new`` for every leaf in which two config mappings differ (keys sorted;
    a key missing on one side counts as None there). The one diff behind a resumed run's
    warning and a study's check that a run folder was trained under the cell's config."""
    changed: list[str] = []

    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), join_path(path, k))
        elif a != b:
            changed.append(f"{path}: {a!r} -> {b!r}")
    walk(old or {}, new, "")
    return changed


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (``['a', 'b', 'c']``, YAML-parsed value)."""
    key, eq, text = item.partition("=")
    keys = key.strip().split(".")
    if not eq or not all(k.strip() for k in keys):
        raise ConfigError(f"override {item!r}: expected key.path=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML "
                          f"({str(e).splitlines()[0]})") from None
    glued = _glued_keys(value)
    if glued:
        # YAML reads `{type:swinir}` as the key "type:swinir" without a value
        fixed = text.strip()
        for k in glued:
            fixed = fixed.replace(k, k.replace(":", ": ", 1), 1)
        raise ConfigError(f"override {item!r}: {', '.join(repr(k) for k in glued[:3])} "
                          f"{'is a key' if len(glued) == 1 else 'are keys'} without a value: YAML "
                          f"needs a space after the colon of a mapping; write "
                          f"{key.strip()}={fixed!r}")
    return [k.strip() for k in keys], value


def _glued_keys(value) -> list[str]:
    """Keys like ``type:swinir`` with no value anywhere in a parsed override value."""
    if isinstance(value, dict):
        return [k for k, v in value.items() if v is None and isinstance(k, str) and ":" in k
                and not k.startswith("builtin:")] + \
            [g for v in value.values() for g in _glued_keys(v)]
    if isinstance(value, list):
        return [g for v in value for g in _glued_keys(v)]
    return []


def apply_overrides(raw: dict, overrides) -> dict:
    """Set each ``key.path=value`` in (a copy of) the raw mapping, creating missing mappings."""
    import copy

    raw = copy.deepcopy(raw) if raw else {}
    for item in overrides or ():
        keys, value = parse_override(item)
        node = raw
        for i, key in enumerate(keys[:-1]):
            nxt = node.get(key)
            if nxt is None:
                nxt = node[key] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[:i + 1])} is a value "
                                  f"({nxt!r}), not a mapping")
            node = nxt
        node[keys[-1]] = value
    return raw


def resolve_path(value: str | None, base) -> str | None:
    """A relative path taken from the folder ``base``, as a normalised absolute path (symbolic
    links are kept: the path a user sees); ``builtin:...``, absolute paths and None are kept."""
    import os

    if value is None or str(value).startswith("builtin:") or Path(value).is_absolute():
        return value
    return os.path.normpath(os.path.join(os.path.abspath(base), value))


def read_yaml(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return raw


def load_config(source, schema: type[T], overrides=()) -> T:
    """YAML file (or an already-parsed mapping) + overrides -> ``schema`` instance.

    A schema with a static ``migrate(raw) -> raw`` first brings configs written under older
    names up to date (before the overrides, which use the current names).
    """
    raw = dict(source) if isinstance(source, Mapping) else read_yaml(source)
    migrate = getattr(schema, "migrate", None)
    if callable(migrate):
        raw = migrate(raw)
    return from_mapping(schema, apply_overrides(raw, overrides))


def save_config(cfg, path) -> Path:
    """Write ``cfg`` (a dataclass) as YAML, atomically, in schema order (a file that already
    holds exactly this text is left alone, time stamp included)."""
    text = yaml.safe_dump(to_mapping(cfg), sort_keys=False, default_flow_style=None, width=100)
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return path
    return atomic_write_text(path, text)


def need(ok: bool, path: str, what: str, value) -> bool:
    """``<path>: <what>, got <value>`` unless ``ok`` (for ``check``): recorded when a
    :func:`from_mapping` is collecting its problems, else raised as a :class:`ConfigError`."""
    if not ok:
        message = f"{path}: {what}, got {value!r}"
        problems = _NEEDS.get()
        if problems is None:
            raise ConfigError(message)
        problems.add(message)
    return bool(ok)

