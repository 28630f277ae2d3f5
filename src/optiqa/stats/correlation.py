"""Correlation statistics between metric scores and human judgments.

- SRCC (Spearman), KRCC (Kendall tau-b): rank agreement, invariant to any monotone mapping.
- PLCC and RMSE after the 4-parameter logistic mapping recommended by VQEG (VQEG phase II,
  2003), ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` fitted to the human scores:
  the fit, its starts and its failure (:class:`LogisticFitError`) are described in
  :mod:`optiqa.stats.logistic`.
- Bootstrap 95% confidence intervals resampled by *reference content* (a cluster bootstrap: items
  that share a reference image are not independent, so whole contents are drawn with replacement).
- A paired test for two metrics on the same items (:func:`paired_bootstrap_test`): the paired
  cluster bootstrap of the SRCC difference. We chose it over Williams' / Steiger's tests for
  dependent correlations because those assume independent items and a Pearson correlation, while
  IQA items are clustered by content and compared by rank; :func:`williams_test` is provided for
  the independent-item case and for comparison with published analyses.

All functions take 1-D arrays; the caller orients scores (see ``optiqa.assess.benchmark``).

The statistics live in one module per theme and are all importable from here (and from the
shim ``optiqa.assess.correlation``): :mod:`optiqa.stats.coefficients` (SRCC, KRCC, Pearson),
:mod:`optiqa.stats.logistic` (the VQEG fit, PLCC, RMSE), :mod:`optiqa.stats.bootstrap` (the
cluster bootstrap and percentile intervals), :mod:`optiqa.stats.paired` (two metrics on the same
items). This module holds the summaries of one (metric, dataset): :func:`summarize` (pooled) and
:func:`summarize_within` (within strata).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from optiqa.stats.bootstrap import (DEFAULT_BOOTSTRAP, MIN_RELIABLE_CONTENTS, bootstrap_ci,
                                    bootstrap_reliability, bootstrap_resamples, group_index,
                                    percentile_ci)
from optiqa.stats.coefficients import as_pair, is_constant, krcc, pearson, srcc
from optiqa.stats.logistic import (LogisticFit, LogisticFitError, fit_logistic, logistic4, plcc,
                                   rmse)
from optiqa.stats.paired import PairedTest, paired_bootstrap_test, williams_test

__all__ = ["DEFAULT_BOOTSTRAP", "MIN_RELIABLE_CONTENTS", "CorrelationSummary", "LogisticFit",
           "LogisticFitError", "PairedTest", "bootstrap_ci", "bootstrap_reliability",
           "bootstrap_resamples", "fit_logistic", "krcc", "logistic4", "paired_bootstrap_test",
           "pearson", "percentile_ci", "plcc", "rmse", "srcc", "summarize", "summarize_within",
           "williams_test"]


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
    pred, target = as_pair(pred, target)
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
    pred, target = as_pair(pred, target)
    strata = np.asarray(strata)
    index = group_index(strata, pred.size)
    values, owners = {"srcc": [], "krcc": []}, []
    excluded = {"constant target": 0, "fewer than 2 items": 0}
    constant_scores = 0
    for idx in index:
        p, t = pred[idx], target[idx]
        reason = ("fewer than 2 items" if idx.size < 2 else "constant target" if is_constant(t)
                  else None)
        if reason:
            excluded[reason] += 1
            continue
        if is_constant(p):
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
