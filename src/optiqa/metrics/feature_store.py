"""The ground truth's loss-network features shared between training runs, through files.

Why: the cells of a study that share a fidelity loss train on the same batches (batch ``i`` is
a pure function of the data seed and ``i``), and a deep loss (DISTS, LPIPS) runs its backbone on
each batch's ground truth under ``no_grad`` (:func:`optiqa.metrics.deep._paired_features`, the
one place every deep FR metric pairs its two inputs): for VGG-16 on 6x3x64x64 crops that is
15 GFLOP, about 120 ms of a 450 ms training step on one CPU thread, and DISTS's moments of those
maps another 17 ms, computed again by every cell of the loss. With a :class:`FeatureStore`
active (:func:`sharing_reference_features`), the first run to see a ground-truth batch writes
what the metric derives from it (its feature maps, and whatever the metric's formula computes
from the reference alone) to a file, and every later run (in any process) reads it instead.

Only the ground truth's side is shared, and only where it takes no gradient (the training
step; scoring under ``inference_mode`` never reaches the store). A file is used only under its
key, the SHA-256 of everything that decides its bits:

* the metric: its class (which decides what is stored: the code of a pool run does not change
  under it), its structure (``repr``) and every parameter and buffer of the whole metric module
  (names, shapes, dtypes, memory layout and values: the backbone's weights, LPIPS's input
  scaling, DISTS's pooling window), so another weight file, a fixed-seed random backbone and a
  retrained one all miss (:func:`metric_identity`);
* the ground truth: its shape, dtype and values;
* how the convolutions run: torch's version, the CPU's vector capability (oneDNN picks its
  kernels by it), the intra-op thread count, the device, and the autocast state.

So a hit returns exactly the tensors the metric would compute here (same kernels on the same
values; a process writes only what it computed), and a training run's numbers do not depend on
whether it hit: ``tests/test_feature_store.py`` trains with and without the store (a DISTS and
an LPIPS loss) and compares the weights bit for bit. Files are written atomically (a reader
never sees half a file) and read memory-mapped (no copy: 0.6 instead of 7 ms for the 12 MB of a
VGG-16 batch); an unreadable one counts as a miss, and a write that fails loses only the
sharing. Not durable (no ``fsync``): it is a cache,
removed by its owner when the work that shares it is done (:mod:`optiqa.study.pool`).
"""
from __future__ import annotations

import contextlib
import hashlib
import pickle
import weakref
from pathlib import Path
from typing import Callable

import torch

from optiqa.core.atomic import atomic_write

_ACTIVE: list = []   # the store of the innermost sharing_reference_features block
# metric_identity's last value per module, with the state it was computed from
_IDENTITIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class FeatureStore:
    """What deep metrics derive from ground-truth batches, in ``folder``, one file per key."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self.write_errors = 0

    def key(self, identity: str, ref: torch.Tensor) -> str:
        """SHA-256 of everything that decides ``derive(ref)``'s bits (module docstring)."""
        h = hashlib.sha256()
        autocast = (torch.is_autocast_enabled(ref.device.type)
                    and str(torch.get_autocast_dtype(ref.device.type)))
        for part in (identity, torch.__version__, torch.backends.cpu.get_cpu_capability(),
                     torch.get_num_threads(), ref.device.type, autocast,
                     tuple(ref.shape), ref.dtype):
            h.update(f"{part}|".encode())
        h.update(_bytes(ref))
        return h.hexdigest()

    def features(self, identity: str, derive: Callable, ref: torch.Tensor):
        """``derive(ref)`` under ``no_grad`` (tensors in nested lists/tuples): read from the
        store, or computed and written."""
        path = self.folder / f"{self.key(identity, ref)}.pt"
        try:
            stored = torch.load(path, weights_only=True, map_location=ref.device, mmap=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            # absent or unreadable (a file cut short, another format): a miss
            stored = None
        if isinstance(stored, (list, tuple)) and _tensors_only(stored):
            self.hits += 1
            return stored
        self.misses += 1
        with torch.no_grad():
            derived = derive(ref)
        try:
            atomic_write(path, lambda tmp: torch.save(derived, tmp), durable=False)
        except OSError:
            # a full disk, or (Windows) another run holding the file mapped: only the sharing
            # is lost, the value is this run's own
            self.write_errors += 1
        return derived


def module_identity(module: torch.nn.Module) -> str:
    """SHA-256 of a module's class, structure and every parameter and buffer (names, shapes,
    dtypes, strides and values): what a forward pass's result depends on besides its input."""
    h = hashlib.sha256(f"{type(module).__qualname__}|{module!r}".encode())
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        t = t.detach()
        h.update(f"|{name}|{tuple(t.shape)}|{t.dtype}|{t.stride()}|".encode())
        h.update(_bytes(t))
    return h.hexdigest()


def metric_identity(metric: torch.nn.Module) -> str:
    """:func:`module_identity` of a whole metric module, cached: computed again (0.1 s for
    VGG-16) only when a parameter or buffer was replaced, relaid out or changed in place (its
    version counter), so a training run hashes its frozen loss network once."""
    state = tuple((t.data_ptr(), t.stride(), 0 if t.is_inference() else t._version)
                  for t in [*metric.parameters(), *metric.buffers()])
    cached = _IDENTITIES.get(metric)
    if cached is None or cached[0] != state:
        cached = (state, module_identity(metric))
        _IDENTITIES[metric] = cached
    return cached[1]


def _tensors_only(value) -> bool:
    """Whether ``value`` is a tensor or nested lists/tuples of tensors (what a store holds)."""
    if isinstance(value, (list, tuple)):
        return all(_tensors_only(v) for v in value)
    return isinstance(value, torch.Tensor)


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
