"""Correlation coefficients between metric scores and human judgments, NaN when undefined.

- SRCC (Spearman's rho; ties get average ranks) and KRCC (Kendall's tau-b, tie-corrected):
  rank agreement, invariant to any monotone mapping (scipy.stats.spearmanr / kendalltau);
- Pearson's linear correlation without any fit (the PLCC after the VQEG logistic is
  :func:`optiqa.stats.logistic.plcc`).

A side that is constant (within a relative 1e-12) has no order: the coefficient is NaN, never 0.
Inputs are checked once by :func:`as_pair` (same length, finite).

SRCC and KRCC give scipy's values bit for bit (``tests/test_correlation.py`` compares them on
thousands of cases with and without ties) without scipy's per-call overhead: a call of
``spearmanr`` or ``kendalltau`` costs 0.1-0.3 ms of argument handling (``nan_policy``, signature
inspection, the p-value, which is not used here) whatever the size, and the transfer stage's
early stopping computes a within-stratum SRCC and KRCC for every stratum of the validation set
in every epoch of every repeat (the example: about 40,000 calls on strata of 5 items). SRCC is
scipy's own formula, the Pearson correlation (``numpy.corrcoef``) of the average ranks;
KRCC counts concordant minus discordant pairs exactly and divides as ``kendalltau`` does.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def as_pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``target`` as flat float64 arrays of one length, all finite (else ValueError)."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"pred and target lengths differ: {pred.size} vs {target.size}")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ValueError("pred and target must be finite (NaN or inf found)")
    return pred, target


def is_constant(a: np.ndarray) -> bool:
    """True for an empty array or one whose spread is within a relative 1e-12 of its size."""
    return a.size == 0 or bool(np.ptp(a) <= 1e-12 * max(1.0, float(np.abs(a).max())))


# Above this many items KRCC is left to scipy's O(n log n) count (the pairwise count below takes
# O(n^2) memory and time); the value is the same either way.
PAIRWISE_KRCC_MAX = 1000


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties given the mean of the ranks they span (``scipy.stats.
    rankdata(a)``, method ``average``; the values are exact: integers or halves)."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    counts = np.diff(np.r_[first, a.size])
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(first + 1 + (counts - 1) / 2, counts)
    return ranks


def srcc(pred, target) -> float:
    """Spearman rank-order correlation (ties get average ranks); NaN when either side is constant.

    ``rho = corrcoef(rank(pred), rank(target))`` (Spearman 1904), computed as
    ``scipy.stats.spearmanr`` computes it (the same ranks through the same ``numpy.corrcoef``:
    the same bits)."""
    pred, target = as_pair(pred, target)
    if pred.size < 2 or is_constant(pred) or is_constant(target):
        return math.nan
    return float(np.corrcoef(np.stack([average_ranks(pred), average_ranks(target)]))[1, 0])


def krcc(pred, target) -> float:
    """Kendall rank correlation, tau-b (tie-corrected, scipy's default); NaN when constant.

    ``tau_b = (C - D) / sqrt(n0 - T_x) / sqrt(n0 - T_y)`` (Kendall 1945): ``C - D`` is the sum
    over pairs ``i < j`` of ``sign(x_j - x_i) sign(y_j - y_i)``, ``n0 - T_x`` the number of pairs
    not tied in ``x``; counted exactly, divided and clipped to [-1, 1] as
    ``scipy.stats.kendalltau`` does, hence its value bit for bit."""
    pred, target = as_pair(pred, target)
    if pred.size < 2 or is_constant(pred) or is_constant(target):
        return math.nan
    if pred.size > PAIRWISE_KRCC_MAX:
        return float(stats.kendalltau(pred, target)[0])
    i, j = np.triu_indices(pred.size, 1)
    sx, sy = np.sign(pred[j] - pred[i]), np.sign(target[j] - target[i])
    # sums of -1/0/1 terms: exact integers in float64
    con_minus_dis, untied_x, untied_y = (sx * sy).sum(), (sx * sx).sum(), (sy * sy).sum()
    return float(np.minimum(1.0, max(-1.0, con_minus_dis / np.sqrt(untied_x)
                                     / np.sqrt(untied_y))))


def pearson(pred, target) -> float:
    """Plain Pearson linear correlation (no fit); NaN when either side is constant."""
    pred, target = as_pair(pred, target)
    if pred.size < 2 or is_constant(pred) or is_constant(target):
        return math.nan
    return float(np.corrcoef(pred, target)[0, 1])
