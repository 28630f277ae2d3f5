"""The cluster bootstrap: items that share a reference image are not independent, so whole
contents are drawn with replacement (Efron & Tibshirani, An introduction to the bootstrap, 1993,
ch. 8), and percentile intervals of the replicates.
"""
from __future__ import annotations

import numpy as np

from optiqa.stats.coefficients import as_pair

DEFAULT_BOOTSTRAP = 2000
# A cluster bootstrap over fewer contents than this gives intervals that are too narrow to trust
# (each resample can only reshuffle a handful of clusters); they are flagged, and with a single
# content (nothing to resample) no interval is given at all.
MIN_RELIABLE_CONTENTS = 10


def bootstrap_reliability(groups, n: int) -> tuple[int, str | None, bool]:
    """``(number of contents, warning or None, interval possible)`` for a cluster bootstrap."""
    k = n if groups is None else len(np.unique(np.asarray(groups)))
    if k <= 1:
        return k, "one content only: no bootstrap interval", False
    if k < MIN_RELIABLE_CONTENTS:
        return k, (f"only {k} contents: bootstrap interval unreliable (fewer than "
                   f"{MIN_RELIABLE_CONTENTS})"), True
    return k, None, True


def group_index(groups, n: int) -> list[np.ndarray]:
    """Item indices of each group (one group per item when ``groups`` is None)."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have one label per item ({n}), got shape {groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds)


def bootstrap_resamples(n: int, groups=None, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0):
    """Yield ``n_boot`` index arrays: whole groups drawn with replacement (items when no groups).

    Resampling by reference content keeps the dependence between items of one content inside a
    resample, which gives honest (wider) intervals than resampling items (Efron & Tibshirani,
    An introduction to the bootstrap, 1993, ch. 8; the cluster bootstrap).
    """
    index = group_index(groups, n)
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        pick = rng.integers(0, len(index), size=len(index))
        yield np.concatenate([index[i] for i in pick])


def percentile_ci(values, level: float = 0.95, min_valid: float = 0.9):
    """Percentile interval of bootstrap replicates; ``None`` when too many replicates are NaN."""
    values = np.asarray(values, dtype=np.float64)
    ok = values[np.isfinite(values)]
    if values.size == 0 or ok.size < min_valid * values.size:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def bootstrap_ci(stat, pred, target, groups=None, n_boot: int = DEFAULT_BOOTSTRAP,
                 level: float = 0.95, seed: int = 0):
    """Percentile CI of ``stat(pred, target)`` under the cluster bootstrap."""
    pred, target = as_pair(pred, target)
    reps = [stat(pred[i], target[i]) for i in bootstrap_resamples(pred.size, groups, n_boot, seed)]
    return percentile_ci(reps, level)
