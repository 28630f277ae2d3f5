"""Correlation statistics against hand-made cases, scipy and textbook values."""
import math

import numpy as np
import pytest
from scipy import optimize, stats

from optiqa.stats import correlation as C


# --------------------------------------------------------------------------- rank correlations
def test_hand_made_rank_correlations():
    # d = (1, 1, 1, 1, 0): SRCC = 1 - 6 * 4 / (5 * 24) = 0.8; 8 concordant, 2 discordant pairs
    x, y = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    assert C.srcc(x, y) == pytest.approx(0.8)
    assert C.krcc(x, y) == pytest.approx(0.6)
    assert C.srcc(x, x[::-1]) == pytest.approx(-1.0)
    assert C.krcc(x, np.exp(x)) == pytest.approx(1.0)  # invariant to a monotone map


def test_rank_correlations_match_scipy_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, 200).astype(float)  # many ties
    y = x + rng.normal(0, 2, 200)
    assert C.srcc(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert C.krcc(x, y) == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)  # tau-b


def test_rank_correlations_equal_scipy_bit_for_bit():
    """srcc/krcc compute scipy's values without calling it (coefficients.py): equal to the last
    bit, with and without ties, on both sides of the pairwise-count limit of KRCC."""
    from optiqa.stats import coefficients

    rng = np.random.default_rng(7)
    sizes = [2, 3, 5, 5, 7, 12, 40, 199, coefficients.PAIRWISE_KRCC_MAX,
             coefficients.PAIRWISE_KRCC_MAX + 1, 1500]
    checked = 0
    for n in sizes:
        for ties in (False, True, "both"):
            x = rng.normal(size=n)
            y = rng.uniform(-1, 1) * x + rng.normal(size=n)
            if ties:
                x = np.round(x, 0)
            if ties == "both":
                y = np.round(y * 2) / 2
            if np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            assert C.srcc(x, y) == float(stats.spearmanr(x, y)[0])
            assert C.krcc(x, y) == float(stats.kendalltau(x, y)[0])
            checked += 1
    assert checked >= 30
    # exact agreement and exact disagreement
    assert C.krcc([1, 2, 3], [3, 2, 1]) == -1.0 and C.srcc([1, 2, 3], [4, 5, 9]) == 1.0


def test_average_ranks_as_scipy():
    from optiqa.stats.coefficients import average_ranks

    a = np.array([3.0, 1.0, 2.0, 2.0, 3.0, 3.0, -1.0])
    assert average_ranks(a).tolist() == [6.0, 2.0, 3.5, 3.5, 6.0, 6.0, 1.0]
    assert np.array_equal(average_ranks(a), stats.rankdata(a))


