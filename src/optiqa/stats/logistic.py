"""The VQEG 4-parameter logistic mapping, and PLCC and RMSE after it.

Final report of the Video Quality Experts Group on the validation of objective models of video
quality assessment, phase II (2003); the form used by IQA-PyTorch and most IQA papers::

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

fitted to the human scores by least squares; PLCC = Pearson(f(x), y), RMSE = sqrt(mean((f(x) -
y)^2)) in the units of the human scores. The fit starts from several initial guesses (the usual
``[max y, min y, mean x, std x]``, its mirror for decreasing relationships, and the logistic that
matches the least-squares line), keeps the best, and reports a failure (:class:`LogisticFitError`)
instead of a number when no start converges to a finite, non-constant curve.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from optiqa.stats.coefficients import as_pair, is_constant, pearson


class LogisticFitError(RuntimeError):
    """The 4-parameter logistic could not be fitted; PLCC/RMSE are not reported."""


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
    pred, target = as_pair(pred, target)
    if pred.size < 5:
        raise LogisticFitError(f"logistic fit needs at least 5 items, got {pred.size}")
    if is_constant(pred) or is_constant(target):
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
        if sse < best_sse and not is_constant(fitted):
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
    pred, target = as_pair(pred, target)
    fit = fit or fit_logistic(pred, target)
    return fit.direction * pearson(fit.predict(pred), target)


def rmse(pred, target, fit: LogisticFit | None = None) -> float:
    """Root mean squared error of the logistic-mapped ``pred`` against ``target``, target units."""
    pred, target = as_pair(pred, target)
    fit = fit or fit_logistic(pred, target)
    return float(np.sqrt(np.mean((fit.predict(pred) - target) ** 2)))
