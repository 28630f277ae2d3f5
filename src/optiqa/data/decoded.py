"""Decoded images kept in a process while their files are unchanged.

A study reads the same small image files many times in one process: each of the example's 20
zero-shot scores and 22 transfer experiments decodes the same 600 PNG files of its 64-px
set (about 0.45 s of CPU of each 1.5-3 s piece). :func:`read_image_cached` decodes a file once
and keeps the result under the file's state (resolved path, size, modification time in ns,
inode: :func:`optiqa.core.hashing.file_state`; a rewritten or replaced file is a new entry), up to :data:`BUDGET_BYTES` in all (the first ones stay; past the budget a
file is decoded for that call only). It returns a copy, so a caller may change it freely; the
pixels are those of :func:`optiqa.data.io.read_image`, bit for bit.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from optiqa.core.hashing import file_state
from optiqa.data import io

BUDGET_BYTES = 256 << 20
_ENTRIES: dict[tuple, torch.Tensor] = {}
_used = 0


def read_image_cached(path: str | os.PathLike) -> torch.Tensor:
    """:func:`optiqa.data.io.read_image` of ``path``, decoded once per process while the file
    is unchanged (see the module docstring); errors as ``read_image`` names them."""
    global _used
    p = Path(path)
    try:
        key = file_state(p)
    except OSError:  # missing or unreadable: read_image names the problem
        return io.read_image(p)
    found = _ENTRIES.get(key)
    if found is None:
        with torch.inference_mode(False):  # an ordinary tensor, in and out of inference mode
            found = io.read_image(p)
        size = found.numel() * found.element_size()
        if _used + size > BUDGET_BYTES:
            return found
        _ENTRIES[key] = found
        _used += size
    return found.clone()


def clear() -> None:
    """Forget every kept image (tests; a long-lived process that wants its memory back)."""
    global _used
    _ENTRIES.clear()
    _used = 0
