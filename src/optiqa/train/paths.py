"""The paths a training config names, and the one rule for relative ones.

A relative path in a config *file* is taken from the file's folder (:func:`read_train_config`;
the study config follows the same rule), one given as a ``key.path=value`` override from the
working directory, one in a config *mapping* from the folder the caller names (a study cell's:
its run folder). A run's ``config.yaml`` stores paths inside its study folder relative to the run
folder (:meth:`optiqa.core.runs.RunFolder.portable`), so that a study folder can be moved or
copied and its runs still find their files and hash the same.
"""
from __future__ import annotations

from pathlib import Path

from optiqa.train.config import TrainConfig, load_train_config

# every file or folder a training config names (relative ones are resolved by run_training)
PATH_FIELDS = (("datasets", "train", "dataroot_gt"), ("datasets", "train", "dataroot_lq"),
               ("datasets", "val", "dataroot_gt"), ("datasets", "val", "dataroot_lq"),
               ("path", "pretrain_network_g"), ("path", "pretrain_network_d"))


def map_paths(cfg: TrainConfig, fn) -> TrainConfig:
    """A copy of ``cfg`` with ``fn`` applied to every path of :data:`PATH_FIELDS` that is set."""
    import copy

    cfg = copy.deepcopy(cfg)
    for *parents, name in PATH_FIELDS:
        obj = cfg
        for p in parents:
            obj = getattr(obj, p, None)
            if obj is None:
                break
        else:
            if isinstance(getattr(obj, name), str):
                setattr(obj, name, fn(getattr(obj, name)))
    return cfg


def resolve_raw_paths(raw: dict, base) -> dict:
    """A raw (YAML) training config with every relative path of :data:`PATH_FIELDS` taken from
    the folder ``base`` (a copy; other values untouched)."""
    import copy

    from optiqa.core.config import resolve_path

    raw = copy.deepcopy(raw)
    for *parents, name in PATH_FIELDS:
        node = raw
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(name), str):
            node[name] = resolve_path(node[name], base)
    return raw


def read_train_config(path, overrides=()) -> TrainConfig:
    """A training config file: its relative paths are taken from the file's folder (one rule for
    every config file), those of ``key.path=value`` overrides from the working directory (where
    the command was typed); every path of the result is absolute."""
    from optiqa.core.config import read_yaml

    raw = resolve_raw_paths(read_yaml(path), Path(path).resolve().parent)
    return resolved_paths(load_train_config(raw, overrides), Path.cwd())


def resolved_paths(cfg: TrainConfig, base) -> TrainConfig:
    """``cfg`` with every relative path taken from the folder ``base``
    (:func:`optiqa.core.config.resolve_path`)."""
    from optiqa.core.config import resolve_path

    return map_paths(cfg, lambda p: resolve_path(p, base))


def stored_paths(cfg: TrainConfig, run) -> TrainConfig:
    """``cfg`` (paths absolute) as run folder ``run`` stores it: paths inside its study folder
    relative to the run folder (:meth:`optiqa.core.runs.RunFolder.portable`)."""
    return map_paths(cfg, run.portable)
