"""Correlation statistics between metric scores and human judgments.

- SRCC (Spearman), KRCC (Kendall tau-b): rank agreement, invariant to any monotone mapping.
- PLCC and RMSE after the 4-parameter logistic mapping recommended by VQEG (Final report of the
  Video Quality Experts Group on the validation of objective models of video quality assessment,
  phase II, 2003; the form used by IQA-PyTorch and most IQA papers)::

      f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

  fitted to the human scores by least squares; PLCC = Pearson(f(x), y), RMSE = sqrt(mean((f(x) -
  y)^2)) in the units of the human scores. The fit starts from several initial guesses (the usual
  ``[max y, min y, mean x, std x]``, its mirror for decreasing relationships, and the logistic that
  matches the least-squares line), keeps the best, and reports a failure (:class:`LogisticFitError`)
  instead of a number when no start converges to a finite, non-constant curve.
- Bootstrap 95% confidence intervals resampled by *reference content* (a cluster bootstrap: items
  that share a reference image are not independent, so whole contents are drawn with replacement).
- A paired test for two metrics on the same items (:func:`paired_bootstrap_test`): the paired
  cluster bootstrap of the SRCC difference. We chose it over Williams' / Steiger's tests for
  dependent correlations because those assume independent items and a Pearson correlation, while
  IQA items are clustered by content and compared by rank; :func:`williams_test` is provided for
  the independent-item case and for comparison with published analyses.

All functions take 1-D arrays; the caller orients scores (see ``optiqa.assess.benchmark``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

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


class LogisticFitError(RuntimeError):
    """The 4-parameter logistic could not be fitted; PLCC/RMSE are not reported."""


def _as_pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=np.float64).ravel()
    if pred.shape != target.shape:
        raise ValueError(f"pred and target lengths differ: {pred.size} vs {target.size}")
    if not (np.isfinite(pred).all() and np.isfinite(target).all()):
        raise ValueError("pred and target must be finite (NaN or inf found)")
    return pred, target


def _constant(a: np.ndarray) -> bool:
    return a.size == 0 or bool(np.ptp(a) <= 1e-12 * max(1.0, float(np.abs(a).max())))


# ---------------------------------------------------------------------------------------------
# rank and linear correlations
# ---------------------------------------------------------------------------------------------
def srcc(pred, target) -> float:
    """Spearman rank-order correlation (ties get average ranks); NaN when either side is constant."""
    pred, target = _as_pair(pred, target)
    if pred.size < 2 or _constant(pred) or _constant(target):
        return math.nan
    return float(stats.spearmanr(pred, target)[0])


def krcc(pred, target) -> float:
    """Kendall rank correlation, tau-b (tie-corrected, scipy's default); NaN when constant."""
    pred, target = _as_pair(pred, target)
    if pred.size < 2 or _constant(pred) or _constant(target):
        return math.nan
    return float(stats.kendalltau(pred, target)[0])


def pearson(pred, target) -> float:
    """Plain Pearson linear correlation (no fit); NaN when either side is constant."""
    pred, target = _as_pair(pred, target)
    if pred.size < 2 or _constant(pred) or _constant(target):
        return math.nan
    return float(np.corrcoef(pred, target)[0, 1])


# ---------------------------------------------------------------------------------------------
# 4-parameter logistic (VQEG)
# ---------------------------------------------------------------------------------------------
def logistic4(x, b1, b2, b3, b4):
    """VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    ``b1`` and ``b2`` are the upper and lower asymptotes (swapped for a decreasing curve), ``b3``
    the midpoint, ``|b4|`` the scale. The exponent is clipped so that far tails do not overflow.
    """
    z = np.clip(-(np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-12), -500, 500)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def _logistic4_jac(x, b1, b2, b3, b4):
    s = max(abs(b4), 1e-12)
    z = np.clip(-(x - b3) / s, -500, 500)
    e = np.exp(z)
    g = 1.0 / (1.0 + e)                  # sigmoid((x - b3) / s)
    dg = g * (1.0 - g)                   # its derivative w.r.t. its argument
    d = b1 - b2
    return np.stack([g, 1.0 - g, -d * dg / s, -d * dg * (x - b3) / s ** 2 * np.sign(b4 or 1.0)],
                    axis=1)


@dataclass(frozen=True)
class LogisticFit:
    """Parameters ``(b1, b2, b3, b4)`` of the fitted logistic, in the units of the raw scores."""

    params: tuple[float, float, float, float]
    sse: float

    def predict(self, x) -> np.ndarray:
        return logistic4(np.asarray(x, dtype=np.float64), *self.params)

    @property
    def direction(self) -> int:
        """+1 for an increasing curve (``b1 >= b2``), -1 for a decreasing one."""
        return 1 if self.params[0] >= self.params[1] else -1


def _initial_guesses(z: np.ndarray, y: np.ndarray) -> list[list[float]]:
    """Starts for the fit on standardised ``z``: increasing, decreasing and line-matching."""
    ymax, ymin = float(y.max()), float(y.min())
    slope, intercept = np.polyfit(z, y, 1)
    guesses = [[ymax, ymin, 0.0, 1.0], [ymin, ymax, 0.0, 1.0],
               [ymax, ymin, float(np.median(z)), 0.5], [ymin, ymax, float(np.median(z)), 0.5]]
    # The logistic is linear near b3 with slope (b1 - b2) / (4 |b4|): a wide logistic through the
    # least-squares line is always a good start, and guarantees PLCC >= the linear PLCC.
    b4 = 3.0
    spread = 4.0 * b4 * slope
    mid = intercept
    guesses.append([mid + spread / 2, mid - spread / 2, 0.0, b4])
    return guesses


def fit_logistic(pred, target, p0=None, maxfev: int = 2000) -> LogisticFit:
    """Least-squares fit of :func:`logistic4` mapping ``pred`` onto ``target``.

    The fit runs on standardised predictions (zero mean, unit variance) for conditioning, from
    several starts (or only ``p0``, given in raw units, e.g. a previous fit as a warm start), and
    keeps the lowest residual. Raises :class:`LogisticFitError` when there are fewer than 5 items,
    a side is constant, or no start converges to a finite curve that is not flat.
    """
    pred, target = _as_pair(pred, target)
    if pred.size < 5:
        raise LogisticFitError(f"logistic fit needs at least 5 items, got {pred.size}")
    if _constant(pred) or _constant(target):
        raise LogisticFitError("logistic fit undefined: scores or targets are constant")
    mu, sd = float(pred.mean()), float(pred.std())
    z = (pred - mu) / sd
    if p0 is not None:
        b1, b2, b3, b4 = p0
        starts = [[b1, b2, (b3 - mu) / sd, b4 / sd]]
    else:
        starts = _initial_guesses(z, target)
    best, best_sse, errors = None, math.inf, []
    for start in starts:
        try:
            with warnings.catch_warnings():
                # the parameter covariance (unused) can overflow on flat fits; the result is
                # checked for finiteness below instead
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                params, _ = optimize.curve_fit(logistic4, z, target, p0=start, jac=_logistic4_jac,
                                               maxfev=maxfev)
        except (RuntimeError, ValueError, FloatingPointError) as e:
            errors.append(str(e).splitlines()[0])
            continue
        fitted = logistic4(z, *params)
        if not np.all(np.isfinite(params)) or not np.all(np.isfinite(fitted)):
            errors.append("non-finite parameters")
            continue
        sse = float(np.sum((fitted - target) ** 2))
        if sse < best_sse and not _constant(fitted):
            best, best_sse = params, sse
    if best is None:
        detail = "; ".join(dict.fromkeys(errors)) or "the fitted curve is flat"
        raise LogisticFitError(f"4-parameter logistic fit did not converge ({detail})")
    b1, b2, b3, b4 = (float(v) for v in best)
    return LogisticFit((b1, b2, mu + sd * b3, sd * abs(b4)), best_sse)


def plcc(pred, target, fit: LogisticFit | None = None) -> float:
    """Pearson correlation between the logistic-mapped ``pred`` and ``target`` (VQEG).

    A least-squares fit makes ``Pearson(f(x), y)`` non-negative whatever the direction of the
    relationship, so the sign of the fitted curve's slope is carried over: a decreasing fit
    (``b1 < b2``) gives a negative PLCC, consistent with SRCC/KRCC. Raises
    :class:`LogisticFitError` when the fit fails: a failed fit has no PLCC.
    """
    pred, target = _as_pair(pred, target)
    fit = fit or fit_logistic(pred, target)
    return fit.direction * pearson(fit.predict(pred), target)


def rmse(pred, target, fit: LogisticFit | None = None) -> float:
    """Root mean squared error of the logistic-mapped ``pred`` against ``target``, target units."""
    pred, target = _as_pair(pred, target)
    fit = fit or fit_logistic(pred, target)
    return float(np.sqrt(np.mean((fit.predict(pred) - target) ** 2)))


# ---------------------------------------------------------------------------------------------
# cluster bootstrap
# ---------------------------------------------------------------------------------------------
def _group_index(groups, n: int) -> list[np.ndarray]:
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
    index = _group_index(groups, n)
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
    pred, target = _as_pair(pred, target)
    reps = [stat(pred[i], target[i]) for i in bootstrap_resamples(pred.size, groups, n_boot, seed)]
    return percentile_ci(reps, level)


# ---------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------
@dataclass
class CorrelationSummary:
    """SRCC, KRCC, PLCC/RMSE after the logistic fit, and their bootstrap CIs."""

    n: int
    srcc: float
    krcc: float
    plcc: float | None
    rmse: float | None
    fit_params: tuple | None = None
    fit_error: str | None = None
    ci: dict = field(default_factory=dict)  # stat name -> [lo, hi] or None
    n_boot: int = 0
    ci_level: float = 0.95
    n_contents: int = 0
    ci_warning: str | None = None           # why the intervals cannot be trusted (or absent)

    def as_dict(self) -> dict:
        return {"n": self.n, "srcc": _clean(self.srcc), "krcc": _clean(self.krcc),
                "plcc": _clean(self.plcc), "rmse": _clean(self.rmse),
                "srcc_ci": self.ci.get("srcc"), "krcc_ci": self.ci.get("krcc"),
                "plcc_ci": self.ci.get("plcc"), "rmse_ci": self.ci.get("rmse"),
                "fit_params": list(self.fit_params) if self.fit_params else None,
                "fit_error": self.fit_error, "n_boot": self.n_boot, "ci_level": self.ci_level,
                "n_contents": self.n_contents, "ci_warning": self.ci_warning}


def _clean(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def summarize(pred, target, groups=None, n_boot: int = DEFAULT_BOOTSTRAP, level: float = 0.95,
              seed: int = 0) -> CorrelationSummary:
    """All statistics for one (metric, dataset): pooled over the items.

    The bootstrap refits the logistic in every resample (warm-started from the full-data fit), so
    the PLCC/RMSE intervals include the fit's own uncertainty; a resample whose fit fails counts as
    NaN, and an interval with more than 10% NaN replicates is not reported.
    """
    pred, target = _as_pair(pred, target)
    out = CorrelationSummary(n=int(pred.size), srcc=srcc(pred, target), krcc=krcc(pred, target),
                             plcc=None, rmse=None, n_boot=n_boot, ci_level=level)
    out.n_contents, warning, possible = bootstrap_reliability(groups, pred.size)
    fit = None
    try:
        fit = fit_logistic(pred, target)
        out.plcc, out.rmse, out.fit_params = plcc(pred, target, fit), rmse(pred, target, fit), \
            fit.params
    except LogisticFitError as e:
        out.fit_error = str(e)
    if n_boot <= 0:
        return out
    out.ci_warning = warning
    if not possible:
        out.ci = {k: None for k in ("srcc", "krcc", "plcc", "rmse")}
        return out
    reps = {"srcc": [], "krcc": [], "plcc": [], "rmse": []}
    for idx in bootstrap_resamples(pred.size, groups, n_boot, seed):
        p, t = pred[idx], target[idx]
        reps["srcc"].append(srcc(p, t))
        reps["krcc"].append(krcc(p, t))
        if fit is not None:
            try:
                f = fit_logistic(p, t, p0=fit.params)
                reps["plcc"].append(f.direction * pearson(f.predict(p), t))
                reps["rmse"].append(float(np.sqrt(np.mean((f.predict(p) - t) ** 2))))
            except LogisticFitError:
                reps["plcc"].append(math.nan)
                reps["rmse"].append(math.nan)
    out.ci = {k: percentile_ci(v, level) if v else None for k, v in reps.items()}
    return out


# ---------------------------------------------------------------------------------------------
# comparing two metrics on the same items
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairedTest:
    """Result of comparing metric A with metric B on the same items."""

    statistic: str       # e.g. "srcc"
    value_a: float
    value_b: float
    difference: float    # A - B
    ci: list | None      # bootstrap CI of the difference
    p_value: float       # two-sided
    n_boot: int
    method: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


_STATS = {"srcc": srcc, "krcc": krcc, "pearson": pearson}


def paired_bootstrap_test(pred_a, pred_b, target, groups=None, statistic: str = "srcc",
                          n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> PairedTest:
    """Do metrics A and B correlate differently with ``target`` on the same items?

    Paired cluster bootstrap: each resample draws contents with replacement and evaluates *both*
    metrics on the same resampled items, so the dependence between A and B (same images, same
    judgments) is kept. The two-sided p-value is the achieved significance level
    ``2 min(P(d* <= 0), P(d* >= 0))`` with the ``(1 + count) / (1 + B)`` correction (Davison &
    Hinkley, Bootstrap methods and their application, 1997, sec. 4.4), capped at 1.
    Both predictions must be oriented the same way (higher = agrees with ``target``).
    """
    fn = _STATS[statistic]
    a, target = _as_pair(pred_a, target)
    b, _ = _as_pair(pred_b, target)
    va, vb = fn(a, target), fn(b, target)
    diffs = []
    for idx in bootstrap_resamples(a.size, groups, n_boot, seed):
        diffs.append(fn(a[idx], target[idx]) - fn(b[idx], target[idx]))
    diffs = np.asarray(diffs)
    ok = diffs[np.isfinite(diffs)]
    below, above = int((ok <= 0).sum()), int((ok >= 0).sum())
    p = min(1.0, 2.0 * (1 + min(below, above)) / (1 + ok.size)) if ok.size else math.nan
    return PairedTest(statistic, va, vb, va - vb, percentile_ci(diffs, level), p, n_boot,
                      "paired cluster bootstrap (contents resampled with replacement)")


def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t test for two dependent correlations sharing variable 1 (r12 vs r13).

    Williams (1959), in the form of Steiger, Tests for comparing elements of a correlation
    matrix, Psychological Bulletin 87 (1980), eq. 7::

        t = (r12 - r13) sqrt((n - 1)(1 + r23)) /
            sqrt(2 (n - 1)/(n - 3) |R| + rbar^2 (1 - r23)^3),   df = n - 3

    with ``|R| = 1 - r12^2 - r13^2 - r23^2 + 2 r12 r13 r23`` and ``rbar = (r12 + r13) / 2``.
    Here 1 = human scores, 2 and 3 = two metrics. Assumes independent items. Returns (t, p
    two-sided).
    """
    if n <= 3:
        raise ValueError("Williams' test needs n > 3")
    det = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23)) / math.sqrt(
        2 * (n - 1) / (n - 3) * det + rbar ** 2 * (1 - r23) ** 3)
    return float(t), float(2 * stats.t.sf(abs(t), n - 3))


def summarize_within(pred, target, strata, groups=None, n_boot: int = DEFAULT_BOOTSTRAP,
                     level: float = 0.95, seed: int = 0) -> dict:
    """Mean within-stratum SRCC/KRCC (e.g. per (content, distortion)) with a cluster-bootstrap CI.

    Each stratum's SRCC is computed once; the bootstrap then draws contents (``groups``; a
    stratum must lie inside one content) with replacement and averages the SRCCs of the strata
    they contain. A stratum whose *target* is constant has no order to recover and is excluded
    (counted in ``strata_excluded``; the same for every metric). A stratum whose *scores* are
    constant while the target varies is a metric that cannot tell the levels apart: it counts as
    SRCC = KRCC = 0, not excluded (excluding it would reward the failure), and the number of
    such strata is reported in ``strata_constant_scores``.
    """
    pred, target = _as_pair(pred, target)
    strata = np.asarray(strata)
    index = _group_index(strata, pred.size)
    values, owners = {"srcc": [], "krcc": []}, []
    excluded = {"constant target": 0, "fewer than 2 items": 0}
    constant_scores = 0
    for idx in index:
        p, t = pred[idx], target[idx]
        reason = ("fewer than 2 items" if idx.size < 2 else "constant target" if _constant(t)
                  else None)
        if reason:
            excluded[reason] += 1
            continue
        if _constant(p):
            constant_scores += 1
            values["srcc"].append(0.0)
            values["krcc"].append(0.0)
        else:
            values["srcc"].append(srcc(p, t))
            values["krcc"].append(krcc(p, t))
        owners.append(groups[idx[0]] if groups is not None else strata[idx[0]])
    n_contents, warning, possible = bootstrap_reliability(
        np.asarray(owners) if owners else None, len(owners))
    out = {"n": int(pred.size), "strata_used": len(owners),
           "strata_excluded": {r: c for r, c in excluded.items() if c},
           "strata_constant_scores": constant_scores,
           "srcc": float(np.mean(values["srcc"])) if owners else None,
           "krcc": float(np.mean(values["krcc"])) if owners else None,
           "srcc_ci": None, "krcc_ci": None, "n_boot": n_boot, "ci_level": level,
           "n_contents": n_contents, "ci_warning": warning if n_boot > 0 else None}
    if n_boot > 0 and owners and possible:
        owners = np.asarray(owners)
        arrays = {k: np.asarray(v) for k, v in values.items()}
        reps = {"srcc": [], "krcc": []}
        for idx in bootstrap_resamples(len(owners), owners, n_boot, seed):
            for k in reps:
                reps[k].append(float(arrays[k][idx].mean()))
        out["srcc_ci"], out["krcc_ci"] = (percentile_ci(reps["srcc"], level),
                                          percentile_ci(reps["krcc"], level))
    return out
