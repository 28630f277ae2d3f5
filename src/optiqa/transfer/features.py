"""Descriptors of a dataset's images under a fixed backbone: computed once, reused.

A frozen backbone gives every image the same descriptor in every epoch and every repeat, so the
linear probe (``mode="frozen"``) extracts them once per (backbone initialisation, dataset) and
trains its head on the cached matrix: an epoch then costs a few small matrix products instead of
a backbone pass per image (``bench/transfer_speed.py`` measures the difference). The same
function computes descriptors of any subset of items, which is how the un-cached comparison and
the fine-tuned model's evaluation run.

Images are read at full resolution and batched by size: full-reference items by reference
(:func:`optiqa.assess.batches.size_batches`; the reference's feature maps are computed once per
reference, not once per pair), no-reference items by size alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from optiqa.assess.batches import PairBatches, image_size, keyed_batches, size_batches
from optiqa.data.decoded import read_image_cached
from optiqa.data.io import as_float
from optiqa.core.errors import InputError
from optiqa.transfer.models import IQAModel


class ImageBatches(Dataset):
    """Whole batches of same-size images: ``(images (B,3,H,W), item indices (B,))``."""

    def __init__(self, paths, batches):
        self.paths, self.batches = paths, batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, b):
        idx = self.batches[b]
        # decoded once per process: a study's transfer experiments read the same files
        return torch.stack([read_image_cached(self.paths[i]) for i in idx]), torch.tensor(idx)


def image_batches(paths, batch_size: int) -> list[list[int]]:
    """Index batches of one image size each (first-seen order kept)."""
    return keyed_batches((image_size(p) for p in paths), batch_size)


@dataclass
class Descriptors:
    """Descriptors ``(N, d)`` (float32, CPU) of ``N`` items and what computing them cost."""

    values: torch.Tensor
    seconds: float
    images: int           # backbone passes over images (references counted once)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


@torch.no_grad()  # not inference_mode: the cached values feed autograd-tracked heads later
def extract(model: IQAModel, items, device: str = "cpu", batch_size: int = 8, workers: int = 0,
            progress: bool = False, desc: str = "features") -> Descriptors:
    """Descriptors of ``items`` (:class:`~optiqa.data.iqa.IQAItem`) under ``model``'s backbone.

    A no-reference model sees only the distorted image, also on full-reference datasets.
    """
    was_training = model.training
    model.eval()
    items = list(items)
    out = torch.zeros(len(items), model.descriptor_dim)
    t0 = time.perf_counter()
    n_images = 0
    kw = dict(batch_size=None, shuffle=False, num_workers=workers,
              prefetch_factor=2 if workers > 0 else None)
    try:
        with tqdm(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
            if model.kind == "fr":
                loader = DataLoader(PairBatches(items, size_batches(items, max(1, batch_size))),
                                    **kw)
                ref_key, fr = None, None
                for batch in loader:
                    if "error" in batch:
                        raise InputError(batch["error"])
                    x, ref, idx = as_float(batch["x"]), as_float(batch["ref"]), batch["idx"]
                    key = items[int(idx[0])].ref
                    if key != ref_key:  # one backbone pass per reference
                        ref_key, fr = key, model.backbone(ref.to(device))
                        n_images += 1
                    fx = model.backbone(x.to(device))
                    frb = [f.expand(x.shape[0], *f.shape[1:]) for f in fr]
                    out[idx] = model.describe(fx, frb).float().cpu()
                    n_images += len(idx)
                    bar.update(len(idx))
            else:
                paths = [it.dist for it in items]
                loader = DataLoader(ImageBatches(paths, image_batches(paths, max(1, batch_size))),
                                    **kw)
                for x, idx in loader:
                    out[idx] = model.describe(model.backbone(x.to(device))).float().cpu()
                    n_images += len(idx)
                    bar.update(len(idx))
    finally:
        model.train(was_training)
    return Descriptors(out, time.perf_counter() - t0, n_images)


__all__ = ["Descriptors", "extract", "image_batches", "ImageBatches"]
