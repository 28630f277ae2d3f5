"""Rounding as MATLAB does it, and the 8-bit quantisation every image path shares.

MATLAB's ``round`` and its conversions to ``uint8`` round halves *away from zero*:
``round(x) = sign(x) floor(|x| + 1/2)``. Python's ``round`` and ``torch.round`` round halves to
the *even* neighbour (IEEE 754 "banker's rounding"), so the two disagree exactly on ties
(``round(2.5)`` is 3 in MATLAB and 2 in Python). The official MATLAB code of the metrics we
reproduce (``ssim.m``, ``FeatureSIM.m``, ``VSI.m``, ``imresize``, ``rgb2ycbcr`` on ``uint8``)
rounds the MATLAB way, and so does every 8-bit conversion in this package: writing a PNG,
simulating an 8-bit camera or codec, the uint8 intermediates of ``imresize``. For values in
[0, 255] half away from zero is half up, ``floor(v + 1/2)``.
"""
from __future__ import annotations

import math

import torch


def matlab_round(v: float) -> int:
    """MATLAB ``round`` of a scalar: ``sign(v) floor(|v| + 1/2)`` (halves away from zero)."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def round_half_away(t: torch.Tensor) -> torch.Tensor:
    """MATLAB ``round`` of a tensor, elementwise: ``sign(t) floor(|t| + 1/2)``."""
    return torch.sign(t) * torch.floor(t.abs() + 0.5)


def matlab_downsample_factor(h: int, w: int) -> int:
    """``F = max(1, round(min(H, W) / 256))``: the automatic downsampling of ``ssim.m`` (Wang
    et al. 2004, the 2009 script), ``FeatureSIM.m`` and ``VSI.m``, so that a window sees about
    256 pixels of the shorter side."""
    return max(1, matlab_round(min(h, w) / 256))


def quantize_8bit(img: torch.Tensor) -> torch.Tensor:
    """``img`` clamped to [0, 1] and rounded to the 256 levels ``k / 255`` (as a float tensor):
    ``floor(255 clamp(img, 0, 1) + 1/2) / 255``, the value an 8-bit file would hold. Not
    differentiable (zero gradient almost everywhere); :func:`optiqa.ops.color.round_to_8bit` is
    the straight-through version for losses."""
    return torch.floor(img.clamp(0, 1) * 255.0 + 0.5) / 255.0


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """The 8-bit levels ``floor(255 clamp(img, 0, 1) + 1/2)`` as a ``uint8`` tensor (same shape,
    detached; half-precision input is widened to float32 first, so it rounds as float32 does)."""
    img = img.detach()
    if img.dtype not in (torch.float32, torch.float64):
        img = img.float()
    return torch.floor(img.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


__all__ = ["matlab_round", "round_half_away", "matlab_downsample_factor", "quantize_8bit",
           "to_uint8"]
