"""Spearman's rho and Kendall's tau-b row by row, for many orders or bootstrap replicates at once.

NaN means "undefined" (a constant row). Both agree with ``scipy.stats.spearmanr`` /
``scipy.stats.kendalltau`` (tests/test_asymmetry.py, tests/test_stats.py).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _rows(x) -> np.ndarray:
    return np.atleast_2d(np.asarray(x, dtype=np.float64))


def spearman_rows(x, y) -> np.ndarray:
    """Spearman's rho of each row of ``x`` with the same row of ``y``, shape ``(rows,)``; a single
    row on either side is paired with every row of the other.

    rho = Pearson correlation of the average ranks (Spearman 1904; ties get the mean of the ranks
    they span, as in ``scipy.stats.spearmanr``). NaN for a row whose values are all equal.
    """
    rx = stats.rankdata(_rows(x), axis=-1)
    ry = stats.rankdata(_rows(y), axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    num = (rx * ry).sum(-1)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def kendall_rows(x, y) -> np.ndarray:
    """Kendall's tau-b of each row pair, shape ``(rows,)`` (Kendall 1945, the tie-corrected tau).

    tau_b = sum_{i<j} s^x_ij s^y_ij / sqrt(sum s^x_ij^2 * sum s^y_ij^2), s^x_ij = sign(x_j - x_i):
    (concordant - discordant) / sqrt((n0 - ties in x)(n0 - ties in y)), as
    ``scipy.stats.kendalltau``. NaN for a constant row.
    """
    x, y = _rows(x), _rows(y)
    i, j = np.triu_indices(x.shape[-1], 1)
    sx, sy = np.sign(x[:, j] - x[:, i]), np.sign(y[:, j] - y[:, i])
    den = np.sqrt((sx * sx).sum(-1) * (sy * sy).sum(-1))
    num = (sx * sy).sum(-1)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


STATISTICS = {"spearman": spearman_rows, "kendall": kendall_rows}
