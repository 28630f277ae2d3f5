"""Batched scoring of a dataset's (distorted, reference) pairs with several metrics.

A ``torch.utils.data.DataLoader`` reads the images in worker processes. A batch holds the
distortions of one reference at one image size (items are bucketed by reference and by the size
read from the file headers, keeping the meta file's order); an image whose size nobody else
shares simply forms a batch of one. The reference is decoded once per batch (workers also keep
the last ones), 8-bit images travel as uint8, and every metric runs on each batch, so the images
are read once for all metrics.

Where the metrics run:

- on a GPU, in the main process, on whole batches;
- on the CPU with workers, inside the workers, one thread each: the cores then work on
  different batches (decoding and scoring) instead of splitting every operation between
  threads. On a shared 2-core machine this ran SSIM 10x and DISTS-VGG 2x faster than one
  process with two intra-op threads (measured in ``bench/assess_speed.py``);
- on the CPU without workers, in the main process.

On the CPU, metrics get the batch in chunks of at most :data:`CPU_CHUNK_PIXELS` (a smaller
working set beats batching there); DISTS-style metrics compute each reference's features once
(:mod:`optiqa.assess.refcache`). Errors raised while reading or scoring inside a worker come back
to the main process as the same one-line error, not as a worker traceback.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from optiqa.assess.refcache import ReferenceReuse
from optiqa.data.io import as_float, read_pixels
from optiqa.core.errors import InputError, OptiqaError

# On the CPU a small working set matters more than batching: at 512x384 with one thread, SSIM
# takes 27 ms per pair alone but 95 ms per pair in batches of 8, and VGG-16 (channels-last)
# 0.55 s per image alone but 0.67 s in batches of 8. So CPU batches are evaluated in chunks of
# at most this many pixels per image stack (one 512x384 image).
CPU_CHUNK_PIXELS = 1 << 18


def cpu_chunk(x: torch.Tensor) -> int:
    """Images per chunk for ``x`` on the CPU; the whole batch elsewhere."""
    if x.device.type != "cpu":
        return x.shape[0]
    return max(1, CPU_CHUNK_PIXELS // (x.shape[-2] * x.shape[-1]))


def image_size(path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise InputError(f"{path}: not a readable image ({e})") from None


def keyed_batches(keys, batch_size: int) -> list[list[int]]:
    """Index batches of at most ``batch_size`` positions sharing one key, in first-index order.

    A bucket per key fills in input order and is emitted when full; the partly filled ones
    follow, and all batches are sorted by their first index, so the input order is kept as far
    as the grouping allows.
    """
    buckets: dict = {}
    batches = []
    for i, key in enumerate(keys):
        b = buckets.setdefault(key, [])
        b.append(i)
        if len(b) == batch_size:
            batches.append(b[:])
            b.clear()
    batches += [b for b in buckets.values() if b]
    return sorted(batches, key=lambda b: b[0])


def size_batches(items, batch_size: int) -> list[list[int]]:
    """Index batches of one reference and one image size each (meta order kept).

    One reference per batch lets the reference side be computed once (:mod:`.refcache`) and
    costs little: databases list the distortions of a reference together.
    """
    return keyed_batches(((str(it.ref), image_size(it.dist)) for it in items), batch_size)


# ---------------------------------------------------------------------------------------------
# scorers: metric(x, ref) with reference reuse, in cache-sized chunks
# ---------------------------------------------------------------------------------------------
def scorers(metrics: dict) -> dict:
    """``{name: callable(x, ref, ref_key) -> (N,)}`` reusing each reference's share of the work."""
    return {n: ReferenceReuse(m) for n, m in metrics.items()}


def _score_batch(score_fns: dict, x, ref, ref_key, names) -> dict:
    x, ref = as_float(x), as_float(ref)
    refs = ref.expand_as(x)
    out = {}
    for name, fn in score_fns.items():
        try:
            out[name] = fn(x, refs, ref_key, cpu_chunk(x)).detach().double().cpu().numpy()
        except (InputError, ValueError) as e:
            raise InputError(f"{names[0]}: {name}: {e}") from None
    return out