def test_constant_input_gives_nan_not_a_number():
    assert math.isnan(C.srcc([1, 1, 1], [1, 2, 3]))
    assert math.isnan(C.krcc([1, 2, 3], [5, 5, 5]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="lengths differ"):
        C.srcc([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        C.srcc([1, np.nan, 3], [1, 2, 3])


# --------------------------------------------------------------------------- logistic fit
def test_logistic_fit_recovers_known_curve():
    x = np.linspace(-3, 3, 60)
    y = C.logistic4(x, 5.0, 1.0, 0.3, 0.7)
    fit = C.fit_logistic(x, y)
    assert fit.params == pytest.approx((5.0, 1.0, 0.3, 0.7), abs=1e-4)
    assert C.plcc(x, y) == pytest.approx(1.0, abs=1e-9)
    assert C.rmse(x, y) == pytest.approx(0.0, abs=1e-5)


def test_logistic_fit_on_badly_scaled_scores():
    # raw scores around 1e9 with spread 1e6 (conditioning): standardisation makes this easy
    x = np.linspace(-3, 3, 80)
    y = C.logistic4(x, 9.0, 0.5, -0.5, 0.4)
    raw = 1e9 + 1e6 * x
    assert C.plcc(raw, y) == pytest.approx(1.0, abs=1e-6)


def test_decreasing_relationship_gives_negative_plcc():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = C.logistic4(x, 4, 1, 0, 0.5) + rng.normal(0, 0.2, 300)
    up, down = C.plcc(x, y), C.plcc(-x, y)
    assert up > 0.9 and down == pytest.approx(-up, abs=1e-6)
    assert C.rmse(-x, y) == pytest.approx(C.rmse(x, y), rel=1e-5)


def test_fit_is_at_least_as_good_as_scipy_with_the_usual_start():
    """Our multi-start fit reaches a residual no larger than the common single-start recipe."""
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 2.0, 500)
    y = np.log1p(x) * 2 + rng.normal(0, 0.5, 500)

    def usual(v, b1, b2, b3, b4):
        return b2 + (b1 - b2) / (1 + np.exp(-(v - b3) / np.abs(b4)))
    p, _ = optimize.curve_fit(usual, x, y, p0=[y.max(), y.min(), x.mean(), 0.5], maxfev=10000)
    sse_ref = float(np.sum((usual(x, *p) - y) ** 2))
    fit = C.fit_logistic(x, y)
    assert fit.sse <= sse_ref * (1 + 1e-6)
    assert C.plcc(x, y, fit) >= stats.pearsonr(usual(x, *p), y)[0] - 1e-6


def test_plcc_never_below_the_linear_correlation():
    # the start on the least-squares line guarantees the fit does at least as well as a line
    rng = np.random.default_rng(5)
    for _ in range(5):
        x = rng.normal(size=100)
        y = 0.3 * x + rng.normal(size=100)
        assert C.plcc(x, y) >= abs(np.corrcoef(x, y)[0, 1]) - 1e-6


@pytest.mark.parametrize("x, y, message", [
    ([1, 2, 3, 4], [1, 2, 3, 4], "at least 5"),
    ([1, 1, 1, 1, 1, 1], [1, 2, 3, 4, 5, 6], "constant"),
])
def test_fit_failure_is_reported(x, y, message):
    with pytest.raises(C.LogisticFitError, match=message):
        C.plcc(x, y)
    s = C.summarize(x, y, n_boot=0)
    assert s.plcc is None and s.rmse is None and message in s.fit_error


# --------------------------------------------------------------------------- bootstrap
def test_group_resamples_take_whole_groups():
    groups = np.repeat(["a", "b", "c", "d"], [3, 1, 2, 4])
    for idx in C.bootstrap_resamples(10, groups, n_boot=20, seed=1):
        picked = groups[idx]
        for g in set(picked.tolist()):  # every drawn group comes with all its items
            assert (picked == g).sum() % (groups == g).sum() == 0


def test_cluster_bootstrap_is_wider_than_item_bootstrap_for_clustered_data():
    """Ten identical copies per content: item resampling pretends to have 10x the data."""
    rng = np.random.default_rng(0)
    base_x = rng.normal(size=20)
    base_y = base_x + rng.normal(0, 1, 20)
    x, y = np.repeat(base_x, 10), np.repeat(base_y, 10)
    groups = np.repeat(np.arange(20), 10)
    lo_g, hi_g = C.bootstrap_ci(C.srcc, x, y, groups, n_boot=300)
    lo_i, hi_i = C.bootstrap_ci(C.srcc, x, y, None, n_boot=300)
    assert lo_g <= C.srcc(x, y) <= hi_g
    assert hi_g - lo_g > 2 * (hi_i - lo_i)


def test_summary_is_deterministic_and_cis_bracket_the_estimates():
    rng = np.random.default_rng(2)
    x = rng.normal(size=400)
    y = C.logistic4(x, 5, 1, 0, 0.8) + rng.normal(0, 0.4, 400)
    groups = np.arange(400) // 10
    a = C.summarize(x, y, groups, n_boot=200, seed=7).as_dict()
    b = C.summarize(x, y, groups, n_boot=200, seed=7).as_dict()
    assert a == b
    for k in ("srcc", "krcc", "plcc", "rmse"):
        lo, hi = a[f"{k}_ci"]
        assert lo <= a[k] <= hi


def test_summarize_within_groups():
    target = np.tile([1, 2, 3, 4, 5], 3).astype(float)
    strata = np.repeat(["a/x", "b/x", "c/x"], 5)
    groups = np.repeat(["a", "b", "c"], 5)
    pred = np.concatenate([[1, 2, 3, 4, 5], [1, 3, 2, 4, 5], [7, 7, 7, 7, 7]]).astype(float)
    out = C.summarize_within(pred, target, strata, groups, n_boot=50)
    # constant scores where the target has an order: the metric fails there, SRCC 0, counted
    assert out["strata_used"] == 3 and out["strata_constant_scores"] == 1
    assert out["strata_excluded"] == {}
    assert out["srcc"] == pytest.approx((1.0 + 0.9 + 0.0) / 3)
    # a constant target has no order at all: excluded for every metric
    flat = target.copy()
    flat[10:] = 3.0
    out = C.summarize_within(pred, flat, strata, groups, n_boot=0)
    assert out["strata_used"] == 2 and out["strata_excluded"] == {"constant target": 1}
    assert out["srcc"] == pytest.approx((1.0 + 0.9) / 2)


def test_few_contents_flag_or_withhold_the_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(0, 0.5, 60)
    many = C.summarize(x, y, np.arange(60) // 4, n_boot=100).as_dict()  # 15 contents
    assert many["n_contents"] == 15 and many["ci_warning"] is None and many["srcc_ci"]
    few = C.summarize(x, y, np.arange(60) // 10, n_boot=100).as_dict()  # 6 contents
    assert few["n_contents"] == 6 and "only 6 contents" in few["ci_warning"]
    assert few["srcc_ci"][0] <= few["srcc"] <= few["srcc_ci"][1]  # given, with the warning
    one = C.summarize(x, y, np.zeros(60), n_boot=100).as_dict()
    assert one["n_contents"] == 1 and "no bootstrap interval" in one["ci_warning"]
    assert one["srcc_ci"] is None and one["plcc_ci"] is None
    assert one["srcc"] == many["srcc"]  # the estimate itself is still given
    strata, groups = np.repeat(["a/x", "b/x"], 5), np.repeat(["a", "b"], 5)
    within = C.summarize_within(np.tile(np.arange(5.0), 2), np.tile(np.arange(5.0), 2), strata,
                                groups, n_boot=50)
    assert within["n_contents"] == 2 and "only 2 contents" in within["ci_warning"]


# --------------------------------------------------------------------------- paired tests
def test_paired_bootstrap_detects_a_better_metric():
    rng = np.random.default_rng(0)
    target = rng.normal(size=600)
    groups = np.arange(600) // 6
    good = target + rng.normal(0, 0.3, 600)
    bad = target + rng.normal(0, 1.5, 600)
    t = C.paired_bootstrap_test(good, bad, target, groups, n_boot=500)
    assert t.difference > 0 and t.ci[0] > 0 and t.p_value < 0.01
    same = C.paired_bootstrap_test(good, good, target, groups, n_boot=200)
    assert same.difference == 0 and same.p_value == 1.0


def test_williams_test_textbook_values():
    # psych::r.test(103, .4, .5, .1) (Steiger 1980 case A) prints t = -0.89; by hand:
    # |R| = 0.62, rbar = 0.45, t = -0.1 sqrt(102 * 1.1) / sqrt(2 * 1.02 * 0.62 + 0.2025 * 0.729)
    t, p = C.williams_test(0.4, 0.5, 0.1, 103)
    assert t == pytest.approx(-0.89128, abs=1e-4)
    # psych::r.test documentation, printed with 8 digits: p < 0.1000759
    t, p = C.williams_test(0.693458895410494, 0.695966022434845, 0.988475791500198, 5105)
    assert p == pytest.approx(0.1000759, abs=5e-7)
