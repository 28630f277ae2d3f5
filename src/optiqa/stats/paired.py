"""Do two metrics correlate differently with the human scores on the same items?

:func:`paired_bootstrap_test`, the paired cluster bootstrap of the SRCC difference, is the test
the study uses. We chose it over Williams' / Steiger's tests for dependent correlations because
those assume independent items and a Pearson correlation, while IQA items are clustered by
content and compared by rank; :func:`williams_test` is provided for the independent-item case and
for comparison with published analyses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optiqa.stats.bootstrap import bootstrap_resamples, percentile_ci
from optiqa.stats.coefficients import as_pair, krcc, pearson, srcc


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
    a, target = as_pair(pred_a, target)
    b, _ = as_pair(pred_b, target)
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
