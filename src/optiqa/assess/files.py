"""Score image files with registered metrics (what ``optiqa score`` runs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from optiqa.data.io import pair_paths, read_image
from optiqa.core.errors import InputError
from optiqa.metrics import create_metric


@dataclass
class PairScores:
    distorted: Path
    reference: Path
    scores: dict[str, float] = field(default_factory=dict)


def load_pair(dist_path: Path, ref_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a pair as ``(1, 3, H, W)`` tensors; a size mismatch names both files."""
    x, ref = read_image(dist_path), read_image(ref_path)
    if x.shape != ref.shape:
        raise InputError(f"{dist_path}: size {x.shape[2]}x{x.shape[1]} differs from its reference "
                         f"{ref_path} ({ref.shape[2]}x{ref.shape[1]})")
    return x[None], ref[None]


@torch.no_grad()
def score_files(metric_names: list[str], distorted, reference, device: str = "cpu",
                progress: bool = True) -> list[PairScores]:
    """Score two files, or two folders paired by name (:func:`optiqa.data.io.pair_paths`).

    All metrics are created before any image is read, so an unknown name or missing weights fail
    fast. Images are scored one pair at a time because folder images may differ in size.
    """
    if not metric_names:
        raise InputError("no metric given (use -m NAME; `optiqa metrics` lists them)")
    metrics = {name: create_metric(name, device=device) for name in dict.fromkeys(metric_names)}
    pairs = pair_paths(distorted, reference)
    results = []
    for dist_path, ref_path in tqdm(pairs, desc="scoring", unit="pair",
                                    disable=not progress or len(pairs) < 4):
        x, ref = load_pair(dist_path, ref_path)
        x, ref = x.to(device), ref.to(device)
        row = PairScores(dist_path, ref_path)
        for name, metric in metrics.items():
            try:
                row.scores[name] = float(metric(x, ref)[0])
            except InputError as e:
                raise InputError(f"{dist_path}: {name}: {e}") from None
        results.append(row)
    return results
