"""Training seeds as a factor: seed-to-seed spread against the spread between losses.

With U models (losses of one setting) each trained with S seeds, and y_us the quality of
loss u's seed-s model (an evaluator's mean score over the test images), the one-way random-effects
analysis of variance gives::

    MSB = S * sum_u (ybar_u - ybar)^2 / (U - 1)              between losses
    MSW = sum_u sum_s (y_us - ybar_u)^2 / (U (S - 1))         between seeds of one loss
    ICC(1,1) = (MSB - MSW) / (MSB + (S - 1) MSW)              one run's reliability
    ICC(1,S) = (MSB - MSW) / MSB                              the seed mean's reliability
    F = MSB / MSW  ~  F(U - 1, U (S - 1)) when losses do not differ

(Shrout & Fleiss, Intraclass correlations: uses in assessing rater reliability, Psychol. Bull. 86,
1979, ICC(1,1) and ICC(1,k); McGraw & Wong, Psychol. Methods 1, 1996, case 1). ICC(1,1) near 1:
losses differ far more than seeds of one loss; near 0 (or negative): a ranking of single runs is
mostly seed noise.

:func:`seed_weights` draws the seed part of the hierarchical bootstrap: each replicate resamples
every unit's seeds with replacement (Davison & Hinkley, Bootstrap methods and their application,
1997, sec. 3.8, the two-stage bootstrap resampling the top level), independently per unit and
shared by every evaluator of that unit (they judge the same networks), on top of the shared
resample of the test images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from optiqa.stats.rows.base import Row


@dataclass(frozen=True)
class SeedSpread(Row):
    """The one-way ANOVA of U units x S seeds; None where undefined (``reason``)."""

    n_units: int
    n_seeds: int
    between_sd: float | None     # SD of the unit means (ddof 1)
    seed_sd: float | None        # sqrt(MSW): the pooled SD between seeds of one unit
    icc: float | None            # ICC(1,1)
    icc_mean: float | None       # ICC(1,S)
    f: float | None
    p_value: float | None        # F test that the units differ beyond seed noise
    reason: str | None = None


def _num(v) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def seed_spread(y) -> SeedSpread:
    """ICC(1,1), ICC(1,S), the F test and both spreads of ``y`` (units x seeds)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"seed spread: expected units x seeds, got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("seed spread: NaN or inf in the qualities")
    u, s = y.shape
    if u < 2 or s < 2:
        return SeedSpread(u, s, None, None, None, None, None, None,
                          f"needs at least 2 units and 2 seeds (got {u} x {s})")
    means = y.mean(axis=1)
    msb = s * ((means - means.mean()) ** 2).sum() / (u - 1)
    msw = ((y - means[:, None]) ** 2).sum() / (u * (s - 1))
    between = float(np.std(means, ddof=1))
    if msb + (s - 1) * msw <= 0:
        return SeedSpread(u, s, between, 0.0, None, None, None, None,
                          "every model has the same quality")
    icc = (msb - msw) / (msb + (s - 1) * msw)
    icc_mean = (msb - msw) / msb if msb > 0 else None
    f = msb / msw if msw > 0 else math.inf
    p = float(stats.f.sf(f, u - 1, u * (s - 1))) if msw > 0 else 0.0
    return SeedSpread(u, s, between, float(math.sqrt(msw)), _num(icc), _num(icc_mean),
                      _num(f), p)


def seed_weights(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_seeds)`` multiplicities of a unit's seeds in each bootstrap replicate (each
    row sums to ``n_seeds``): a draw of the seeds with replacement."""
    return rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=n_boot).astype(float)
