"""PIQE: Perception-based Image Quality Evaluator (no reference; lower is better, in [0, 100]).

Venkatanath, Praneeth, Chandrasekhar, Channappayya & Medasani, "Blind image quality evaluation
using perception based features", NCC 2015; reproduces MATLAB's ``piqe`` (Image Processing
Toolbox, 2018), which needs no trained model. Batched:

1. the RGB image padded (``replicate``, after the last row/column) to a multiple of 16,
   ``round(255 * im2double(rgb2gray(uint8)))``;
2. MSCN coefficients (7x7 Gaussian, sigma 7/6, replicate padding, C = 1), cut into 16x16 blocks;
3. a block is *active* when the variance of its coefficients exceeds 0.1; an active block has
   a *noticeable artifact* when one of the 11 segments of 6 pixels along any of its four edges
   has a standard deviation below 0.1, and *noise* when ``sigma > 2 beta`` with
   ``beta = |sigma - csd| / max(sigma, csd)``, ``csd`` the ratio of the standard deviations of
   the block's centre (columns 8 and 9) and its surround (MATLAB deletes column 8, then column 9
   of what is left, i.e. the original column 10: the surround keeps column 9; we do the same);
4. ``PIQE = 100 (1 + sum_active [artifact (1 - var) + noise var]) / (1 + n_active)``.

Not a training loss (``info.differentiable`` is False): the score is a count of blocks that pass
thresholds; its derivative is zero almost everywhere except through the variance of the few
blocks already flagged, and it does not say how to make an image better.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from optiqa.metrics.base import NRMetric
from optiqa.ops.nss import gray_255, mscn

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6
# centre columns (0-based) and the surround MATLAB's two deletions leave
_CENTRE = [7, 8]
_SURROUND = [c for c in range(BLOCK) if c not in (7, 9)]


def _std(x: torch.Tensor, dim) -> torch.Tensor:
    return x.var(dim=dim, unbiased=True).clamp(min=0).sqrt()


def piqe_blocks(x: torch.Tensor):
    """Per-block ``(variance, active, artifact, noise)``, each ``(N, n_blocks)``."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, -w % BLOCK, 0, -h % BLOCK), mode="replicate")
    coeffs = mscn(gray_255(x), "replicate", integers=True)[:, 0]   # grey levels
    n, hh, ww = coeffs.shape
    blocks = coeffs.reshape(n, hh // BLOCK, BLOCK, ww // BLOCK, BLOCK).permute(0, 1, 3, 2, 4)
    blocks = blocks.reshape(n, -1, BLOCK, BLOCK)                    # (N, B, 16, 16)
    var = blocks.flatten(2).var(-1, unbiased=True)
    active = var > ACTIVITY_THRESHOLD
    edges = torch.stack([blocks[..., 0, :], blocks[..., :, -1], blocks[..., -1, :],
                         blocks[..., :, 0]], dim=2)                  # (N, B, 4, 16)
    segment_std = _std(edges.unfold(-1, SEGMENT, 1), -1)            # (N, B, 4, 11)
    artifact = (segment_std < IMPAIRED_THRESHOLD).flatten(2).any(-1)
    sigma = var.clamp(min=0).sqrt()
    centre_std = _std(blocks[..., _CENTRE].flatten(2), -1)
    surround_std = _std(blocks[..., _SURROUND].flatten(2), -1)
    csd = torch.nan_to_num(centre_std / surround_std, nan=0.0)     # 0/0 -> 0 as in piqe.m
    beta = (sigma - csd).abs() / torch.maximum(sigma, csd)
    noise = sigma > 2 * beta
    return var, active, artifact, noise


def piqe(x: torch.Tensor) -> torch.Tensor:
    """PIQE per image ``(N,)`` of RGB ``x`` in [0, 1] (module docstring)."""
    var, active, artifact, noise = piqe_blocks(x)
    dist = torch.where(active, artifact * (1 - var) + noise * var, torch.zeros_like(var))
    return 100 * (dist.sum(1) + 1) / (active.sum(1) + 1)


class PIQE(NRMetric):
    """PIQE (Venkatanath et al. 2015) as MATLAB's ``piqe``; see :func:`piqe`."""

    def compute(self, x):
        return piqe(x).to(x.dtype)
