"""Datasets by name or config, above the modules that read them.

:func:`load_dataset`: every IQA dataset (the human-opinion databases of :mod:`optiqa.data.iqa`
and the built-in known-order set of :mod:`optiqa.data.synthetic`); :func:`build_sr_dataset`: a
restoration dataset from a ``datasets.train`` / ``datasets.val`` config mapping (the SR data of
:mod:`optiqa.data.task_datasets` or a made task test set of :mod:`optiqa.data.testsets`). The modules below
never import each other's loaders.
"""
from __future__ import annotations

import os

from torch.utils.data import Dataset

from optiqa.core.errors import ConfigError, UnknownNameError
from optiqa.data import task_datasets as sr
from optiqa.data.iqa import DATASETS, IQADataset
from optiqa.data.iqa import load_database
from optiqa.data.synthetic import SYNTHETIC_SPEC, load_synthetic
from optiqa.data.testsets import is_testset, open_test_set

SYNTHETIC = SYNTHETIC_SPEC.name


def dataset_names() -> list[str]:
    """``synthetic`` and every database name (without aliases)."""
    return [SYNTHETIC, *DATASETS.names()]


def load_dataset(name: str, root: str | os.PathLike | None = None,
                 meta: str | os.PathLike | None = None, allow_missing: bool = False,
                 **synthetic_options) -> IQADataset:
    """A database (``root`` holds its images, ``meta`` optionally its score file), or
    ``synthetic`` (built in; ``synthetic_options`` such as ``size`` go to
    :func:`optiqa.data.synthetic.load_synthetic`)."""
    if name.lower() == SYNTHETIC:
        return load_synthetic(**synthetic_options)
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, dataset_names(), option="dataset")
    return load_database(name, root=root, meta=meta, allow_missing=allow_missing)


def build_sr_dataset(opts: dict, scale: int, seed: int = 0, train: bool = True) -> Dataset:
    """A dataset from a ``datasets.train`` / ``datasets.val`` config mapping; the loader keys
    (batch_size, num_worker, ...) are accepted and ignored here."""
    keys = sr.TRAIN_KEYS if train else sr.TRAIN_KEYS - {"gt_size", "use_flip", "use_rot",
                                                    "degrade_on_device"}
    unknown = sorted(set(opts) - keys - sr.LOADER_KEYS)
    if unknown:
        raise ConfigError(f"unknown dataset key(s): {', '.join(unknown)}")
    if "dataroot_gt" not in opts:
        raise ConfigError("dataset needs dataroot_gt")
    kw = {k: v for k, v in opts.items() if k in keys}
    if not train:
        if is_testset(opts["dataroot_gt"]):  # a made task test set: used as made
            if opts.get("degradation") is not None or opts.get("dataroot_lq") is not None:
                raise ConfigError(f"{opts['dataroot_gt']} is a task test set (it holds its "
                                  "inputs): give no degradation or dataroot_lq with it")
            return open_test_set(opts["dataroot_gt"], scale)
    cls = sr.SRTrainDataset if train else sr.SRTestDataset
    return cls(scale=scale, seed=seed, **kw)
