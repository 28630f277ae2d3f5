"""Permutation tests of rank agreement over k objects (fidelity metrics), exact up to k = 8.

Null hypothesis: the assessment ranking of the k metrics is unrelated to their ranking as
losses, so every one of the k! pairings of the two vectors is equally likely (Pitman,
Significance tests which may be applied to samples from any populations II: the correlation
coefficient test, JRSS Suppl. 4, 1937; Kendall & Gibbons, Rank correlation methods, 5th ed. 1990,
ch. 4 and 5). For a statistic T (Spearman's rho, Kendall's tau-b, or the median rho over an
evaluator panel) observed as t::

    p_greater = #{pi : T(pi) >= t} / k!       (agreement)
    p_less    = #{pi : T(pi) <= t} / k!       (reversal)
    p         = #{pi : |T(pi)| >= |t|} / k!   (two-sided, the one reported)

computed over all k! orders for k <= :data:`EXACT_MAX_K`; beyond, over ``n`` orders drawn at
random, ``p = (1 + hits) / (1 + n)`` (Davison & Hinkley, Bootstrap methods and their application,
1997, eq. 4.10) with its Monte Carlo standard error ``sqrt(p (1 - p) / n)``.

With k objects the statistic can take only a few values (the *attainable* values: k = 3 gives
rho in {-1, -0.5, 0.5, 1} and a random order gives rho = 1 one time in six), and the smallest
two-sided p is 2/k! (1/3 at k = 3, 1/12 at k = 4). Below :data:`DESCRIPTIVE_BELOW` metrics a
rank agreement is flagged ``descriptive_only``: no order of 4 metrics can reach p < 0.05.
Ties are kept: the observed values are permuted, so the null has the data's tie structure.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from optiqa.stats.ranks import STATISTICS, spearman_rows
from optiqa.stats.rows.base import Row

EXACT_MAX_K = 8
DESCRIPTIVE_BELOW = 5
MONTE_CARLO_ORDERS = 20_000
MIN_OBJECTS = 3
_TOL = 1e-9     # values within this of each other are the same attainable value


@dataclass(frozen=True)
class PermutationTest(Row):
    """One permutation test of a rank statistic; ``None`` where undefined (``reason`` says why)."""

    statistic: str                      # "spearman" | "kendall" | "median spearman"
    k: int                              # objects (fidelity metrics)
    observed: float | None
    p_value: float | None               # two-sided
    p_greater: float | None
    p_less: float | None
    method: str                         # "exact" | "monte carlo" | "undefined"
    n_orders: int                       # orders enumerated (k!) or drawn
    standard_error: float | None        # Monte Carlo error of p_value (0 when exact)
    attainable: tuple[float, ...] | None  # values T can take (None when unknown)
    smallest_p: float | None            # smallest attainable two-sided p at this k and ties
    descriptive_only: bool              # k < DESCRIPTIVE_BELOW
    reason: str | None = None

    def describe(self) -> str:
        """``p 0.17 (exact, k = 4, descriptive only)`` for titles and tables."""
        if self.p_value is None:
            return f"p undefined ({self.reason})"
        how = "exact" if self.method == "exact" else \
            f"Monte Carlo ±{self.standard_error:.3f}"
        flag = ", descriptive only" if self.descriptive_only else ""
        return f"p {format_p(self.p_value)} ({how}, k = {self.k}{flag})"


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}"


@lru_cache(maxsize=None)
def all_orders(k: int) -> np.ndarray:
    """Every permutation of ``range(k)`` as a ``(k!, k)`` int array (itertools order)."""
    if k > EXACT_MAX_K:
        raise ValueError(f"{k}! orders are too many to enumerate (at most k = {EXACT_MAX_K})")
    out = np.array(list(itertools.permutations(range(k))), dtype=np.intp)
    out.setflags(write=False)
    return out


def null_orders(k: int, n_orders: int = MONTE_CARLO_ORDERS, seed: int = 0):
    """``(orders, exact)``: all k! orders for k <= EXACT_MAX_K, else ``n_orders`` random ones."""
    if k <= EXACT_MAX_K:
        return all_orders(k), True
    rng = np.random.default_rng(seed)
    return rng.permuted(np.broadcast_to(np.arange(k), (n_orders, k)).copy(), axis=1), False


def _has_ties(v: np.ndarray) -> bool:
    return np.unique(v).size < v.size


def tie_free_attainable(statistic: str, k: int) -> tuple[float, ...]:
    """Values of rho or tau between two tie-free rankings of k objects (Kendall & Gibbons 1990):
    rho = 1 - 6 D / (k^3 - k) for every even D in [0, (k^3 - k)/3] (all attainable for k >= 4;
    D = 4 is not at k = 3), tau = 1 - 4 I / (k (k - 1)) for every inversion count I."""
    if statistic == "kendall":
        n0 = k * (k - 1) // 2
        return tuple(sorted(1.0 - 2.0 * i / n0 for i in range(n0 + 1)))
    top = (k ** 3 - k) // 3
    ds = [d for d in range(0, top + 1, 2) if not (k == 3 and d == 4)]
    return tuple(sorted(1.0 - 6.0 * d / (k ** 3 - k) for d in ds))


def _unique(values: np.ndarray) -> tuple[float, ...]:
    v = np.sort(values[np.isfinite(values)])
    if v.size == 0:
        return ()
    keep = np.concatenate([[True], np.diff(v) > _TOL])
    return tuple(float(round(x, 12)) for x in v[keep])


def _p_values(null: np.ndarray, t: float, exact: bool):
    """(two-sided, greater, less) from the null values (NaN entries count as non-extreme)."""
    n = null.size
    hits = (np.abs(null) >= abs(t) - _TOL).sum(), (null >= t - _TOL).sum(), \
        (null <= t + _TOL).sum()
    if exact:
        return tuple(float(h) / n for h in hits)
    return tuple((1.0 + float(h)) / (1.0 + n) for h in hits)


def _smallest_p(null: np.ndarray, exact: bool) -> float:
    """The two-sided p of the most extreme attainable value."""
    finite = null[np.isfinite(null)]
    extreme = np.abs(finite).max() if finite.size else math.nan
    hits = float((np.abs(null) >= extreme - _TOL).sum())
    return hits / null.size if exact else (1.0 + hits) / (1.0 + null.size)


def _undefined(statistic: str, k: int, reason: str) -> PermutationTest:
    return PermutationTest(statistic, k, None, None, None, None, "undefined", 0, None, None, None,
                           k < DESCRIPTIVE_BELOW, reason)


def rank_test(x, y, statistic: str = "spearman", n_orders: int = MONTE_CARLO_ORDERS,
              seed: int = 0) -> PermutationTest:
    """Permutation test of Spearman's rho or Kendall's tau-b between ``x`` and ``y`` (length k).

    ``y`` is permuted against ``x`` over all k! orders (k <= 8) or ``n_orders`` random orders.
    Undefined below :data:`MIN_OBJECTS` objects or when either side is constant.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"rank test: x and y differ in length ({x.size} vs {y.size})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("rank test: NaN or inf in the values")
    k = x.size
    if k < MIN_OBJECTS:
        return _undefined(statistic, k, f"fewer than {MIN_OBJECTS} objects ({k})")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return _undefined(statistic, k, "one side is the same for every object")
    fn = STATISTICS[statistic]
    t = float(fn(x, y)[0])
    orders, exact = null_orders(k, n_orders, seed)
    null = fn(x[None, :], y[orders])
    p, pg, pl = _p_values(null, t, exact)
    if exact:
        attainable, se = _unique(null), 0.0
    else:
        tie_free = not (_has_ties(x) or _has_ties(y))
        attainable = tie_free_attainable(statistic, k) if tie_free else None
        se = math.sqrt(p * (1 - p) / null.size)
    if exact:
        smallest = _smallest_p(null, True)
    else:   # the two most extreme orders of 10! and more: far below any Monte Carlo resolution
        smallest = 2.0 / math.factorial(k) if not (_has_ties(x) or _has_ties(y)) else None
    return PermutationTest(statistic, k, t, p, pg, pl, "exact" if exact else "monte carlo",
                           int(null.size), se, attainable, smallest, k < DESCRIPTIVE_BELOW)


