"""Shared fixtures. Tests run offline on the CPU; data in ../shared is optional (skip if absent)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPTIQA_SHARED", REPO.parent / "shared")) / "data"
CALIBRATION = SHARED / "iqa" / "calibration"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data, skipping the test when it is absent (a user's fresh clone)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


@pytest.fixture(scope="session")
def calibration():
    """The five TID2013 pairs and the official scores: (names, dist NCHW, ref NCHW, {metric: [..]})."""
    from optiqa.data.io import read_image

    root = shared_path("iqa", "calibration")
    with open(root / "official_scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    official = {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}
    dist = torch.stack([read_image(root / "dist" / n) for n in names])
    ref = torch.stack([read_image(root / "ref" / n) for n in names])
    return names, dist, ref, official


@pytest.fixture(scope="session")
def astronaut():
    """The built-in astronaut photo at 256 x 256, ``(1, 3, 256, 256)`` in [0, 1] (no download).

    Shared, so tests must not modify it in place. Helpers for other test images and degradations
    are in ``tests/imaging.py``.
    """
    from optiqa.data.samples import load_sample

    return load_sample("astronaut", 256)[None]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
