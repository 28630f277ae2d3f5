"""MATLAB ``double(rgb2gray(uint8 image))``: the grey levels that NIQE, BRISQUE and PIQE start from.

``gray = floor(w_R R + w_G G + w_B B + 0.5)`` for 8-bit levels ``R, G, B`` in 0..255 and MATLAB's
weights (:data:`optiqa.ops.color.MATLAB_GRAY_WEIGHTS`), computed in float64 (MATLAB rounds the
weighted sum of a ``uint8`` image half away from zero back to ``uint8``).

**A float32 path that gives the same levels bit for bit.** Let ``E`` be the exact (real) weighted
sum of the float64 weights. Over all 2^24 triplets ``(R, G, B)``, ``E + 0.5`` is never closer than
``DELTA = 4.56e-6`` to an integer (attained at (255, 206, 117); enumerated exactly in integer
arithmetic with the weights as multiples of 2^-56, ``tests/test_nss_exact.py``). The float64
sum's rounding error is below 1e-12, so the float64 result is ``floor(E + 0.5)``. The float32
path splits each weight as ``w = h + l`` with ``h`` a multiple of 2^-16 (``|l| <= 2^-17``):

- ``H = h_R R + h_G G + h_B B + 0.5`` is a multiple of 2^-16 below 2^8, i.e. an integer number
  of units below 2^24: exact in float32 in any order; ``F = floor(H)`` and ``r = H - F`` in
  [0, 1) are exact too;
- ``L = l_R R + l_G G + l_B B`` (``|L| < 6e-3``) is rounded: its error, with that of the float32
  ``l`` and of ``t = r + L`` (``|t| < 1.01``), is below 1e-7 < ``DELTA``;
- ``E + 0.5 = F + r + (E - H + 0.5)`` and ``E - H + 0.5 = L`` up to that error, so
  ``floor(E + 0.5) = F + floor(t)`` (``t`` is never within 1e-7 of an integer).

A test compares this path with the float64 sum on all 2^24 triplets (equal everywhere). It runs
in single-channel float32 passes instead of a 3-channel float64 copy (1.8x faster per Set14
photo, with the 8-bit test, in strips: docs/performance.md).
"""
from __future__ import annotations

import numpy as np
import torch

from optiqa.ops.color import MATLAB_GRAY_WEIGHTS

# h = round(w 2^16) / 2^16 and l = w - h rounded to float32 (both as Python floats holding the
# float32 values, so that the scalars of the float32 ops below are exactly these)
_HIGH = tuple(round(w * 65536.0) / 65536.0 for w in MATLAB_GRAY_WEIGHTS)
_LOW = tuple(float(np.float32(w - h)) for w, h in zip(MATLAB_GRAY_WEIGHTS, _HIGH))


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
    """:func:`gray_float64` of 8-bit levels (float32 integers 0..255, ``(N, 3, H, W)``), by the
    exact float32 split of the module docstring; ``(N, 1, H, W)`` float64 (into ``out``)."""
    r, g, b = levels[:, 0], levels[:, 1], levels[:, 2]
    high = torch.mul(r, _HIGH[0]).add_(g, alpha=_HIGH[1]).add_(b, alpha=_HIGH[2]).add_(0.5)
    floor = torch.floor(high)
    low = torch.mul(r, _LOW[0]).add_(g, alpha=_LOW[1]).add_(b, alpha=_LOW[2])
    step = high.sub_(floor).add_(low).floor_()            # floor(r + L): -1, 0 or 1
    floor.add_(step)
    if out is None:
        return floor.double()[:, None]
    return out.copy_(floor[:, None])


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