# ---------------------------------------------------------------------------------------------
# the dataset of batches
# ---------------------------------------------------------------------------------------------
class PairBatches(Dataset):
    """Whole batches of one reference: a dict with ``x`` (B,3,H,W), ``ref`` (1,3,H,W), ``idx``.

    With ``score_fns`` the batch is also scored where it is loaded (``scores``: {name: (B,)});
    ``send_pixels=False`` then leaves the pixels out. Errors are returned as ``error`` (a
    message), so that the main process can raise them as one line.
    """

    def __init__(self, items, batches, score_fns: dict | None = None, send_pixels: bool = True):
        self.items, self.batches, self.score_fns = items, batches, score_fns
        self.send_pixels = send_pixels or not score_fns
        self._ref_cache: OrderedDict = OrderedDict()

    def __len__(self):
        return len(self.batches)

    def _ref(self, path):
        img = self._ref_cache.get(path)
        if img is None:
            img = read_pixels(path)
            self._ref_cache[path] = img
            while len(self._ref_cache) > 2:
                self._ref_cache.popitem(last=False)
        return img

    def __getitem__(self, b):
        idx = self.batches[b]
        try:
            ref_path = self.items[idx[0]].ref
            ref = self._ref(ref_path)
            xs = []
            for i in idx:
                it = self.items[i]
                x = read_pixels(it.dist)
                if x.shape != ref.shape:
                    raise InputError(f"{it.dist}: size {x.shape[2]}x{x.shape[1]} differs from "
                                     f"its reference {it.ref} ({ref.shape[2]}x{ref.shape[1]})")
                xs.append(x)
            if any(t.dtype != torch.uint8 for t in xs + [ref]):  # a 16-bit or float file
                xs, ref = [as_float(t) for t in xs], as_float(ref)
            x, ref = torch.stack(xs), ref[None]
            out = {"idx": torch.tensor(idx)}
            if self.send_pixels:
                out.update(x=x, ref=ref)
            if self.score_fns:
                with torch.inference_mode():
                    out["scores"] = _score_batch(self.score_fns, x, ref, ref_path,
                                                 [self.items[i].dist for i in idx])
            return out
        except OptiqaError as e:
            return {"error": str(e), "idx": torch.tensor(idx)}


def loader_for(dataset: PairBatches, workers: int, pin: bool = False) -> DataLoader:
    # batch_size=None: the dataset already returns whole batches
    return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                      pin_memory=pin, persistent_workers=False,
                      prefetch_factor=4 if workers > 0 else None)


@torch.inference_mode()
def score_items(metrics: dict, items, device: str = "cpu", batch_size: int = 8,
                workers: int = 2, progress: bool = True, desc: str = "scoring") -> dict:
    """Scores ``{metric name: (len(items),) float64 array}`` for FR items, batched."""
    out = {name: np.full(len(items), np.nan) for name in metrics}
    if not items:
        return out
    batches = size_batches(items, max(1, batch_size))
    fns = scorers(metrics)
    in_workers = fns if torch.device(device).type == "cpu" and workers > 0 else {}
    in_main = {n: f for n, f in fns.items() if n not in in_workers}
    pin = torch.device(device).type == "cuda"
    data = PairBatches(items, batches, in_workers, send_pixels=bool(in_main))
    with tqdm(total=len(items), desc=desc, unit="pair", disable=not progress) as bar:
        for batch in loader_for(data, workers, pin):
            idx = batch["idx"].numpy()
            if "error" in batch:
                raise InputError(batch["error"])
            scores = dict(batch.get("scores", {}))
            if in_main:
                x = batch["x"].to(device, non_blocking=pin)
                ref = batch["ref"].to(device, non_blocking=pin)
                scores.update(_score_batch(in_main, x, ref, items[idx[0]].ref,
                                           [items[i].dist for i in idx]))
            for name, s in scores.items():
                out[name][idx] = s
            bar.update(len(idx))
    return out
