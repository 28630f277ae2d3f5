"""Agreement of incomplete rankings (optiqa.stats.incomplete) on cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from incomplete_plain import loop_p_value
from optiqa.stats.incomplete import incomplete_agreement
from optiqa.stats.ranking import kendalls_w


def test_complete_rankings_give_kendalls_w():
    rng = np.random.default_rng(0)
    base = rng.normal(size=9)
    scores = np.stack([base + rng.normal(0, s, 9) for s in (0.3, 0.8, 1.5, 3.0)])
    res = incomplete_agreement(scores, n_perm=0)
    # W = ((m - 1) rho_bar + 1) / m holds exactly for complete, untied rankings
    assert res.w_equivalent == pytest.approx(kendalls_w(scores).w, abs=1e-12)
    assert res.n_pairs == 6 and res.n_objects == 9 and res.reason is None


def test_known_values_over_shared_objects():
    nan = np.nan
    # raters 0 and 1 share objects 0-3 and agree; rater 2 shares 2-5 with rater 1 in reverse
    scores = np.array([[1, 2, 3, 4, nan, nan],
                       [1, 2, 3, 4, 5, 6],
                       [nan, nan, 6, 5, 4, 3.]])
    res = incomplete_agreement(scores, n_perm=0)
    # pairs (0,1): +1 over 4 objects; (0,2): 2 shared < 3, left out; (1,2): -1 over 4
    assert res.n_pairs == 2 and res.mean_spearman == pytest.approx(0.0)
    assert res.w_equivalent == pytest.approx(1 / 3)
    assert res.n_objects == 6
    # no pair with 3 shared objects: undefined, with the reason
    sparse = np.array([[1, 2, nan, nan], [nan, nan, 1, 2.]])
    res = incomplete_agreement(sparse, n_perm=0)
    assert res.mean_spearman is None and res.w_equivalent is None
    assert "no pair of raters shares 3" in res.reason


def test_permutation_p_value_separates_agreement_from_noise():
    rng = np.random.default_rng(1)
    base = np.arange(8.0)
    agree = np.stack([base + rng.normal(0, 0.1, 8) for _ in range(4)])
    agree[0, :2] = agree[1, -2:] = np.nan                  # incomplete, as the circularity rule
    res = incomplete_agreement(agree, n_perm=199, seed=3)
    assert res.p_permutation == pytest.approx(1 / 200)    # no permutation does as well
    noise = rng.normal(size=(4, 8))
    assert incomplete_agreement(noise, n_perm=199, seed=3).p_permutation > 0.05


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="expected \\(raters, objects\\)"):
        incomplete_agreement([1.0, 2.0])
    with pytest.raises(ValueError, match="inf"):
        incomplete_agreement([[1.0, np.inf], [1.0, 2.0]])


@pytest.mark.parametrize("case", range(4))
def test_the_vectorised_permutations_give_the_scalar_loops_p_value(case, monkeypatch):
    """All replicates at once (issue 23: the analysis' largest cost) against the loop of one
    spearmanr per pair and replicate: the same draws, the same p-value, on incomplete rankings
    with ties, constant ranks in some replicates, and agreement strong enough that replicates
    reach the observed mean (exact ties with it)."""
    rng = np.random.default_rng(case)
    m, n = (12, 25) if case == 0 else (5, 7)
    base = rng.normal(size=n)
    x = np.stack([base + rng.normal(0, 0.5 + case, n) for _ in range(m)])
    if case in (1, 3):
        x = np.round(x)                        # ties
    if case == 3:
        x[0] = 1.0                             # one rater constant: no order
        x[1, [0, 1, 2]] = 7.0
    x[rng.random((m, n)) < 0.25] = np.nan      # incomplete, as the circularity rule leaves it
    import optiqa.stats.incomplete as module

    scalar = []
    real = module._pair_rhos
    monkeypatch.setattr(module, "_pair_rhos", lambda *a: scalar.append(1) or real(*a))
    n_perm = 100 if case == 0 else 300
    res = incomplete_agreement(x, n_perm=n_perm, seed=11)
    assert res.p_permutation == loop_p_value(x, 3, n_perm, 11)
    if case == 2:
        assert 0.01 < res.p_permutation < 0.99   # replicates on both sides of the statistic
        # a replicate whose mean ties the observed one: decided by the scalar code
        assert len(scalar) >= 2
