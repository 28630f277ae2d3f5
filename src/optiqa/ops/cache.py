"""A cache for functions that build constant tensors (filter banks, resize matrices, windows).

``functools.lru_cache`` alone is not enough for tensors: a constant first built while the
process is in ``torch.inference_mode`` (evaluation, assessment) is an *inference tensor*, and the
same cached object later used in a training loss fails with "Inference tensors cannot be saved
for backward" (an assessment followed by FSIM training in one process did). :func:`tensor_cache`
builds every entry with inference mode switched off, so the cached constants are ordinary
tensors usable in both modes.
"""
from __future__ import annotations

import functools

import torch


def tensor_cache(maxsize: int):
    """``lru_cache(maxsize)`` whose entries are built outside ``torch.inference_mode``."""
    def decorate(build):
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(build)
        def cached(*args, **kwargs):
            with torch.inference_mode(False):
                return build(*args, **kwargs)
        return cached
    return decorate
