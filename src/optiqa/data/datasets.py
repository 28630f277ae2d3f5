"""Every IQA dataset by name: the human-opinion databases and the built-in known-order set.

:func:`load_dataset` is the one entry point the workflows and the command line use;
:mod:`optiqa.data.iqa` reads the databases and :mod:`optiqa.data.synthetic` builds the
known-order set (neither imports the other's loader).
"""
from __future__ import annotations

import os

from optiqa.core.errors import UnknownNameError
from optiqa.data.iqa import DATASETS, IQADataset
from optiqa.data.iqa import load_dataset as load_database
from optiqa.data.synthetic import SYNTHETIC_SPEC, load_synthetic

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
