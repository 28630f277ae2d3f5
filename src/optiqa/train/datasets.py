"""Building a training run's datasets from its config, which checks the data.

:func:`build_train_datasets`: folders exist, ``gt_size`` fits every training image, LR size x
scale equals the HR size, pretrained-weight files exist, every problem reported at once (nothing
is written). The schema (:mod:`optiqa.train.config`) only describes and checks values; this
module imports nothing from it (the schema's old import path of this function points here).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from optiqa.core.errors import OptiqaError, Problems


def build_train_datasets(cfg) -> dict:
    """The run's datasets, which checks the data: folders exist, ``gt_size`` fits every training
    image, LR size x scale = HR size, pretrained-weight files exist.

    Returns ``{'train': dataset, 'val': dataset or None}``; raises :class:`ConfigError` naming
    the key (``datasets.train: ...``).
    """
    from optiqa.data.datasets import build_sr_dataset

    problems = Problems()  # every missing file and folder at once
    for key in ("pretrain_network_g", "pretrain_network_d"):
        p = getattr(cfg.path, key)
        if p is not None and not Path(p).is_file():
            problems.add(f"path.{key}: {p}: file not found")
    out = {}
    for phase, opts in (("train", cfg.datasets.train), ("val", cfg.datasets.val)):
        if opts is None:
            out[phase] = None
            continue
        kw = {k: v for k, v in dataclasses.asdict(opts).items()
              if v is not None and k not in ("name", "batch_size", "num_worker", "max_images")}
        try:
            out[phase] = build_sr_dataset(kw, scale=cfg.scale, seed=cfg.seed,
                                          train=phase == "train")
        except OptiqaError as e:
            problems.add(f"datasets.{phase}: {e}")
    problems.raise_any()
    return out
