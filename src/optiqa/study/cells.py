"""A study's grid as cells: one training run each, with a stable name derived from its settings.

The grid is ``tasks x fidelity metrics x settings``, where the settings are "no discriminator"
(``include_none``) and every (discriminator, adversarial weight) pair. A cell's name joins its
settings: ``<task>__<fidelity>__none`` or ``<task>__<fidelity>__<discriminator>__w<weight>``
(``sr_x4__ssim__patch__w0.005``; ``__r<ratio>`` when ``adversarial.relative`` makes the weight the
adversarial/fidelity gradient ratio, ``sr_x4__ssim__patch__r0.1``), with ``__s<seed>`` for each
replicate when ``train.seeds`` lists seeds (``sr_x4__ssim__none__s1``: the same cell trained with
seed 1; the shared pre-training is not replicated); it never depends on the order of the config, so
adding a metric or a weight adds cells and leaves the others' names (and finished runs) alone.

A cell's training config is the base config with, in order: the study's ``train.overrides``; the
task (``scale`` and the degradation making the inputs); the training data; the fidelity term
(``train.fidelity_opt``); the discriminator and adversarial weight (``network_d``,
``train.gan_opt.weight`` and ``relative``) or none; the shared pre-training's weights as the
generator's start (``path.pretrain_network_g``, relative to the cell's run folder; no L1-only
stage); the ``cells`` overrides whose glob matches the name; and no validation block (the test
images are never looked at during training).
"""
from __future__ import annotations

import copy
import fnmatch
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from optiqa.core.config import apply_overrides, read_yaml
from optiqa.study.config import StudyConfig
from optiqa.study.names import NONE, cell_name, pretrain_name, start_name


@dataclass(frozen=True)
class Cell:
    """One training run of the study's grid."""

    name: str
    task: str
    fidelity: str
    discriminator: str            # a label of adversarial.discriminators, or "none"
    adversarial_weight: float     # 0.0 without a discriminator
    level: str | None             # "patch" | "image" | None
    backbone: str | None          # the discriminator's optiqa backbone, if any
    architecture: str | None      # "conv" | "transformer" | None
    train_config: dict            # the raw training config (YAML mapping) of the run
    seed: int | None = None       # the training seed of a replicate (train.seeds), else None
    relative: bool = False        # adversarial_weight is the gradient ratio (gan_opt.relative)

    @property
    def adversarial(self) -> bool:
        return self.discriminator != NONE

    @property
    def setting_name(self) -> str:
        """The name without its seed: every replicate of one setting shares it."""
        return cell_name(self.task, self.fidelity, self.discriminator, self.adversarial_weight,
                         relative=self.relative)

    def describe(self) -> str:
        if not self.adversarial:
            return f"{self.fidelity}, no discriminator ({self.task})"
        return (f"{self.fidelity} + {self.discriminator} ({self.level}-level"
                f"{', ' + self.backbone if self.backbone else ''}) "
                f"{'gradient ratio' if self.relative else 'w'}={self.adversarial_weight:g} "
                f"({self.task})")


def _settings(cfg: StudyConfig, grid=None):
    """(label, network_d, weight) of the settings, all or those of one ``grids`` entry."""
    labels = grid.discriminators if grid and grid.discriminators else None
    weights = grid.weights if grid and grid.weights else cfg.adversarial.weights
    include_none = NONE in labels if labels else (
        cfg.adversarial.include_none or not cfg.adversarial.discriminators)
    if include_none:
        yield NONE, None, 0.0
    for label, net in cfg.adversarial.discriminators.items():
        if labels and label not in labels:
            continue
        for w in weights:
            yield label, net, float(w)


def grid_points(cfg: StudyConfig):
    """(fidelity metric, label, network_d, weight) of every cell of one task, without repeats,
    in the order of the config."""
    seen = set()
    for grid in cfg.grids or [None]:
        metrics = grid.fidelity if grid and grid.fidelity else cfg.fidelity.metrics
        for metric in metrics:
            for label, net_d, weight in _settings(cfg, grid):
                if (metric, label, weight) not in seen:
                    seen.add((metric, label, weight))
                    yield metric, label, net_d, weight


def setting_label(discriminator: str, weight: float) -> str:
    """The analysis' name of a setting: ``none`` or ``<discriminator>@<weight>``."""
    return NONE if discriminator == NONE else f"{discriminator}@{weight:g}"


def study_grids(cfg: StudyConfig) -> list[dict]:
    """The study's grids as ``{'name', 'fidelity', 'settings'}``: each a full cross product, over
    which pooled groups are defined (:mod:`optiqa.stats.groups`). Without ``grids``, one grid
    ``all`` of every metric and setting."""
    out = []
    for i, grid in enumerate(cfg.grids or [None]):
        metrics = grid.fidelity if grid and grid.fidelity else cfg.fidelity.metrics
        out.append({"name": (grid.name if grid and grid.name else
                             f"grid {i + 1}" if grid else "all"),
                    "fidelity": list(metrics),
                    "settings": [setting_label(label, w) for label, _, w in _settings(cfg, grid)]})
    return out


def _overrides(mapping: dict) -> list[str]:
    """``{key.path: value}`` -> ``['key.path=value', ...]`` with values given as YAML."""
    import yaml

    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in mapping.items()]


