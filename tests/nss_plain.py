"""Plain float64 NumPy transcriptions of the NSS parameter estimators of the official MATLAB
code (estimateaggdparam.m, estimateggdparam.m; Mittal et al. 2012, BRISQUE/NIQE), shared by
the tests that check optiqa's fits against them."""
from __future__ import annotations

import numpy as np
from scipy.special import gamma

GAM = np.arange(200, 10001) / 1000.0   # the MATLAB code's grid of shape parameters
RATIO_AGGD = gamma(2 / GAM) ** 2 / (gamma(1 / GAM) * gamma(3 / GAM))
RATIO_GGD = gamma(1 / GAM) * gamma(3 / GAM) / gamma(2 / GAM) ** 2


def aggd_plain(vec):
    """estimateaggdparam.m: (alpha, left sigma, right sigma); NaN for an empty side, and
    alpha = GAM[0] (0.2) then."""
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(np.mean(vec[vec < 0] ** 2)) if (vec < 0).any() else np.nan
        right = np.sqrt(np.mean(vec[vec > 0] ** 2)) if (vec > 0).any() else np.nan
        g = left / right
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
        rn = rhat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = GAM[0] if np.isnan(rn) else GAM[np.argmin((RATIO_AGGD - rn) ** 2)]
    return alpha, left, right


def ggd_plain(vec):
    """estimateggdparam.m: (alpha, sigma)."""
    s2 = np.mean(vec ** 2)
    return GAM[np.argmin(np.abs(s2 / np.mean(np.abs(vec)) ** 2 - RATIO_GGD))], np.sqrt(s2)
