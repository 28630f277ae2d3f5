"""The evaluators' agreement permutation test as the scalar loop computed it (one replicate at a
time, ``scipy.stats.spearmanr`` per rater pair: optiqa.stats.incomplete before issue 23): the
reference of tests/test_stats_incomplete.py and bench/evaluator_agreement.py."""
from __future__ import annotations

import numpy as np


def loop_p_value(scores, min_shared, n_perm, seed):
    """The permutation p-value as the scalar loop computes it: one replicate at a time, scipy's
    spearmanr per pair (the code this module had, kept as the reference)."""
    from scipy import stats

    def pair_rhos(x, mask):
        rhos = []
        for i in range(x.shape[0]):
            for j in range(i + 1, x.shape[0]):
                both = mask[i] & mask[j]
                if both.sum() < min_shared:
                    continue
                a, b = x[i, both], x[j, both]
                if np.ptp(a) == 0 or np.ptp(b) == 0:
                    continue
                rhos.append(float(stats.spearmanr(a, b).statistic))
        return rhos
    x = np.asarray(scores, float)
    mask = ~np.isnan(x)
    rho = float(np.mean(pair_rhos(x, mask)))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_perm):
        y = x.copy()
        for i in range(x.shape[0]):
            idx = np.flatnonzero(mask[i])
            y[i, idx] = x[i, rng.permutation(idx)]
        r = pair_rhos(y, mask)
        if r and np.mean(r) >= rho - 1e-12:
            hits += 1
    return (1 + hits) / (1 + n_perm)
