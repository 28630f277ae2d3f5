"""optiqa.stats: exact permutation tests of rank agreement, checked by brute force and by hand."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from optiqa.stats.permutation import (PanelAgreement, PermutationTest, panel_test, rank_test,
                                      tie_free_attainable)


def brute_force(x, y, statistic):
    """p-values by enumerating every order of y with scipy's own correlations."""
    fn = {"spearman": lambda a, b: sps.spearmanr(a, b)[0],
          "kendall": lambda a, b: sps.kendalltau(a, b)[0]}[statistic]
    t = fn(x, y)
    null = np.array([fn(x, [y[i] for i in order])
                     for order in itertools.permutations(range(len(y)))])
    tol = 1e-9
    return (np.mean(np.abs(null) >= abs(t) - tol), np.mean(null >= t - tol),
            np.mean(null <= t + tol), sorted({round(v, 9) for v in null}))


def test_k3_rho_one_has_one_sided_p_one_sixth():
    r = rank_test([1, 2, 3], [10, 20, 30])
    assert r.method == "exact" and r.n_orders == 6
    assert r.observed == pytest.approx(1.0)
    assert r.p_greater == pytest.approx(1 / 6)
    assert r.p_value == pytest.approx(2 / 6)
    assert r.attainable == pytest.approx((-1.0, -0.5, 0.5, 1.0))
    assert r.smallest_p == pytest.approx(1 / 3)
    assert r.descriptive_only


def test_k4_and_k5_smallest_p_and_the_descriptive_flag():
    r4 = rank_test(np.arange(4), np.arange(4))
    assert r4.p_value == pytest.approx(2 / 24) and r4.descriptive_only
    r5 = rank_test(np.arange(5), np.arange(5)[::-1], "kendall")
    assert r5.observed == pytest.approx(-1.0)
    assert r5.p_less == pytest.approx(1 / 120) and r5.p_value == pytest.approx(2 / 120)
    assert not r5.descriptive_only


@pytest.mark.parametrize("statistic", ["spearman", "kendall"])
@pytest.mark.parametrize("k,seed", [(3, 0), (5, 1), (6, 2), (7, 3)])
def test_exact_p_values_match_brute_force_enumeration(statistic, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=k)
    y = 0.5 * x + rng.normal(size=k)
    if k == 6:              # ties on both sides
        x[1], y[2] = x[0], y[3]
    r = rank_test(x, y, statistic)
    p, pg, pl, values = brute_force(x, y, statistic)
    assert (r.p_value, r.p_greater, r.p_less) == pytest.approx((p, pg, pl))
    assert r.attainable == pytest.approx(values, abs=1e-8)


def test_attainable_values_without_ties_match_the_formula():
    for k in range(3, 9):
        for statistic in ("spearman", "kendall"):
            r = rank_test(np.arange(k), np.arange(k)[::-1], statistic)
            assert r.attainable == pytest.approx(tie_free_attainable(statistic, k), abs=1e-9)


def test_monte_carlo_beyond_k8_has_its_standard_error():
    rng = np.random.default_rng(4)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=3.0, size=12)
    r = rank_test(x, y, n_orders=4000, seed=1)
    assert r.method == "monte carlo" and r.n_orders == 4000
    # the large-sample t approximation scipy uses, within a few Monte Carlo errors
    assert abs(r.p_value - sps.spearmanr(x, y).pvalue) < 4 * r.standard_error + 0.02
    assert r.standard_error == pytest.approx(math.sqrt(r.p_value * (1 - r.p_value) / 4000))
    assert r.smallest_p == pytest.approx(2 / math.factorial(12))
    assert len(r.attainable) == (12 ** 3 - 12) // 6 + 1


def test_undefined_cases_and_json_round_trip():
    assert rank_test([1, 2], [2, 1]).reason.startswith("fewer than 3")
    assert rank_test([1, 1, 1], [1, 2, 3]).p_value is None
    with pytest.raises(ValueError, match="differ in length"):
        rank_test([1, 2, 3], [1, 2])
    r = rank_test([3, 1, 2, 5], [1, 2, 3, 4])
    again = PermutationTest.from_json(json.loads(json.dumps(r.to_json())))
    assert again == r


