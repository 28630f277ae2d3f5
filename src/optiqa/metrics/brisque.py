"""BRISQUE: Blind/Referenceless Image Spatial Quality Evaluator (no reference; lower is better).

Mittal, Moorthy & Bovik, "No-reference image quality assessment in the spatial domain", IEEE TIP
21(12), 2012; official MATLAB code ``BRISQUE_release`` (``brisquescore.m``,
``brisque_feature.m``) with the authors' LIVE-trained epsilon-SVR (``allmodel``) and feature
ranges (``allrange``), read from a package (:mod:`optiqa.metrics.nss_models`). Batched:

1. grey image ``double(rgb2gray(uint8))`` in [0, 255];
2. at two scales (the image, then MATLAB ``imresize(im, 0.5)``): MSCN coefficients over the
   whole image (7x7 Gaussian, sigma 7/6, ``filter2`` i.e. zero padding, C = 1); the GGD shape and
   variance of the coefficients, and for their products with the neighbour at
   ``circshift`` offsets (0,1), (1,0), (1,1), (-1,1) the AGGD shape, mean and left/right
   variances: 18 features per scale;
3. ``svm-scale`` to [-1, 1] with the ranges, and the SVR
   ``f(z) = sum_i coef_i exp(-gamma |z - sv_i|^2) - rho`` (what ``svm-predict -b 1`` returns for
   an epsilon-SVR), evaluated here as that kernel sum: no libsvm at run time.

Differences from the MATLAB run: the official script writes the features with ``%f`` (6
decimals) and ``svm-scale`` writes ``%g`` (6 significant digits) before predicting; we keep full
precision (the scores move by less than 1e-3). Coefficients of exactly flat 7x7 windows are 0
(:mod:`optiqa.ops.nss`): where the official code leaves a residue of ~1e-14 instead, its sign
(which depends on MATLAB's order of additions) decides on which AGGD side those pixels count,
and on images with large flat areas the official score moves by several points with it (see
``docs/metrics.md``). Differentiable almost everywhere (shape parameters are grid values).
"""
from __future__ import annotations

import torch

from optiqa.metrics.base import NRMetric
from optiqa.metrics.nss_models import load_brisque_model
from optiqa.ops.nss import BRISQUE_SHIFTS, aggd_mean_factor, aggd_scale, gray_255, mscn
from optiqa.ops.nss_pairs import fits_from_sums, nss_fits, nss_sums
from optiqa.ops.resize import imresize_half_integers


def brisque_features(gray: torch.Tensor, integer_levels: bool = False) -> torch.Tensor:
    """The 36 features of ``brisque_feature.m`` for grey images ``(N, 1, H, W)`` in [0, 255].

    ``integer_levels=True`` says that ``gray`` holds integers (:func:`gray_255`'s output); the
    0.5 resize is then the exact 8-tap sum (:func:`imresize_half_integers`), else it checks.
    Without a gradient the fits come from dot products of planes of the coefficients
    (:mod:`optiqa.ops.nss_pairs`), both scales' in one call: the same sums as fitting each
    paired product, in another float64 rounding (the features agree to ~1e-13 relative).
    """
    coeffs, sums, img = [], [], gray
    for scale in (1, 2):
        # scale 1: gray_255's integer levels (the flat-window test reduces to the variance's)
        coeffs.append(mscn(img, padding=0, integers=integer_levels and scale == 1)[:, 0])
        sums.append(nss_sums(coeffs[-1], BRISQUE_SHIFTS))
        if scale == 1:
            img = imresize_half_integers(img, integers=integer_levels)
    if all(s is not None for s in sums):
        n = torch.tensor([c.shape[-2] * c.shape[-1] for c in coeffs for _ in range(len(gray))],
                         dtype=torch.float64)
        fits = fits_from_sums(torch.cat(sums), n, len(BRISQUE_SHIFTS))
    else:
        fits = [nss_fits(c, BRISQUE_SHIFTS) for c in coeffs]
        fits = tuple(tuple(torch.cat(v) for v in zip(*part)) for part in zip(*fits))
    (g_alpha, g_sigma), (alpha, left, right) = fits               # (2N,), (2N, 4) each
    mean = (right - left) * aggd_mean_factor(alpha) * aggd_scale(alpha)
    pairs = torch.stack([alpha, mean, left.square(), right.square()], -1).flatten(1)
    per_scale = torch.cat([g_alpha[:, None], g_sigma.square()[:, None], pairs], 1)
    return torch.cat(per_scale.chunk(2), dim=1)                   # (N, 36): scale 1, scale 2


def svr_predict(features: torch.Tensor, support: torch.Tensor, coef: torch.Tensor,
                gamma: float, rho: float, feature_min: torch.Tensor, feature_max: torch.Tensor,
                lower: float = -1.0, upper: float = 1.0) -> torch.Tensor:
    """``svm-scale`` then the RBF epsilon-SVR: ``sum_i coef_i exp(-gamma |z - sv_i|^2) - rho``.

    ``z = lower + (upper - lower) (f - min) / (max - min)``, unclipped as svm-scale does.
    """
    z = lower + (upper - lower) * (features - feature_min) / (feature_max - feature_min)
    dist_sq = (z[:, None, :] - support[None]).square().sum(-1)      # (N, n_sv)
    return torch.exp(-gamma * dist_sq) @ coef - rho


class BRISQUE(NRMetric):
    """BRISQUE (Mittal et al. 2012) with the authors' LIVE-trained SVR; see the module docstring.

    ``model``, ``ranges``: an SVR file (LIBSVM format) and its svm-scale range file; default:
    the first pair found (:func:`optiqa.metrics.nss_models.load_brisque_model`).
    """

    def __init__(self, info=None, model=None, ranges=None):
        super().__init__(info)
        svr = load_brisque_model(model, ranges)
        self.model_paths, self.official = svr.paths, svr.official
        self.gamma, self.rho, self.lower_upper = svr.gamma, svr.rho, svr.lower_upper
        self.register_buffer("support", torch.from_numpy(svr.support))
        self.register_buffer("coef", torch.from_numpy(svr.coef))
        self.register_buffer("feature_min", torch.from_numpy(svr.feature_min))
        self.register_buffer("feature_max", torch.from_numpy(svr.feature_max))

    def compute(self, x):
        feats = brisque_features(gray_255(x), integer_levels=True)
        score = svr_predict(feats, self.support, self.coef, self.gamma, self.rho,
                            self.feature_min, self.feature_max, *self.lower_upper)
        return score.to(x.dtype)

    def weight_files(self):
        return list(self.model_paths)
