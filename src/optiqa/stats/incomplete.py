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
(1 + n_perm), one-sided: agreement is the alternative). The replicates are drawn one by one
(the same random stream as permuting one replicate at a time) and their rho_bar computed for all
replicates at once per rater pair (:func:`_replicate_means`); a replicate within 1e-9 of the
threshold is decided by the scalar computation, so the p-value is exactly the scalar loop's
(which spent ~30 s of the example's analysis on 110,000 calls of ``scipy.stats.spearmanr``).
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
        y = _permutations(x, mask, n_perm, np.random.default_rng(seed))
        hits = 0
        for b, mean in enumerate(_replicate_means(y, mask, min_shared)):
            if abs(mean - (rho - 1e-12)) <= _EXACT_WITHIN:   # too close to call: as before
                r = _pair_rhos(y[b], mask, min_shared)
                hits += bool(r) and bool(np.mean(r) >= rho - 1e-12)
            else:
                hits += bool(mean >= rho - 1e-12)              # False for NaN: no pair
        p = (1 + hits) / (1 + n_perm)
    return result(rho if math.isfinite(rho) else None, p, len(rhos))


# A replicate's mean rho from _replicate_means is within ~1e-15 of the one _pair_rhos and
# np.mean give (ranks below a few hundred, one Pearson formula against scipy's corrcoef); a
# replicate this close to the threshold is decided by the scalar code itself, so the count of
# hits, and the p-value, are the scalar loop's exactly.
_EXACT_WITHIN = 1e-9


def _permutations(x: np.ndarray, mask: np.ndarray, n_perm: int, rng) -> np.ndarray:
    """``(n_perm, m, n)``: per replicate, each rater's scores permuted among the objects it
    judged, drawn replicate by replicate and rater by rater (``rng.permutation`` of the judged
    indices: the same draws, in the same order, as a loop that permutes one replicate at a
    time)."""
    judged = [np.flatnonzero(mask[i]) for i in range(x.shape[0])]
    y = np.repeat(x[None], n_perm, axis=0)
    for b in range(n_perm):
        for i, idx in enumerate(judged):
            y[b, i, idx] = x[i, rng.permutation(idx)]
    return y


def _replicate_means(y: np.ndarray, mask: np.ndarray, min_shared: int) -> np.ndarray:
    """``(n_perm,)``: each replicate's mean Spearman rho over the rater pairs of
    :func:`_pair_rhos` (same pairs, a pair left out of a replicate where one of its rankings is
    constant; NaN where none is left), every pair's rho computed for all replicates at once:
    average ranks along the objects both raters judged (``scipy.stats.rankdata``), then
    Pearson's r of the ranks, clipped to [-1, 1] as ``numpy.corrcoef`` clips."""
    from scipy.stats import rankdata

    m = y.shape[1]
    total = np.zeros(y.shape[0])
    count = np.zeros(y.shape[0])
    for i in range(m):
        for j in range(i + 1, m):
            both = mask[i] & mask[j]
            if both.sum() < min_shared:
                continue
            a, b = y[:, i, both], y[:, j, both]
            ok = (np.ptp(a, axis=1) != 0) & (np.ptp(b, axis=1) != 0)
            ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
            ra -= ra.mean(axis=1, keepdims=True)
            rb -= rb.mean(axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.clip((ra * rb).sum(axis=1)
                            / np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1)), -1, 1)
            total += np.where(ok, r, 0.0)
            count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count