def test_panel_median_test_by_brute_force():
    """Three evaluators, one of which may not judge metric 0: the median rho's null shares one
    order of the assessment vector between evaluators."""
    a = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    q = np.array([[1.0, 2.0, 3.0, 5.0, 4.0],
                  [np.nan, 1.0, 0.5, 3.0, 2.0],
                  [5.0, 4.0, 1.0, 2.0, 3.0]])
    res = panel_test(q, a, ["e1", "e2", "e3"])

    def median_rho(av):
        rhos = [sps.spearmanr(row[np.isfinite(row)], av[np.isfinite(row)])[0] for row in q]
        return np.median(rhos)
    t = median_rho(a)
    null = np.array([median_rho(a[list(o)]) for o in itertools.permutations(range(5))])
    assert res.median == pytest.approx(t)
    assert res.test.p_value == pytest.approx(np.mean(np.abs(null) >= abs(t) - 1e-9))
    assert res.test.p_greater == pytest.approx(np.mean(null >= t - 1e-9))
    assert (res.n_positive, res.n_negative) == (2, 1)
    assert PanelAgreement.from_json(json.loads(json.dumps(res.to_json()))) == res


# --------------------------------------------------------------------------- in the analysis
def test_every_rank_agreement_row_carries_its_exact_test_and_flag():
    from test_asymmetry import analyze_json, make_study

    out = analyze_json(*make_study(metrics=["l1", "ssim", "gmsd", "dists_vgg16"]), n_boot=20)
    json.dumps(out, allow_nan=False)
    for r in out["rank_agreement"]:
        assert r["descriptive_only"] is (r["n_metrics"] < 5)
        if r["reason"] is None:
            t = PermutationTest.from_json(r["spearman_test"])
            assert t.method == "exact" and t.k == r["n_metrics"]
            assert t.observed == pytest.approx(r["spearman"])
            # a perfectly concordant order of k metrics: two-sided p = 2 / k!
            assert t.p_value == pytest.approx(2 / math.factorial(t.k))
    panel = out["panel_agreement"]
    assert {(p["scope"], p["group"]) for p in panel} >= {("setting", "none"),
                                                        ("adversarial", "with")}
    none = next(p for p in panel if p["group"] == "none")
    assert none["median"] == pytest.approx(1.0) and none["k"] == 4
    assert none["test"]["p_value"] == pytest.approx(2 / 24)


# --------------------------------------------------------------------------- test families
def test_wilcoxon_floor_is_two_over_two_to_the_n():
    from scipy import stats as sps

    from optiqa.stats.multiplicity import TestFamily, wilcoxon_family, wilcoxon_smallest_p

    for n in (5, 8, 10):
        # all differences of one sign: the most extreme outcome of the exact test
        assert sps.wilcoxon(np.arange(1.0, n + 1)).pvalue == pytest.approx(
            wilcoxon_smallest_p(n))
    assert wilcoxon_smallest_p(10) == pytest.approx(2 / 1024)
    # 148 exploratory tests at 10 images: Holm cannot go below 148 * 2/1024 = 0.29
    adjusted, fam = wilcoxon_family("exploratory", [2 / 1024] * 148, [10] * 148)
    assert fam.size == 148 and fam.smallest_adjusted_p == pytest.approx(148 * 2 / 1024)
    assert min(adjusted) == pytest.approx(148 * 2 / 1024)
    assert "148 tests" in fam.describe() and "2/2^10 = 0.002 (0.29 after Holm" in fam.describe()
    assert TestFamily.from_json(json.loads(json.dumps(fam.to_json()))) == fam


