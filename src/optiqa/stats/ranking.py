"""Rank statistics for the study's analysis, as pure functions on NumPy arrays.

- Spearman's rho and Kendall's tau-b row by row (:mod:`optiqa.stats.ranks`, re-exported).
- Kendall's coefficient of concordance W with the tie correction, its chi-square test, a
  permutation test and a leave-one-rater-out check.
- The Wilcoxon signed-rank test (scipy) with the matched-pairs rank-biserial correlation.
- Holm's step-down adjustment of p-values (:mod:`optiqa.stats.multiplicity`, re-exported).

NaN means "undefined" here (a constant ranking, too few objects); :mod:`optiqa.stats.asymmetry`
turns it into ``None`` with a reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optiqa.stats.bootstrap import bootstrap_resamples
from optiqa.stats.coefficients import srcc
from optiqa.stats.multiplicity import holm  # noqa: F401 (re-exported)
from optiqa.stats.ranks import _rows, kendall_rows, spearman_rows  # noqa: F401 (re-exported)


# ---------------------------------------------------------------------------------------------
# Kendall's W
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Concordance:
    """Kendall's W of ``m`` raters ranking ``n`` objects; NaN fields and a reason when undefined."""

    w: float
    chi2: float
    df: int
    p_value: float
    m: int
    n: int
    ties: float              # sum over raters of sum over tie groups of (t^3 - t)
    reason: str | None = None


def tie_sum(ranks) -> float:
    """sum over rows of sum over groups of tied values of (t^3 - t) (the tie term of W)."""
    total = 0.0
    for row in _rows(ranks):
        _, counts = np.unique(row, return_counts=True)
        total += float((counts.astype(np.float64) ** 3 - counts).sum())
    return total


def kendalls_w(scores) -> Concordance:
    """Coefficient of concordance of the rows of ``scores`` (``m`` raters x ``n`` objects).

    Each row is ranked (average ranks for ties); with R_j the rank sum of object j and
    S = sum_j (R_j - m(n+1)/2)^2 (Kendall & Babington Smith, The problem of m rankings, Ann. Math.
    Statist. 10, 1939; with the tie correction of Siegel & Castellan, Nonparametric statistics for
    the behavioral sciences, 2nd ed. 1988, ch. 9)::

        W = 12 S / (m^2 (n^3 - n) - m sum_i T_i),   T_i = sum_groups (t^3 - t) in row i

    W = 1 when all raters agree, 0 when the rank sums are all equal. Test of W = 0: Friedman's
    chi2 = m (n - 1) W with n - 1 degrees of freedom (an approximation; see
    :func:`concordance_permutation_p` for small n). Only the order within a row matters, so any
    orientation shared by all rows gives the same W.
    """
    scores = _rows(scores)
    m, n = scores.shape
    if m < 2 or n < 2:
        reason = f"needs at least 2 raters and 2 objects (got {m} raters, {n} objects)"
        return Concordance(math.nan, math.nan, max(n - 1, 0), math.nan, m, n, 0.0, reason)
    ranks = stats.rankdata(scores, axis=1)
    rank_sums = ranks.sum(axis=0)
    s = float(((rank_sums - m * (n + 1) / 2.0) ** 2).sum())
    ties = tie_sum(ranks)
    den = m * m * (n ** 3 - n) - m * ties
    if den <= 0:
        return Concordance(math.nan, math.nan, n - 1, math.nan, m, n, ties,
                           "every rater gives all objects the same score")
    w = 12.0 * s / den
    chi2 = m * (n - 1) * w
    return Concordance(w, chi2, n - 1, float(stats.chi2.sf(chi2, n - 1)), m, n, ties)