# ---------------------------------------------------------------------------------------------
# the panel: the median rho over evaluators, one permutation shared by all of them
# ---------------------------------------------------------------------------------------------
@dataclass
class PanelAgreement(Row):
    """Rank agreement of a panel of evaluators with one assessment ranking (one setting).

    ``rhos``: each evaluator's Spearman rho over the metrics it may judge (None when undefined);
    ``test``: the permutation test of their median, the assessment vector permuted once for
    all evaluators (so their dependence is kept under the null). Not frozen: the analysis'
    :class:`~optiqa.stats.rows.PanelRow` extends it with its setting group.
    """

    evaluators: tuple[str, ...]
    rhos: tuple[float | None, ...]
    k: int
    n_positive: int
    n_negative: int
    median: float | None
    test: PermutationTest

    @property
    def n_defined(self) -> int:
        return sum(r is not None for r in self.rhos)


def panel_test(quality, assessment, evaluators, n_orders: int = MONTE_CARLO_ORDERS,
               seed: int = 0) -> PanelAgreement:
    """Median over evaluators of Spearman's rho between each evaluator's quality of the k metrics
    (rows of ``quality``, NaN where the evaluator may not judge a metric) and ``assessment``,
    with its permutation test: one order of ``assessment`` per null draw, shared by every
    evaluator. An evaluator with fewer than 3 judged metrics or constant scores is left out of
    the median (its rho None)."""
    q = np.atleast_2d(np.asarray(quality, np.float64))
    a = np.asarray(assessment, np.float64).ravel()
    names = tuple(evaluators)
    if q.shape != (len(names), a.size):
        raise ValueError(f"panel test: quality has shape {q.shape}, expected "
                         f"({len(names)}, {a.size})")
    k = a.size
    masks = [np.isfinite(row) for row in q]
    usable = [i for i, m in enumerate(masks) if m.sum() >= MIN_OBJECTS and
              np.ptp(q[i, m]) > 0 and np.ptp(a[m]) > 0]
    rhos = [None] * len(names)
    for i in usable:
        rhos[i] = float(spearman_rows(q[i, masks[i]], a[masks[i]])[0])
    defined = [r for r in rhos if r is not None]
    pos, neg = sum(r > 0 for r in defined), sum(r < 0 for r in defined)
    if not defined:
        return PanelAgreement(names, tuple(rhos), k, 0, 0, None, _undefined(
            "median spearman", k, "no evaluator judges at least 3 metrics with varying scores"))
    t = float(np.median(defined))
    orders, exact = null_orders(k, n_orders, seed)
    per_eval = np.stack([spearman_rows(q[i, masks[i]][None, :], a[orders][:, masks[i]])
                         for i in usable], axis=1)          # (orders, usable evaluators)
    null = np.nanmedian(per_eval, axis=1)
    p, pg, pl = _p_values(null, t, exact)
    se = 0.0 if exact else math.sqrt(p * (1 - p) / null.size)
    test = PermutationTest("median spearman", k, t, p, pg, pl,
                           "exact" if exact else "monte carlo", int(null.size), se,
                           _unique(null) if exact else None, _smallest_p(null, exact),
                           k < DESCRIPTIVE_BELOW)
    return PanelAgreement(names, tuple(rhos), k, pos, neg, t, test)
