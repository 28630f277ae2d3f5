"""Flat 7x7 windows of the MSCN filter (:func:`optiqa.ops.nss.mscn`): where all 49 values are
equal, ``I - mu`` is exactly 0 and :func:`~optiqa.ops.nss.mscn` returns 0 there, not a rounding
residue whose sign would move NIQE's and BRISQUE's AGGD fits (module docstring of
:mod:`optiqa.ops.nss`).

- :func:`flat_windows`: the exact test on every pixel (running max and min);
- :func:`flat_candidates`: the same decision at the pixels whose computed variance is below
  1e-6 (every flat window is one), gathering their windows when they are few;
- :data:`INTEGER_VARIANCE_FLOOR`: why, for integer images, the candidates are the flat windows
  and no test is needed.
"""
from __future__ import annotations

import torch

from optiqa.ops.filters import pad

MSCN_WINDOW = 7   # the MSCN filter's 7x7 window (fspecial('gaussian', 7, 7/6))


# Integer windows: a window of integers that is not flat has a weighted variance of at least
# w_min (1 - w_min), with w_min the smallest weight of the 7x7 Gaussian (its corner, 1.58e-4):
# split its values at a gap between two of them (>= 1) into groups of weights P and 1 - P, each
# at least w_min; the variance is at least that of the group means, P (1 - P) gap^2. The
# computed variance of values in [0, 255] is within ~1e-10 of the exact one (the flat windows'
# is below 1e-10, see flat_candidates), so for integers "computed variance < 1e-6" is
# "flat" exactly. tests/test_nss_exact.py checks the floor against the kernel.
INTEGER_VARIANCE_FLOOR = 1.5e-4

# A window whose values differ by less than this (grey levels) is flat: exactly flat regions of
# an 8-bit image come out of the 0.5 resize equal up to rounding (~1e-13), while any real
# difference in an 8-bit image leaves far more than this after it.
FLAT_TOLERANCE = 1e-8


def flat_windows(img: torch.Tensor, padding) -> torch.Tensor:
    """True where the 7x7 window (same centring and padding as the filter) is flat.

    Running max and min over 7 rows, then over 7 columns, each one reduction over a sliding
    window view (``unfold``) along the rows; the columns' pass reads a transposed copy (over the
    contiguous dimension, or with ``aminmax``, it is 10x slower). Max and min are exact.
    """
    half = MSCN_WINDOW // 2
    with torch.no_grad():
        p = pad(img.detach(), (half, half, half, half), padding)
        windows = p.unfold(-2, MSCN_WINDOW, 1)                          # (..., H, W + 6, 7)
        hi = windows.amax(-1).transpose(-1, -2).contiguous().unfold(-2, MSCN_WINDOW, 1).amax(-1)
        lo = windows.amin(-1).transpose(-1, -2).contiguous().unfold(-2, MSCN_WINDOW, 1).amin(-1)
        return (hi - lo <= FLAT_TOLERANCE).transpose(-1, -2)


def index_mask(idx: torch.Tensor, shape) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool, device=idx.device)
    mask[tuple(idx.T)] = True
    return mask


def flat_candidates(img: torch.Tensor, padding, idx: torch.Tensor) -> torch.Tensor:
    """:func:`flat_windows`, tested only at the candidates ``idx`` ``(K, 4)`` (n, c, row, col:
    the pixels with ``var < 1e-6``): a boolean mask like ``img``, or (few candidates) the
    indices ``(F, 4)`` of the flat ones among them.

    A flat window (range <= 1e-8) has a computed variance below 1e-10 for values of an image in
    [0, 255] (rounding of ``E[I^2] - mu^2`` is about ``eps * 255^2``), so it is always a
    candidate and the mask equals :func:`flat_windows`'s. When candidates are few (a flat patch
    in a photo), their 7x7 windows are gathered and tested alone instead of two full-size
    running max/min passes; the max and min are exact, so the decision is the same bit for bit.
    Windows are read with the padding's indices (clamped for replicate; outside values 0 for
    zero padding), without a padded copy of the image.
    """
    if idx.shape[0] * MSCN_WINDOW ** 2 > 2 * img.numel():          # many: the full passes
        return flat_windows(img, padding)
    half = MSCN_WINDOW // 2
    h, w = img.shape[-2:]
    offsets = torch.arange(-half, half + 1, device=img.device)
    rows, cols = idx[:, 2, None] + offsets, idx[:, 3, None] + offsets   # (K, 7) image indices
    if padding in ("replicate", 0, "zeros"):
        src = img
        inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    else:
        src, rows, cols = pad(img, (half,) * 4, padding), rows + half, cols + half
    windows = src[idx[:, 0, None, None], idx[:, 1, None, None], rows[:, :, None], cols[:, None, :]]
    if padding in (0, "zeros"):
        windows = torch.where(inside, windows, 0.0)
    flat = windows.amax((1, 2)) - windows.amin((1, 2)) <= FLAT_TOLERANCE
    return idx[flat]