def concordance_permutation_p(scores, n_perm: int = 2000, seed: int = 0) -> float:
    """Permutation p-value of W: each rater's ranks shuffled independently (the null of no
    agreement), ``p = (1 + #{W* >= W}) / (1 + n_perm)`` (Davison & Hinkley 1997, sec. 4.3).

    The tie structure of each row is kept, so the denominator of W is the same in every
    permutation and S alone is compared. NaN when W is undefined.
    """
    scores = _rows(scores)
    observed = kendalls_w(scores)
    if not math.isfinite(observed.w) or n_perm <= 0:
        return math.nan
    m, n = scores.shape
    ranks = stats.rankdata(scores, axis=1)
    centre = m * (n + 1) / 2.0
    s_obs = float(((ranks.sum(0) - centre) ** 2).sum())
    rng = np.random.default_rng(seed)
    hits, done, chunk = 0, 0, max(1, 2_000_000 // (m * n))
    while done < n_perm:
        b = min(chunk, n_perm - done)
        shuffled = rng.permuted(np.broadcast_to(ranks, (b, m, n)).copy(), axis=2)
        s_perm = ((shuffled.sum(axis=1) - centre) ** 2).sum(axis=1)
        hits += int((s_perm >= s_obs - 1e-9 * max(1.0, s_obs)).sum())
        done += b
    return (1 + hits) / (1 + n_perm)


def leave_one_out(scores) -> list[dict]:
    """For each rater i: W of the other raters, and Spearman's rho between rater i's ranking and
    the consensus of the others (their mean rank per object). NaN where undefined."""
    scores = _rows(scores)
    m = scores.shape[0]
    ranks = stats.rankdata(scores, axis=1)
    out = []
    for i in range(m):
        rho = math.nan
        if m > 1:
            consensus = np.delete(ranks, i, axis=0).mean(axis=0)
            rho = float(spearman_rows(ranks[i], consensus)[0])
        out.append({"w_without": kendalls_w(np.delete(scores, i, axis=0)).w,
                    "spearman_with_others": rho})
    return out


# ---------------------------------------------------------------------------------------------
# paired comparison
# ---------------------------------------------------------------------------------------------
def signed_rank_sums(differences) -> tuple[float, float, int]:
    """``(T+, T-, n)``: sums of the average ranks of |d| over positive and negative d, zeros
    dropped (Wilcoxon 1945, ``zero_method='wilcox'``); n = number of non-zero differences."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    d = d[d != 0]
    if d.size == 0:
        return 0.0, 0.0, 0
    r = stats.rankdata(np.abs(d))
    return float(r[d > 0].sum()), float(r[d < 0].sum()), int(d.size)


def rank_biserial(differences) -> float:
    """Matched-pairs rank-biserial correlation, Kerby's simple difference formula (Kerby, The
    simple difference formula: an approach to teaching nonparametric correlation, Comprehensive
    Psychology 3, 2014)::

        r = T+ / (T+ + T-) - T- / (T+ + T-)

    in [-1, 1]; +1 when every non-zero difference is positive. NaN when all differences are 0.
    """
    t_plus, t_minus, n = signed_rank_sums(differences)
    return (t_plus - t_minus) / (t_plus + t_minus) if n else math.nan


def wilcoxon_signed_rank(a, b) -> dict:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` on paired samples (``scipy.stats.wilcoxon``,
    zeros dropped, exact distribution for small n as scipy chooses) with its effect size.

    Returns ``n`` (pairs), ``n_nonzero``, ``t_plus``, ``t_minus``, ``p_value``, ``rank_biserial``
    (positive = ``a`` larger), and ``reason`` (not None when the test is undefined: all
    differences zero).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    d = a - b
    t_plus, t_minus, n_nonzero = signed_rank_sums(d)
    out = {"n": int(d.size), "n_nonzero": n_nonzero, "t_plus": t_plus, "t_minus": t_minus,
           "p_value": math.nan, "rank_biserial": math.nan, "reason": None}
    if n_nonzero == 0:
        out["reason"] = "all paired differences are zero"
        return out
    out["p_value"] = float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)
    out["rank_biserial"] = (t_plus - t_minus) / (t_plus + t_minus)
    return out


# ---------------------------------------------------------------------------------------------
# SRCC of several predictors with one target, with cluster-bootstrap replicates
# ---------------------------------------------------------------------------------------------
def _is_constant(a: np.ndarray) -> bool:
    # the same tolerance as optiqa.stats.correlation, so that strata are judged alike
    return a.size == 0 or bool(np.ptp(a) <= 1e-12 * max(1.0, float(np.abs(a).max())))


def stratum_srcc(predictions, target, strata, groups) -> tuple[np.ndarray, np.ndarray, dict]:
    """SRCC of each predictor (rows of ``predictions``) within each stratum, as
    :func:`optiqa.stats.correlation.summarize_within` counts them.

    A stratum with fewer than 2 items or a constant target has no order to recover and is left
    out (for every predictor alike); a predictor constant inside a stratum whose target varies
    scores 0 there (it cannot tell the levels apart). Returns ``(values (k, strata used),
    content of each used stratum, {reason: strata left out})``.
    """
    predictions = _rows(predictions)
    target, strata, groups = np.asarray(target, np.float64), np.asarray(strata), np.asarray(groups)
    values, owners = [], []
    left_out = {"constant target": 0, "fewer than 2 items": 0}
    for label in np.unique(strata):
        idx = np.flatnonzero(strata == label)
        t = target[idx]
        if idx.size < 2 or _is_constant(t):
            left_out["fewer than 2 items" if idx.size < 2 else "constant target"] += 1
            continue
        column = [0.0 if _is_constant(p) else srcc(p, t) for p in predictions[:, idx]]
        values.append(column)
        owners.append(groups[idx[0]])
    values_arr = np.asarray(values, np.float64).T.reshape(predictions.shape[0], len(values))
    return values_arr, np.asarray(owners), {k: v for k, v in left_out.items() if v}


def srcc_with_replicates(predictions, target, groups, strata=None, n_boot: int = 2000,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """SRCC of each predictor with ``target`` and its cluster-bootstrap replicates.

    Pooled (``strata`` None): SRCC over all items; each replicate draws whole contents
    (``groups``) with replacement and recomputes it. Within strata: the mean of
    :func:`stratum_srcc`; each replicate draws the contents owning the strata and averages their
    SRCCs (as ``summarize_within``). Returns ``(point (k,), replicates (n_boot, k) or None when
    fewer than 2 contents or n_boot = 0, info)``; NaN where undefined (a constant predictor).
    """
    predictions = _rows(predictions)
    target, groups = np.asarray(target, np.float64), np.asarray(groups)
    info: dict = {"n_items": int(target.size), "n_contents": int(np.unique(groups).size)}
    if strata is None:
        info["evaluation"] = "pooled"
        point = np.array([srcc(p, target) for p in predictions])
        units, unit_groups = target.size, groups
        # one target row broadcasts against the k predictor rows (ranked once per replicate)
        replicate = (lambda idx: spearman_rows(predictions[:, idx], target[idx][None, :]))
    else:
        values, owners, left_out = stratum_srcc(predictions, target, strata, groups)
        info.update(evaluation="within", strata_used=int(values.shape[1]), strata_excluded=left_out,
                    n_contents=int(np.unique(owners).size))
        point = values.mean(axis=1) if values.shape[1] else np.full(len(predictions), np.nan)
        units, unit_groups = values.shape[1], owners
        replicate = (lambda idx: values[:, idx].mean(axis=1))
    if n_boot <= 0 or info["n_contents"] < 2:
        return point, None, info
    reps = np.stack([replicate(idx) for idx in bootstrap_resamples(units, unit_groups, n_boot,
                                                                   seed)])
    return point, reps, info


# ---------------------------------------------------------------------------------------------
# agreement of two quality vectors over the same objects
# ---------------------------------------------------------------------------------------------
MIN_METRICS = 3


@dataclass
class Agreement:
    """Spearman and Kendall between two quality vectors, with bootstrap replicates (or None)."""

    n_metrics: int
    spearman: float = math.nan
    kendall: float = math.nan
    spearman_reps: np.ndarray | None = None
    kendall_reps: np.ndarray | None = None
    reason: str | None = None


def rank_agreement(optimization, assessment, optimization_reps=None,
                   assessment_reps=None) -> Agreement:
    """Spearman's rho and Kendall's tau-b between two quality vectors over the same metrics.

    rho = Pearson correlation of average ranks (Spearman 1904), tau-b as
    ``scipy.stats.kendalltau`` (:func:`spearman_rows`, :func:`kendall_rows`); the replicates
    (``(n_boot, k)`` each, row b of both drawn in the same bootstrap resample) give the
    replicates of rho and tau. Undefined (NaN and a reason) with
    fewer than :data:`MIN_METRICS` metrics (with 2 the correlation is +-1 whatever the data) or
    when one side is the same for every metric.
    """
    q = np.asarray(optimization, np.float64).ravel()
    a = np.asarray(assessment, np.float64).ravel()
    if q.shape != a.shape:
        raise ValueError(f"quality vectors differ in length: {q.size} vs {a.size}")
    out = Agreement(n_metrics=int(q.size))
    if q.size < MIN_METRICS:
        out.reason = f"fewer than {MIN_METRICS} fidelity metrics ({q.size})"
    elif _is_constant(q):
        out.reason = "optimization quality is the same for every metric"
    elif _is_constant(a):
        out.reason = "assessment quality is the same for every metric"
    if out.reason:
        return out
    # the same arithmetic as the replicates, so that a replicate equal to the data gives exactly
    # the estimate (scipy's spearmanr may differ in the last bit)
    out.spearman, out.kendall = float(spearman_rows(q, a)[0]), float(kendall_rows(q, a)[0])
    if optimization_reps is not None and assessment_reps is not None:
        out.spearman_reps = spearman_rows(optimization_reps, assessment_reps)
        out.kendall_reps = kendall_rows(optimization_reps, assessment_reps)
    return out
