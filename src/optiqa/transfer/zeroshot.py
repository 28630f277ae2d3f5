"""Zero-shot quality: a trained discriminator's own output as a no-reference quality score.

A discriminator trained to tell real high-resolution crops from generated ones outputs a logit
that is higher for images it judges *real*. Read as quality, **higher logit = more real = better
quality**. The score of an image is the mean logit over a fixed set of crops: ``grid x grid``
square crops of side ``crop`` (default the run's training crop ``datasets.train.gt_size``, the
size the discriminator saw; at most the image's shorter side) at evenly spaced positions that
include the four corners (3 x 3 = 9 crops by default; one crop when the image is the crop).
Patch discriminators' logit maps are averaged over their locations first. The scores are
correlated with the dataset's targets in its own orientation (sign flipped for lower-better
targets), so a positive SRCC means the discriminator's realness agrees with the human (or
known-order) judgments; see :func:`optiqa.assess.benchmark.statistics`.

The discriminator is rebuilt from the run's ``config.yaml`` (``network_d``) and loaded with
:func:`optiqa.nets.load_discriminator_checkpoint`; any discriminator type works (backbone heads,
PatchGAN, U-Net, VGG-style). A backbone discriminator is built with ``pretrained=False`` since
every weight comes from the checkpoint.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from optiqa.assess.benchmark import PLCC_NOTE, statistics
from optiqa.data.decoded import read_image_cached
from optiqa.data.iqa import IQADataset
from optiqa.core.errors import ConfigError, InputError
from optiqa.nets import create_discriminator, load_discriminator_checkpoint
from optiqa.core.hashing import stable_hash
from optiqa.core.sources import code_fingerprint
from optiqa.core.store import run_once
from optiqa.transfer.init import (DiscriminatorCheckpoint, discriminator_backbone_name,
                                  find_discriminator_checkpoint)

STAGE = "transfer"
DEFAULT_GRID = 3
FALLBACK_CROP = 128   # when the run does not say (no datasets.train.gt_size)
SIGN_NOTE = ("zero-shot score = mean discriminator logit over fixed crops; higher = judged more "
             "real = better quality; correlated in the dataset's own orientation: positive = "
             "agrees")


def crop_positions(height: int, width: int, crop: int, grid: int = DEFAULT_GRID
                   ) -> list[tuple[int, int]]:
    """(top, left) of ``grid x grid`` evenly spaced crops (corners included, duplicates merged)."""
    if grid < 1:
        raise ConfigError(f"grid must be at least 1, got {grid}", option="grid")
    if crop > min(height, width):
        raise InputError(f"crop {crop} is larger than the {width}x{height} image")

    def spots(n: int) -> list[int]:
        if grid == 1:
            return [(n - crop) // 2]
        return sorted({round(i * (n - crop) / (grid - 1)) for i in range(grid)})
    return [(t, left) for t in spots(height) for left in spots(width)]


def load_discriminator(path, device: str = "cpu") -> tuple[torch.nn.Module,
                                                            DiscriminatorCheckpoint]:
    """The trained discriminator of a run folder (newest checkpoint) or checkpoint file."""
    ckpt = find_discriminator_checkpoint(path)
    if ckpt.network_d is None:
        raise ConfigError(f"{ckpt.path}: no config.yaml with network_d next to it, so the "
                          "discriminator cannot be rebuilt; give the run folder")
    opts = dict(ckpt.network_d)
    d_type = opts.pop("type", None)
    if not d_type:
        raise ConfigError(f"{ckpt.path}: the run's network_d has no type")
    if discriminator_backbone_name(ckpt.network_d):
        opts["pretrained"] = False  # the checkpoint holds every weight
    model = create_discriminator(d_type, **opts)
    # a mismatch names the keys
    load_discriminator_checkpoint(model, ckpt.path,
                                  what=f"discriminator {d_type!r} of the run's config")
    return model.to(device).eval(), ckpt


def image_crops(path, crop: int, grid: int = DEFAULT_GRID) -> torch.Tensor:
    """The crops of :func:`crop_positions` of one image file ``(n, 3, c, c)``, ``c = min(crop,
    H, W)``. A study scores the same files with every trained discriminator (the example: 20
    times 600 files), so each is decoded once per process
    (:func:`optiqa.data.decoded.read_image_cached`: same pixels, same scores bit for bit)."""
    x = read_image_cached(path)
    _, h, w = x.shape
    c = min(crop, h, w)
    return torch.stack([x[:, t:t + c, s:s + c] for t, s in crop_positions(h, w, c, grid)])


class _Crops(Dataset):
    def __init__(self, paths, crop: int, grid: int):
        self.paths, self.crop, self.grid = paths, crop, grid

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return image_crops(self.paths[i], self.crop, self.grid)


@torch.inference_mode()
def zero_shot_scores(model: torch.nn.Module, paths, crop: int, grid: int = DEFAULT_GRID,
                     device: str = "cpu", workers: int = 0, progress: bool = False,
                     batch_crops: int = 32) -> np.ndarray:
    """Mean logit over the fixed crops of each image (higher = judged more real).

    The crops of consecutive images of one size go through the discriminator together, up to
    ``batch_crops`` at a time (it is in eval mode: each crop's logits are its own). One image
    per call, as before, cost 3x the CPU time on 64-px crops of EfficientNet-Lite0; the logits
    differ from one-crop batches by float rounding only (at most 1e-6 there: the convolution
    takes another kernel path for a batch of one).
    """
    loader = DataLoader(_Crops(list(paths), crop, grid), batch_size=None, num_workers=workers)
    out = np.zeros(len(paths))
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        crops = torch.cat([c for _, c in pending])
        logits = model(crops.to(device)).float()
        per_crop = logits.reshape(logits.shape[0], -1).mean(1)
        for (i, _), part in zip(pending, per_crop.split([len(c) for _, c in pending])):
            out[i] = float(part.mean())
        bar.update(len(pending))
        pending.clear()

    with tqdm(total=len(paths), desc="zero-shot", unit="img", disable=not progress) as bar:
        for i, crops in enumerate(loader):
            if pending and (crops.shape[1:] != pending[0][1].shape[1:] or
                            sum(len(c) for _, c in pending) + len(crops) > batch_crops):
                flush()
            pending.append((i, crops))
        if pending:
            flush()
    return out


def run_zero_shot(path, dataset: IQADataset, crop: int | None = None, grid: int = DEFAULT_GRID,
                  device: str = "cpu", n_boot: int = 2000, seed: int = 0, workers: int = 0,
                  store=None, force: bool = False, progress: bool = False, known=None) -> dict:
    """Score ``dataset``'s (distorted) images with the discriminator of ``path``; correlate.
    ``known(key)``: a result computed before under ``key`` (see
    :func:`optiqa.transfer.experiment.run_transfer`), returned instead of computed again."""
    t0 = time.perf_counter()
    # the key from the checkpoint's file and its run's config; the network is built only to
    # compute (a result found under the key needs none: 0.1-0.2 s of CPU per result saved)
    ckpt = find_discriminator_checkpoint(path)
    crop = int(crop or ckpt.gt_size or FALLBACK_CROP)
    sha = ckpt.sha256()[:16]
    # everything that decides the result: the discriminator's weights and architecture, the data
    # (identity, items, pixels, human scores), the protocol's options and code
    desc = {"v": 1, "sha": sha, "network_d": ckpt.network_d, "crop": crop, "grid": grid,
            "dataset": dataset.fingerprint(), "n_boot": n_boot, "seed": seed,
            "code": code_fingerprint(zero_shot_scores)}
    key = f"zeroshot/{ckpt.run_name}/{dataset.name}/{stable_hash(desc, 12)}"

    def compute() -> dict:
        found = known(key) if known is not None else None
        if found is not None:
            return found
        model, _ = load_discriminator(ckpt.path, device)
        min_size = int(getattr(model, "min_size", 1) or 1)
        if crop < min_size:
            raise ConfigError(f"crop {crop} is smaller than the discriminator's minimum input "
                              f"{min_size}")
        scores = zero_shot_scores(model, [it.dist for it in dataset.items], crop, grid, device,
                                  workers, progress)
        if not np.isfinite(scores).all():
            raise InputError(f"the discriminator gave non-finite logits for "
                             f"{int((~np.isfinite(scores)).sum())} image(s)")
        st = statistics(scores, dataset, metric_lower_better=False, n_boot=n_boot, seed=seed)
        return {
            "stage": STAGE, "zero_shot": True, "run": ckpt.run_name,
            "checkpoint": str(ckpt.path), "iteration": ckpt.iteration,
            "network_d": ckpt.network_d, "level": getattr(model, "level", None),
            "checkpoint_sha256": sha, "crop": crop, "grid": grid,
            "max_crops_per_image": grid * grid, "dataset": dataset.name,
            "dataset_key": dataset.store_key, "label": dataset.label,
            "target": dataset.spec.score_meaning, "evaluation": dataset.evaluation, **st,
            "sign_note": SIGN_NOTE, "plcc_note": PLCC_NOTE, "key": key,
            "score_mean": float(scores.mean()), "score_std": float(scores.std()),
            "seconds": round(time.perf_counter() - t0, 2), "from_store": False,
        }

    return run_once(store, STAGE, key, {"zero_shot": str(ckpt.path), **desc}, compute, force)


__all__ = ["crop_positions", "load_discriminator", "zero_shot_scores", "run_zero_shot",
           "SIGN_NOTE", "DEFAULT_GRID"]
