"""Validation during training: mean metric scores on the val set, reduced across ranks, plus
sample crops.

The convention is :mod:`optiqa.restore.scoring`'s (so that the numbers in ``log.txt`` and those of
``optiqa evaluate --protocol basicsr`` agree): output clamped and rounded to 8 bits, a border of
``scale`` pixels removed before every metric, PSNR/SSIM on the BT.601 Y channel (the registered
``psnr_y``, ``ssim_y``: Y not rounded, greyscale images expanded to RGB). Under
DDP rank ``r`` of ``w`` scores images ``r, r + w, ...``; the per-metric sums and counts are
all-reduced, so every rank gets the same means. Crops of the first few images are gathered to
rank 0, which writes ``samples/<image>/<iter>.png`` (and ``gt.png`` once).
"""
from __future__ import annotations

from pathlib import Path

import torch

from optiqa.train import distributed as dist_utils
from optiqa.restore.scoring import crop_border
from optiqa.ops.rounding import quantize_8bit
from optiqa.restore.generator import restore


def centre_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[..., top:top + size, left:left + size]


@torch.no_grad()
def validate(model, dataset, metrics: dict, scale: int, device, iteration: int,
             info: dist_utils.DistInfo = dist_utils.DistInfo(), max_images: int | None = None,
             tile: int | None = None, overlap: int = 32, sample_dir: Path | None = None,
             num_samples: int = 0, sample_size: int = 128) -> dict[str, float]:
    """Mean of each metric over the validation images (see the module docstring)."""
    was_training = model.training
    model.eval()
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    sums = torch.zeros(len(metrics) + 1, dtype=torch.float64)
    crops = []
    for i in range(info.rank, n, info.world_size):
        item = dataset[i]
        lq, gt = item["lq"][None].to(device), item["gt"][None].to(device)
        sr = quantize_8bit(restore(model, lq, tile, overlap, scale).float())
        x, ref = crop_border(sr, scale), crop_border(gt, scale)
        for j, scorer in enumerate(metrics.values()):
            sums[j] += float(scorer(x, ref)[0])
        sums[-1] += 1
        if i < num_samples:
            crops.append((i, item["key"], centre_crop(sr[0], sample_size).cpu(),
                          centre_crop(gt[0], sample_size).cpu()))
    model.train(was_training)
    sums = dist_utils.all_reduce_sum(sums.to(device) if device.type == "cuda" else sums).cpu()
    count = max(1.0, float(sums[-1]))
    means = {name: float(sums[j]) / count for j, name in enumerate(metrics)}
    if num_samples and sample_dir is not None:
        gathered = [c for part in dist_utils.gather_objects(crops) for c in part]
        if info.is_main:
            _write_samples(sorted(gathered, key=lambda c: c[0]), sample_dir, iteration)
    return means


def _write_samples(crops, sample_dir: Path, iteration: int) -> None:
    from optiqa.data.io import write_image

    for _, key, sr, gt in crops:
        folder = Path(sample_dir) / key.replace("/", "_")
        if not (folder / "gt.png").exists():
            write_image(folder / "gt.png", gt)
        write_image(folder / f"{iteration}.png", sr)
