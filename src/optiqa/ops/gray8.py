"""MATLAB ``double(rgb2gray(uint8 image))``: the grey levels that NIQE, BRISQUE and PIQE start from.

``gray = floor(w_R R + w_G G + w_B B + 0.5)`` for 8-bit levels ``R, G, B`` in 0..255 and MATLAB's
weights (:data:`optiqa.ops.color.MATLAB_GRAY_WEIGHTS`), computed in float64 (MATLAB rounds the
weighted sum of a ``uint8`` image half away from zero back to ``uint8``).

**A shorter exact path for 8-bit levels.** Let ``E`` be the exact (real) weighted sum of the
float64 weights. Over all 2^24 triplets ``(R, G, B)``, ``E + 0.5`` is never closer than
``DELTA = 4.56e-6`` to an integer (attained at (255, 206, 117); enumerated exactly in integer
arithmetic with the weights as multiples of 2^-56, ``tests/test_nss_exact.py``). The float64
sum's rounding error is below 1e-12, so the float64 result is ``floor(E + 0.5)``. With each
weight rounded to a multiple of 2^-32 (``w'``, ``|w' - w| <= 2^-33``):

- ``E' = w'_R R + w'_G G + w'_B B + 0.5`` is computed exactly in float64 in any order (every
  product and partial sum is a multiple of 2^-32 below 2^8: at most 40 significant bits);
- ``|E' - (E + 0.5)| <= 3 * 255 * 2^-33 < 9e-8 < DELTA``, so ``floor(E') = floor(E + 0.5)``.

A test compares this path with the float64 sum on all 2^24 triplets (equal everywhere). It
runs on the 8-bit levels found in float32 (one pass of single-precision tests per strip) and
needs four single-channel float64 operations after them, in strips (docs/performance.md).
"""
from __future__ import annotations

import torch

from optiqa.ops.color import MATLAB_GRAY_WEIGHTS

# the weights rounded to multiples of 2^-32 (module docstring)
_WEIGHTS_2_32 = tuple(round(w * 2.0 ** 32) / 2.0 ** 32 for w in MATLAB_GRAY_WEIGHTS)


def gray_255(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``double(rgb2gray(uint8 image))``: grey levels 0..255 of RGB ``x`` in [0, 1],
    ``(N, 1, H, W)`` float64.

    Channels within 1e-3 of an 8-bit level are taken as that level (a uint8 image stored as
    float), so the rounding of the weighted sum is MATLAB's. The rounding passes the gradient
    straight through (``rounded + (g - g.detach())`` is exactly ``rounded`` in value).
    """
    weights = x.new_tensor(MATLAB_GRAY_WEIGHTS, dtype=torch.float64)
    if not (torch.is_grad_enabled() and x.requires_grad):  # same values, fewer passes
        gray = _gray_of_uint8_levels(x)
        if gray is not None:
            return gray
        v = x.to(torch.float64, copy=True).mul_(255.0)   # a copy: never scale the caller's x
        # v + snap * (|snap| < 1e-3), snap = round(v) - v: the value of where(|snap| < 1e-3,
        # round(v), v) exactly (snap is exact by Sterbenz's lemma, so v + snap is round(v)),
        # with a float 0/1 factor instead of a boolean mask (2x faster on the CPU)
        snap = torch.round(v).sub_(v)
        v.addcmul_(snap, torch.lt(snap.abs(), 1e-3, out=torch.empty_like(snap)))
        return gray_float64(v)
    v = x * 255.0
    with torch.no_grad():
        snap = torch.round(v).sub_(v)
        snap.masked_fill_(snap.abs() >= 1e-3, 0.0)
    g = torch.einsum("c,nchw->nhw", weights, (v + snap).double())[:, None]
    return torch.floor(g.detach() + 0.5) + (g - g.detach())


def gray_float64(v: torch.Tensor) -> torch.Tensor:
    """``floor(w . v + 0.5)`` in float64 for RGB values ``v`` (``(N, 3, H, W)``, 0..255 scale)."""
    weights = v.new_tensor(MATLAB_GRAY_WEIGHTS, dtype=torch.float64)
    return torch.einsum("c,nchw->nhw", weights, v.double())[:, None].add_(0.5).floor_()


def gray_of_levels(levels: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`gray_float64` of 8-bit levels (float32 integers 0..255, ``(N, 3, H, W)``), with
    the weights rounded to multiples of 2^-32 (module docstring); ``(N, 1, H, W)`` float64
    (into ``out``)."""
    if out is None:
        n, _, h, w = levels.shape
        out = torch.empty(n, 1, h, w, dtype=torch.float64, device=levels.device)
    # every product and partial sum is a multiple of 2^-32 below 2^8: exact in float64
    out.copy_(levels[:, 0:1]).mul_(_WEIGHTS_2_32[0])
    out.add_(levels[:, 1:2], alpha=_WEIGHTS_2_32[1]).add_(levels[:, 2:3], alpha=_WEIGHTS_2_32[2])
    return out.add_(0.5).floor_()


# elements per channel in one strip of _gray_of_uint8_levels (~128 KB of float32): the level
# test and the split sums of a strip run in the cache instead of over full-size temporaries
GRAY_STRIP_ELEMENTS = 1 << 15


def _gray_of_uint8_levels(x: torch.Tensor):
    """:func:`gray_of_levels` of ``x``'s 8-bit levels when ``x`` is an 8-bit image stored as
    float (the test of :func:`_uint8_levels`, strip by strip), else None."""
    n, _, h, w = x.shape
    out = torch.empty(n, 1, h, w, dtype=torch.float64, device=x.device)
    step = max(1, GRAY_STRIP_ELEMENTS // max(1, n * w))
    for r0 in range(0, h, step):
        levels = _uint8_levels(x[..., r0:r0 + step, :])
        if levels is None:
            return None
        gray_of_levels(levels, out=out[..., r0:r0 + step, :])
    return out


# An 8-bit image stored as float is within 3e-5 of its levels in float32 (x*255 rounded twice);
# below this margin every channel is also within 1e-3 of its level in float64 (gray_255's test)
_FLOAT32_SNAP = 0.9e-3


def _uint8_levels(x: torch.Tensor):
    """The 8-bit levels of ``x`` (float32) when every channel is within ``_FLOAT32_SNAP`` of
    one in float32 (a uint8 image stored as float), else None.

    Where it returns levels they equal gray_255's float64 snapping bit for bit: a float64 value
    within 1e-3 of the level ``k`` snaps to ``k`` exactly, and the float32 test (cheap
    single-precision passes instead of double ones) implies the float64 one, since
    ``|x*255 (float32) - x*255 (float64)| < 4e-5`` for ``x`` in [0, 1].
    """
    v32 = x.float().mul(255.0)
    levels = torch.round(v32)
    lo, hi = torch.aminmax(v32.sub_(levels))              # one pass for max |v - level|
    if not max(-float(lo), float(hi)) < _FLOAT32_SNAP:    # NaN fails too
        return None
    return levels