def test_planned_comparisons_are_their_own_holm_family():
    from test_asymmetry import PANEL, make_study

    from optiqa.stats.asymmetry import analyze, default_pairs

    opt, assess = make_study(n_images=10, noise=1.0)
    planned = [("ssim", "gmsd")]
    out = analyze(opt, assess, n_boot=20, planned=planned)   # typed rows, read by attribute
    assert [r.family for r in out.planned_tests] == ["planned"] * len(PANEL)
    assert len(out.paired_tests) == len(default_pairs(opt.cells)) * len(PANEL)
    assert all(r.family == "exploratory" for r in out.paired_tests)
    fam = out.test_families
    assert fam.planned.size == len(PANEL)
    assert fam.exploratory.size == sum(r.p_value is not None for r in out.paired_tests)
    assert fam.planned.smallest_p == pytest.approx(2 / 1024)
    # Holm over the planned family alone: at most 4x the raw p, not 4 + 64 times
    for r in out.planned_tests:
        assert r.p_holm <= min(1.0, len(PANEL) * r.p_value) + 1e-12
        assert r.smallest_p == pytest.approx(2 / 1024)


def test_bootstrap_defaults_are_at_least_2000():
    import inspect

    from optiqa.stats import correlation
    from optiqa.judge.fit import fit_study
    from optiqa.stats.asymmetry import analyze
    from optiqa.study.config import AssessmentOpts

    # the report reads its intervals from the analysis (one source), so these are all of them
    assert AssessmentOpts().bootstrap >= 2000
    assert correlation.DEFAULT_BOOTSTRAP >= 2000
    for fn in (analyze, fit_study):
        assert inspect.signature(fn).parameters["n_boot"].default >= 2000


def test_result_rows_round_trip_and_name_a_wrong_key():
    """Typed rows (stats/rows.py): what analysis.json holds reads back into the same row, and
    a misspelt or missing key fails where it is read, naming the row type and the key."""
    from optiqa.core.errors import InputError
    from optiqa.stats.rows import Exclusion, ModelMean, PairedTest

    row = PairedTest("a", "b", "psnr_y", 12, n_nonzero=11, p_value=0.03, family="planned")
    assert PairedTest.from_json(row.to_json()) == row
    mean = ModelMean("a", "psnr_y", 28.5, [28.0, 29.0])
    assert ModelMean.many([mean.to_json()]) == [mean]
    with pytest.raises(InputError, match="PairedTest: unknown key 'p_holmm'"):
        PairedTest.from_json({**row.to_json(), "p_holmm": 0.1})
    with pytest.raises(InputError, match="Exclusion"):
        Exclusion.from_json({"cell": "a", "evaluator": "psnr_y", "kind": "circular",
                             "reason": "the training loss"})      # no fidelity


def test_paired_tests_are_written_as_typed_rows():
    """analyze() writes every paired test as a PairedTest row (the report reads them so)."""
    from optiqa.evaluators.circularity import circular_reason
    from optiqa.stats.asymmetry import Cell, EvaluatorSpec, OptimizationScores, paired_tests
    from optiqa.stats.rows import PairedTest

    rng = np.random.default_rng(0)
    cells = [Cell("x__none", "l1"), Cell("x__patch", "l1", "patch", "patch", "conv", 0.01)]
    ev = [EvaluatorSpec("gmsd", True, "gmsd")]
    scores = {c.name: {"gmsd": rng.normal(size=8)} for c in cells}
    opt = OptimizationScores(cells, ev, [f"i{i}" for i in range(8)], scores, {"l1": "pixel"},
                             rule=circular_reason)
    rows = paired_tests(opt, [("x__patch", "x__none")])
    assert all(isinstance(r, PairedTest) for r in rows)
    assert [(r.a, r.b, r.evaluator, r.family, r.n_images) for r in rows] == \
        [("x__patch", "x__none", "gmsd", "exploratory", 8)]
    # the exact two-sided signed-rank test of the 8 paired differences (orientation flips the
    # sign of every difference, which a two-sided test does not see)
    expected = sps.wilcoxon(scores["x__patch"]["gmsd"], scores["x__none"]["gmsd"]).pvalue
    assert rows[0].p_value == pytest.approx(expected, rel=1e-12)
    assert rows[0].p_holm == rows[0].p_value   # a family of one
