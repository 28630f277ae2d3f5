"""Correlation coefficients between metric scores and human judgments, NaN when undefined.

- SRCC (Spearman's rho; ties get average ranks) and KRCC (Kendall's tau-b, tie-corrected):
  rank agreement, invariant to any monotone mapping (scipy.stats.spearmanr / kendalltau);
- Pearson's linear correlation without any fit (the PLCC after the VQEG logistic is
  :func:`optiqa.stats.logistic.plcc`).

A side that is constant (within a relative 1e-12) has no order: the coefficient is NaN, never 0.
Inputs are checked once by :func:`as_pair` (same length, finite).
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


def srcc(pred, target) -> float:
    """Spearman rank-order correlation (ties get average ranks); NaN when either side is constant."""
    pred, target = as_pair(pred, target)
    if pred.size < 2 or is_constant(pred) or is_constant(target):
        return math.nan
    return float(stats.spearmanr(pred, target)[0])


def krcc(pred, target) -> float:
    """Kendall rank correlation, tau-b (tie-corrected, scipy's default); NaN when constant."""
    pred, target = as_pair(pred, target)
    if pred.size < 2 or is_constant(pred) or is_constant(target):
        return math.nan
    return float(stats.kendalltau(pred, target)[0])


def pearson(pred, target) -> float:
    """Plain Pearson linear correlation (no fit); NaN when either side is constant."""
    pred, target = as_pair(pred, target)
    if pred.size < 2 or is_constant(pred) or is_constant(target):
        return math.nan
    return float(np.corrcoef(pred, target)[0, 1])
