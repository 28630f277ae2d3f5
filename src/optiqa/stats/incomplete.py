"""Agreement among raters who each rank only some of the objects (incomplete rankings).

In a study, the circularity rule keeps every evaluator from judging the models trained with its
own loss family, so no model may be judged by every evaluator and Kendall's W over "the cells
every evaluator may judge" can be left with few or no objects. Here each pair of raters is
compared over the objects *both* judge, and the pairs are averaged:

    rho_bar = (1 / |P|) sum_{(i, j) in P} rho_s(x_i, x_j | objects judged by i and j)

over the pairs P with at least ``min_shared`` shared objects (rho_s: Spearman's rho with
average ranks for ties). For complete rankings without ties the mean pairwise Spearman and
Kendall's W are the same statistic (Kendall & Babington Smith, Ann. Math. Statist. 10, 1939;
Kendall & Gibbons, Rank correlation methods, 5th ed., 1990, ch. 6):

    W = ((m - 1) rho_bar + 1) / m

so ``w_equivalent`` = ((m - 1) rho_bar + 1) / m generalises W to incomplete rankings and equals
W when every rater ranks every object. Its null distribution is
estimated by permuting each rater's scores among the objects it judged (the null of no
agreement), with ``n_perm`` Monte Carlo permutations (p = (1 + #{rho_bar* >= rho_bar}) /
(1 + n_perm), one-sided: agreement is the alternative).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optiqa.stats.rows.base import Row


@dataclass
class IncompleteAgreement(Row):
    n_raters: int
    n_objects: int                 # objects judged by at least one rater
    n_pairs: int                   # rater pairs with at least min_shared shared objects
    mean_spearman: float | None
    w_equivalent: float | None
    p_permutation: float | None
    n_permutations: int
    min_shared: int
    reason: str | None = None


def _pair_rhos(x: np.ndarray, mask: np.ndarray, min_shared: int) -> list[float]:
    rhos = []
    m = x.shape[0]
    for i in range(m):
        for j in range(i + 1, m):
            both = mask[i] & mask[j]
            if both.sum() < min_shared:
                continue
            a, b = x[i, both], x[j, both]
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                continue   # a constant ranking has no order to agree with
            rhos.append(float(stats.spearmanr(a, b).statistic))
    return rhos


def incomplete_agreement(scores, min_shared: int = 3, n_perm: int = 1000,
                         seed: int = 0) -> IncompleteAgreement:
    """Mean pairwise Spearman over shared objects and its W-equivalent (module docstring).

    ``scores``: ``(m raters, n objects)``, NaN where a rater does not judge an object; any
    orientation shared by all raters (higher = better for all, or lower for all).
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"scores: expected (raters, objects), got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError("scores: inf found (use NaN for objects a rater does not judge)")
    mask = ~np.isnan(x)
    m, n = x.shape
    judged = int(mask.any(axis=0).sum())

    def result(rho, p, pairs, reason=None):
        raters = m
        w = None if rho is None else ((raters - 1) * rho + 1) / raters
        return IncompleteAgreement(m, judged, pairs, rho, w, p, n_perm, min_shared, reason)

    rhos = _pair_rhos(x, mask, min_shared)
    if not rhos:
        return result(None, None, 0, f"no pair of raters shares {min_shared} or more objects "
                                     "with a non-constant ranking")
    rho = float(np.mean(rhos))
    p = None
    if n_perm > 0:
        rng = np.random.default_rng(seed)
        hits = 0
        for _ in range(n_perm):
            y = x.copy()
            for i in range(m):
                idx = np.flatnonzero(mask[i])
                y[i, idx] = x[i, rng.permutation(idx)]
            r = _pair_rhos(y, mask, min_shared)
            if r and np.mean(r) >= rho - 1e-12:
                hits += 1
        p = (1 + hits) / (1 + n_perm)
    return result(rho if math.isfinite(rho) else None, p, len(rhos))
