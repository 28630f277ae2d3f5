"""The ground truth's loss-network features shared between training runs, through files.

Why: the cells of a study that share a fidelity loss train on the same batches (batch ``i`` is
a pure function of the data seed and ``i``), and a deep loss such as DISTS runs its backbone on
each batch's ground truth under ``no_grad`` (:func:`optiqa.metrics.deep._paired_features`): for
VGG-16 on 6x3x64x64 crops that is 15 GFLOP, about 100 ms of a 500-580 ms training step on one
CPU thread, computed again by every cell of the loss. With a :class:`FeatureStore` active
(:func:`sharing_reference_features`), the first run to see a ground-truth batch writes its
feature maps to a file, and every later run (in any process) reads them instead.

Only the ground truth's side is shared, and only where it takes no gradient (the training
step; scoring under ``inference_mode`` never reaches the store). A file is used only under its
key, the SHA-256 of everything that decides the features' bits:

* the metric: its class, its backbone's structure (``repr``) and every parameter and buffer of
  the backbone (names, shapes, dtypes, memory layout and values), so another weight file, a
  fixed-seed random backbone and a retrained one all miss;
* the ground truth: its shape, dtype and values;
* how the convolutions run: torch's version, the CPU's vector capability (oneDNN picks its
  kernels by it), the intra-op thread count, the device, and the autocast state.

So a hit returns exactly the tensors the backbone would compute here (same kernels on the same
values; a process writes only what it computed), and a training run's numbers do not depend on
whether it hit: ``tests/test_feature_store.py`` trains with and without the store and compares
the weights bit for bit. Files are written atomically (a reader never sees half a file); an
unreadable one counts as a miss. Not durable (no ``fsync``): it is a cache, removed by its owner
when the work that shares it is done (:mod:`optiqa.study.pool`).
"""
from __future__ import annotations

import contextlib
import hashlib
import pickle
from pathlib import Path
from typing import Callable

import torch

from optiqa.core.atomic import atomic_write

_ACTIVE: list = []   # the store of the innermost sharing_reference_features block


class FeatureStore:
    """Feature lists of ground-truth batches in ``folder``, one file per key."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def key(self, metric_identity: str, ref: torch.Tensor) -> str:
        """SHA-256 of everything that decides ``extract(ref)``'s bits (module docstring)."""
        h = hashlib.sha256()
        autocast = (torch.is_autocast_enabled(ref.device.type)
                    and str(torch.get_autocast_dtype(ref.device.type)))
        for part in (metric_identity, torch.__version__, torch.backends.cpu.get_cpu_capability(),
                     torch.get_num_threads(), ref.device.type, autocast,
                     tuple(ref.shape), ref.dtype):
            h.update(f"{part}|".encode())
        h.update(_bytes(ref))
        return h.hexdigest()

    def features(self, metric_identity: str, extract: Callable, ref: torch.Tensor) -> list:
        """``extract(ref)`` under ``no_grad``: read from the store, or computed and written."""
        path = self.folder / f"{self.key(metric_identity, ref)}.pt"
        try:
            stored = torch.load(path, weights_only=True, map_location=ref.device)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            # absent or unreadable (a file cut short, another format): a miss
            stored = None
        if isinstance(stored, list) and all(isinstance(t, torch.Tensor) for t in stored):
            self.hits += 1
            return stored
        self.misses += 1
        with torch.no_grad():
            feats = list(extract(ref))
        atomic_write(path, lambda tmp: torch.save([f.detach() for f in feats], tmp),
                     durable=False)
        return feats


def module_identity(module: torch.nn.Module) -> str:
    """SHA-256 of a module's class, structure and every parameter and buffer (names, shapes,
    dtypes, strides and values): what a forward pass's result depends on besides its input."""
    h = hashlib.sha256(f"{type(module).__qualname__}|{module!r}".encode())
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        t = t.detach()
        h.update(f"|{name}|{tuple(t.shape)}|{t.dtype}|{t.stride()}|".encode())
        h.update(_bytes(t))
    return h.hexdigest()


def _bytes(t: torch.Tensor) -> bytes:
    """The values of ``t`` as bytes, in logical (row-major) order, whatever its dtype."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes()


def active() -> FeatureStore | None:
    """The store in use (None outside :func:`sharing_reference_features`)."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def sharing_reference_features(folder: str | Path | None):
    """Inside the block, deep losses share their ground truth's features through ``folder``
    (``None``: no sharing). Yields the :class:`FeatureStore` (or None)."""
    if folder is None:
        yield None
        return
    store = FeatureStore(folder)
    _ACTIVE.append(store)
    try:
        yield store
    finally:
        _ACTIVE.remove(store)