def base_train_config(cfg: StudyConfig, task: str) -> dict:
    """The base config with the study's overrides, the task and the training data."""
    from optiqa.train.paths import resolve_raw_paths

    # the base's relative paths are taken from its own folder, as for any config file
    base = resolve_raw_paths(read_yaml(cfg.train.base), Path(cfg.train.base).resolve().parent)
    raw = apply_overrides(base, _overrides(cfg.train.overrides))
    t = cfg.task_opts[task]
    raw["scale"] = t.scale
    net_g = dict(raw.get("network_g") or {})
    for key in ("scale", "upscale"):
        if key in net_g:
            net_g[key] = t.scale
    raw["network_g"] = net_g
    train = dict((raw.get("datasets") or {}).get("train") or {})
    train["dataroot_gt"] = cfg.data.train
    train.pop("dataroot_lq", None)
    if cfg.data.train_lq:
        train["dataroot_lq"] = cfg.data.train_lq
    if t.degradation is not None:
        train["degradation"] = t.degradation
    raw["datasets"] = {"train": train}
    raw["val"] = None
    raw["seed"] = cfg.seed if "seed" not in cfg.train.overrides else raw.get("seed", cfg.seed)
    return raw


def pretrain_config(cfg: StudyConfig, task: str) -> dict:
    """The shared L1-only pre-training of ``task``'s generator (no fidelity, no discriminator)."""
    raw = base_train_config(cfg, task)
    p = cfg.train.pretrain
    raw = apply_overrides(raw, _overrides(p.overrides) if p else [])
    train = dict(raw.get("train") or {})
    train.update(total_iter=p.total_iter if p else 1, pixel_only_iter=p.total_iter if p else 1,
                 fidelity_opt=None, gan_opt=None)
    train["pixel_opt"] = {"weight": 1.0}
    raw["train"] = train
    raw["network_d"] = None
    raw["name"] = pretrain_name(task)
    return raw


def shared_starts(cfg: StudyConfig, cells) -> dict[str, str]:
    """``{start__<task>: path}``: a generator file every cell of a task starts from
    (``path.pretrain_network_g``, e.g. the official SwinIR PSNR model), evaluated as a baseline
    so that each cell's change from its start is visible. The study's own pre-training is
    evaluated as ``pretrain__<task>`` instead."""
    out = {}
    if cfg.train.pretrain is not None:
        return out
    for task in cfg.tasks:
        paths = {((c.train_config.get("path") or {}).get("pretrain_network_g"))
                 for c in cells if c.task == task}
        if len(paths) == 1 and None not in paths:
            out[start_name(task)] = paths.pop()
    return out


def pretrained_weights(task: str, cfg: StudyConfig) -> str:
    """Where the pre-training of ``task`` leaves its final generator, as a cell's config names
    it: relative to the cell's run folder (``runs/<cell>/``), so that neither the cells' configs
    nor their hashes depend on where the study folder lies."""
    from optiqa.core.runs import RunFolder

    pretrain = RunFolder.in_study("", pretrain_name(task))
    return os.path.relpath(pretrain.model_path("g", cfg.train.pretrain.total_iter),
                           RunFolder.in_study("", "cell").root)


def expand_cells(cfg: StudyConfig) -> list[Cell]:
    """Every cell of the grid, in a stable order (task, fidelity metric, setting)."""
    from optiqa.nets.discriminators import describe_discriminator

    cells = []
    seeds = list(cfg.train.seeds) or [None]
    for task in cfg.tasks:
        base = base_train_config(cfg, task)
        for (metric, label, net_d, weight), seed in itertools.product(grid_points(cfg), seeds):
            relative = cfg.adversarial.relative and net_d is not None
            name = cell_name(task, metric, label, weight, seed, relative)
            raw = copy.deepcopy(base)
            if seed is not None:     # a replicate: its own initialisation and data order
                raw["seed"] = seed
            train = dict(raw.get("train") or {})
            train["fidelity_opt"] = {"metric": metric, "weight": cfg.fidelity.weight}
            gan = dict(train.get("gan_opt") or {})
            gan["weight"] = weight
            if relative:    # absolute cells' configs (and hashes) stay as they were
                gan["relative"] = True
            train["gan_opt"] = gan if net_d is not None else None
            if cfg.train.pretrain is not None:
                train["pixel_only_iter"] = 0
                raw.setdefault("path", {})
                raw["path"] = dict(raw["path"] or {},
                                   pretrain_network_g=pretrained_weights(task, cfg))
            raw["train"] = train
            raw["network_d"] = copy.deepcopy(net_d)
            for pattern, overrides in cfg.cells.items():
                if fnmatch.fnmatchcase(name, pattern):
                    raw = apply_overrides(raw, _overrides(overrides))
            raw["name"] = name
            d = describe_discriminator(net_d)
            cells.append(Cell(name, task, metric, label, weight, d["level"], d["backbone"],
                              d["architecture"], raw, seed, relative))
    return cells


def select_cells(cells: list[Cell], pattern: str | None) -> list[Cell]:
    """The cells whose name matches a glob (all without one)."""
    return cells if not pattern else [c for c in cells if fnmatch.fnmatchcase(c.name, pattern)]
