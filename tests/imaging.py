"""Test images and degradations shared by the metric tests (one place, imported as ``imaging``).

Real content comes from the built-in sample photos (:mod:`optiqa.data.samples`), so no test
needs a download. Noise is one fixed Gaussian field scaled by ``sigma``: levels of the same seed
differ only in strength, which is what an ordering test wants.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from optiqa.ops.color import MATLAB_GRAY_WEIGHTS
from optiqa.data.samples import load_sample


def astronaut_crop(size: int, top: int = 100, left: int = 150) -> torch.Tensor:
    """A ``(1, 3, size, size)`` crop of the full-resolution astronaut photo (exact 8-bit levels)."""
    return load_sample("astronaut")[None, :, top:top + size, left:left + size].contiguous()


def noisy(ref: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """``ref`` plus white Gaussian noise of standard deviation ``sigma``, clipped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return (ref + sigma * torch.randn(ref.shape, generator=g)).clamp(0, 1)


def box_blur(ref: torch.Tensor, k: int) -> torch.Tensor:
    """``k x k`` moving average with replicated borders (same size as ``ref``)."""
    return F.avg_pool2d(F.pad(ref, (k // 2,) * 4, mode="replicate"), k, 1)


def smooth_random(n: int, size: int | tuple[int, int], seed: int = 1) -> torch.Tensor:
    """``n`` random RGB images smoothed by a 3x3 average: texture without real-photo statistics.

    ``size`` is the side of a square or ``(height, width)``.
    """
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(n, 3, h + 2, w + 2, generator=g), 3, 1)


def matlab_gray_uint8(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` as the official evaluations call it (uint8 in, uint8 out), in float64.

    ``rgb`` is ``(3, H, W)`` in [0, 1]; the weighted sum of ``255 rgb`` is rounded half up to the
    grey levels 0..255 (for 8-bit inputs exactly what rgb2gray returns).
    """
    return np.floor(np.tensordot(MATLAB_GRAY_WEIGHTS, rgb * 255.0, axes=(0, 0)) + 0.5)
