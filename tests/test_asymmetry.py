"""The study's asymmetry analysis and its rank statistics on constructed data with known answers."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from optiqa.evaluators.circularity import circular_reason
from optiqa.stats import correlation as C
from optiqa.core.errors import InputError
from optiqa.stats import ranking as R
from optiqa.stats.asymmetry import (AssessmentDataset, AssessmentScores, Cell, EvaluatorSpec,
                                    OptimizationScores, analyze, default_pairs, setting_groups)


# --------------------------------------------------------------------------- row-wise correlations
def test_row_correlations_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(50, 7)).astype(float)        # many ties
    y = x + rng.integers(-2, 3, size=(50, 7))
    rho, tau = R.spearman_rows(x, y), R.kendall_rows(x, y)
    for i in range(50):
        if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            assert math.isnan(rho[i]) and math.isnan(tau[i])
        else:
            assert rho[i] == pytest.approx(stats.spearmanr(x[i], y[i])[0], abs=1e-12)
            assert tau[i] == pytest.approx(stats.kendalltau(x[i], y[i])[0], abs=1e-12)
    assert math.isnan(R.spearman_rows([1, 1, 1], [1, 2, 3])[0])


def test_rank_agreement_concordant_reversed_and_undefined():
    a = [0.9, 0.5, 0.7, 0.1]
    same = R.rank_agreement([10, 2, 5, 0], a)            # same order as a
    assert same.spearman == pytest.approx(1.0) and same.kendall == pytest.approx(1.0)
    rev = R.rank_agreement([0, 5, 2, 10], a)
    assert rev.spearman == pytest.approx(-1.0) and rev.kendall == pytest.approx(-1.0)
    two = R.rank_agreement([1, 2], [3, 4])
    assert math.isnan(two.spearman) and two.reason == "fewer than 3 fidelity metrics (2)"
    flat = R.rank_agreement([3, 3, 3], [1, 2, 3])
    assert math.isnan(flat.kendall) and "optimization quality is the same" in flat.reason
    flat = R.rank_agreement([1, 2, 3], [0.5, 0.5, 0.5])
    assert "assessment quality is the same" in flat.reason


# --------------------------------------------------------------------------- Kendall's W
def test_w_is_one_for_identical_rankings_and_zero_for_a_latin_square():
    scores = np.tile([3.0, 1.0, 4.0, 2.0, 5.0], (4, 1))
    w = R.kendalls_w(scores)
    assert w.w == pytest.approx(1.0) and w.df == 4
    assert w.chi2 == pytest.approx(4 * 4)                 # m (n - 1) W
    # a cyclic Latin square: every object gets every rank once, rank sums all equal, S = 0
    latin = np.array([np.roll(np.arange(1.0, 5.0), k) for k in range(4)])
    w = R.kendalls_w(latin)
    assert w.w == pytest.approx(0.0, abs=1e-12) and w.p_value == pytest.approx(1.0)


def test_w_textbook_example():
    # ProofWiki, "Kendall's Coefficient of Concordance/Examples/Arbitrary Example 1": 4 judges
    # (A, B, C, D) rank 3 competitors X, Y, Z. By hand: rank sums 7, 9, 8, mean m(n+1)/2 = 8,
    # S = 1 + 1 + 0 = 2, W = 12 S / (m^2 (n^3 - n)) = 24 / (16 * 24) = 1/16;
    # chi2 = m (n - 1) W = 4 * 2 / 16 = 0.5 on 2 df, p = exp(-chi2 / 2) = exp(-0.25).
    ranks = np.array([[1, 3, 2],    # judge A: X, Y, Z
                      [1, 2, 3],    # judge B
                      [2, 3, 1],    # judge C
                      [3, 1, 2]],   # judge D
                     dtype=float)
    w = R.kendalls_w(ranks)
    assert w.w == pytest.approx(1 / 16)
    assert w.chi2 == pytest.approx(0.5)
    assert w.p_value == pytest.approx(math.exp(-0.25))
    # only the order within each row matters: scores instead of ranks give the same W
    assert R.kendalls_w(np.exp(ranks)).w == pytest.approx(1 / 16)


def test_w_with_ties_by_hand_and_against_friedman():
    # 3 raters, 4 objects; rater 2 ties objects 2 and 3, rater 3 ties objects 1 and 2.
    # ranks: (1, 2, 3, 4), (1, 2.5, 2.5, 4), (1.5, 1.5, 3, 4); rank sums 3.5, 6, 8.5, 12, mean 7.5
    # S = 16 + 2.25 + 1 + 20.25 = 39.5; tie term sum (t^3 - t) = 6 + 6 = 12
    # W = 12 S / (m^2 (n^3 - n) - m * 12) = 474 / (540 - 36) = 79 / 84 (uncorrected: 474 / 540)
    scores = np.array([[1, 2, 3, 4], [1, 2, 2, 4], [1, 1, 3, 4]], dtype=float)
    w = R.kendalls_w(scores)
    assert w.ties == 12
    assert w.w == pytest.approx(79 / 84)
    assert w.chi2 == pytest.approx(3 * 3 * 79 / 84)
    # Friedman's tie-corrected chi-square is m (n - 1) W (treatments = objects, blocks = raters)
    friedman = stats.friedmanchisquare(*scores.T)
    assert w.chi2 == pytest.approx(friedman.statistic)
    assert w.p_value == pytest.approx(friedman.pvalue)
    assert w.p_value == pytest.approx(stats.chi2.sf(711 / 84, 3))


def test_w_undefined():
    assert R.kendalls_w(np.ones((3, 4))).reason == "every rater gives all objects the same score"
    one = R.kendalls_w([[1.0, 2.0, 3.0]])
    assert math.isnan(one.w) and "at least 2 raters" in one.reason


def test_w_permutation_p_matches_exact_enumeration():
    ranks = np.array([[1, 3, 2], [1, 2, 3], [2, 3, 1], [3, 1, 2]], dtype=float)
    s_obs = ((ranks.sum(0) - 8) ** 2).sum()
    # exact null: judges 2..4 permute independently (judge 1 fixed by symmetry): 6^3 cases
    perms = list(itertools.permutations([1.0, 2.0, 3.0]))
    hits = sum(((ranks[0] + np.sum(p, axis=0) - 8) ** 2).sum() >= s_obs - 1e-9
               for p in itertools.product(perms, repeat=3))
    exact = hits / 6 ** 3
    p = R.concordance_permutation_p(ranks, n_perm=20000, seed=1)
    assert p == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000))
    assert R.concordance_permutation_p(ranks, 500, 3) == R.concordance_permutation_p(ranks, 500, 3)


def test_leave_one_evaluator_out():
    up = [1.0, 2.0, 3.0, 4.0]
    scores = np.array([up, up, up, up[::-1]])
    loo = R.leave_one_out(scores)
    assert loo[3]["w_without"] == pytest.approx(1.0)             # the three that agree
    assert loo[3]["spearman_with_others"] == pytest.approx(-1.0)
    # consensus of (up, up, reversed) keeps the order of up: mean ranks 5/3, 2, ..., increasing
    assert loo[0]["spearman_with_others"] == pytest.approx(1.0)
    assert loo[0]["w_without"] == pytest.approx(R.kendalls_w(scores[1:]).w)


# --------------------------------------------------------------------------- paired tests
def test_wilcoxon_and_rank_biserial_by_hand():
    # d = (1, -2, 3, 4, -5): ranks of |d| are 1..5; T+ = 1 + 3 + 4 = 8, T- = 2 + 5 = 7,
    # r = (8 - 7) / 15 = 1/15 (Kerby's simple difference formula)
    b = np.zeros(5)
    a = np.array([1.0, -2.0, 3.0, 4.0, -5.0])
    out = R.wilcoxon_signed_rank(a, b)
    assert (out["t_plus"], out["t_minus"], out["n_nonzero"]) == (8.0, 7.0, 5)
    assert out["rank_biserial"] == pytest.approx(1 / 15)
    assert out["p_value"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # all five differences positive: exact two-sided p = 2 / 2^5, r = 1
    pos = R.wilcoxon_signed_rank(np.arange(1.0, 6.0), b)
    assert pos["p_value"] == pytest.approx(2 / 32) and pos["rank_biserial"] == 1.0
    # zeros are dropped (zero_method="wilcox"): |1|, |2|, |-3| -> T+ = 3, T- = 3, r = 0
    assert R.rank_biserial([0.0, 1.0, 2.0, -3.0]) == pytest.approx(0.0)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=40), rng.normal(0.3, 1, size=40)
    assert R.wilcoxon_signed_rank(x, y)["p_value"] == pytest.approx(stats.wilcoxon(x, y).pvalue)
    none = R.wilcoxon_signed_rank(a, a)
    assert math.isnan(none["p_value"]) and none["reason"] == "all paired differences are zero"


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 with k = 3: 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert R.holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])
    assert R.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


# --------------------------------------------------------------------------- assessment side
def test_srcc_replicates_agree_with_the_benchmark_statistics():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(12), 6)
    target = rng.normal(size=72)
    pred = target + rng.normal(0, 1, 72)
    point, reps, info = R.srcc_with_replicates(pred, target, groups, None, n_boot=200, seed=5)
    assert point[0] == pytest.approx(C.srcc(pred, target))
    # same resamples as correlation.bootstrap_ci with the same seed -> same interval
    assert C.percentile_ci(reps[:, 0]) == pytest.approx(
        C.bootstrap_ci(C.srcc, pred, target, groups, n_boot=200, seed=5))
    assert info == {"n_items": 72, "n_contents": 12, "evaluation": "pooled"}
    # within strata, with a stratum of constant target (left out) and one of constant scores (0)
    strata = np.array([f"{g}-{i // 3}" for i, g in enumerate(groups)])
    target_w, pred_w = target.copy(), pred.copy()
    target_w[strata == "0-0"] = 1.0
    pred_w[strata == "1-0"] = 2.0
    point, reps, info = R.srcc_with_replicates(pred_w, target_w, groups, strata, 200, seed=5)
    ref = C.summarize_within(pred_w, target_w, strata, groups, n_boot=200, seed=5)
    assert point[0] == pytest.approx(ref["srcc"])
    assert C.percentile_ci(reps[:, 0]) == pytest.approx(ref["srcc_ci"])
    assert info["strata_used"] == ref["strata_used"] == 23
    assert info["strata_excluded"] == {"constant target": 1}


# --------------------------------------------------------------------------- constructed studies
METRICS = ["l1", "ssim", "gmsd", "dists_vgg16", "lpips_vgg"]
FAMILY = {"l1": "pixel", "ssim": "ssim", "gmsd": "gmsd", "dists_vgg16": "dists",
          "lpips_vgg": "lpips"}
PANEL = [EvaluatorSpec("psnr", False, "pixel"), EvaluatorSpec("lpips_alex", True, "lpips"),
         EvaluatorSpec("niqe", True, "niqe", "nr"), EvaluatorSpec("musiq", False, "musiq", "nr")]
DISCRIMINATORS = (("patchgan", "patch", "conv"), ("swin_head", "image", "transformer"))


def make_cells(metrics=METRICS, weights=(0.01, 0.1)):
    cells = []
    for m in metrics:
        cells.append(Cell(f"{m}", m))
        for d, level, kind in DISCRIMINATORS:
            cells += [Cell(f"{m}+{d}@{w}", m, d, level, kind, w) for w in weights]
    return cells


def make_study(n_images=30, noise=0.05, reverse=False, seed=0, metrics=METRICS, panel=PANEL,
               weights=(0.01, 0.1), n_contents=40):
    """Metric i has assessment SRCC increasing with i and trains models of quality i (or -i)."""
    rng = np.random.default_rng(seed)
    cells = make_cells(metrics, weights)
    quality = {m: (-i if reverse else i) for i, m in enumerate(metrics)}
    images = [f"img{i}" for i in range(n_images)]
    scores = {}
    for c in cells:
        scores[c.name] = {}
        for e in panel:
            # every cell a different true quality (each discriminator shifts it differently)
            shift = c.adversarial_weight * (2.0 if c.level == "image" else 1.0)
            q = quality[c.fidelity] + shift + rng.normal(0, noise, n_images)
            scores[c.name][e.name] = -q if e.lower_better else q
    groups = np.repeat(np.arange(n_contents), 5)
    target = rng.normal(size=groups.size)
    preds = {m: {"toy": (0.5 + i) * target + rng.normal(0, 1.0, target.size)}
             for i, m in enumerate(metrics)}
    assess = AssessmentScores([AssessmentDataset("toy", target, groups)], preds,
                              {m: False for m in metrics})
    opt = OptimizationScores(cells, list(panel), images, scores, dict(FAMILY),
                             rule=circular_reason)
    return opt, assess


def analyze_json(*args, **kwargs) -> dict:
    """The analysis as ``analysis.json`` holds it (:meth:`optiqa.stats.rows.Analysis.to_json`):
    these tests check the file's contract key by key."""
    return analyze(*args, **kwargs).to_json()


def rows(out, scope, group=None, evaluator=None):
    return [r for r in out["rank_agreement"] if r["scope"] == scope
            and (group is None or r["group"] == group)
            and (evaluator is None or r["evaluator"] == evaluator)]


def test_concordant_and_reversed_studies():
    opt, assess = make_study()
    out = analyze_json(opt, assess, n_boot=100)
    json.dumps(out, allow_nan=False)                      # JSON-able, never NaN
    # 14 groups (5 settings, with/without, 2 levels, 2 backbones, 3 weights) x 4 evaluators
    assert len(out["rank_agreement"]) == 14 * 4
    # a metric's quality as an IQA model: its SRCC with the human scores (one dataset here)
    target = assess.datasets[0].targets
    assert {r["metric"]: r["quality"] for r in out["assessment"]} == {
        m: pytest.approx(stats.spearmanr(assess.predictions[m]["toy"], target)[0])
        for m in METRICS}
    for r in out["rank_agreement"]:
        assert r["spearman"] == pytest.approx(1.0) and r["kendall"] == pytest.approx(1.0)
        assert r["spearman_ci"][0] <= r["spearman"] <= r["spearman_ci"][1]
        assert r["kendall_ci"][0] <= r["kendall"] <= r["kendall_ci"][1]
    out = analyze_json(*make_study(reverse=True), n_boot=100)
    for r in out["rank_agreement"]:
        assert r["spearman"] == pytest.approx(-1.0) and r["kendall"] == pytest.approx(-1.0)
    # metrics that entered: all five for the NR evaluators, four where a family is excluded
    assert rows(out, "setting", "none", "niqe")[0]["n_metrics"] == 5
    assert rows(out, "setting", "none", "psnr")[0]["metrics"] == ["dists_vgg16", "gmsd",
                                                                  "lpips_vgg", "ssim"]


def test_intervals_bracket_the_estimate_and_shrink_with_more_images():
    def width(n_images):
        opt, assess = make_study(n_images=n_images, noise=6.0, n_contents=200)
        r = rows(analyze_json(opt, assess, n_boot=300, pairs=[]), "setting", "none", "niqe")[0]
        lo, hi = r["spearman_ci"]
        assert lo <= r["spearman"] <= hi
        return hi - lo
    assert width(400) < 0.5 * width(12)


def test_circularity_excludes_exactly_the_same_family_and_ignores_those_scores():
    opt, assess = make_study()
    out = analyze_json(opt, assess, n_boot=50)
    expected = {(c.name, e.name) for c in opt.cells for e in opt.evaluators
                if FAMILY[c.fidelity] == e.family}
    assert {(x["cell"], x["evaluator"]) for x in out["exclusions"]} == expected
    assert len(expected) == 2 * 5                         # l1 x psnr, lpips_vgg x lpips_alex
    assert all(x["kind"] == "circular" for x in out["exclusions"])
    assert rows(out, "adversarial", "with", "lpips_alex")[0]["left_out"]["circular"] == [
        "lpips_vgg"]
    by = {(r["cell"], r["evaluator"]): r for r in out["optimization"]}
    assert by[("l1", "psnr")]["mean"] is None and by[("l1", "psnr")]["excluded"]["kind"] == \
        "circular"
    agreement = out["evaluator_agreement"][0]
    assert set(agreement["cells"]) == {c.name for c in opt.cells
                                       if c.fidelity not in ("l1", "lpips_vgg")}
    # the excluded scores enter no statistic: replacing them with anything changes nothing
    for cell, evaluator in expected:
        opt.scores[cell][evaluator] = np.full(len(opt.images), 1e6)
    assert analyze_json(opt, assess, n_boot=50) == out
    # a missing score is reported as missing, not as circular
    del opt.scores["ssim"]["niqe"]
    out = analyze_json(opt, assess, n_boot=50)
    assert {"cell": "ssim", "fidelity": "ssim", "evaluator": "niqe", "kind": "missing",
            "reason": "no scores for this cell and evaluator"} in out["exclusions"]
    assert rows(out, "setting", "none", "niqe")[0]["left_out"]["missing_scores"] == ["ssim"]
    # Kendall's W leaves that cell out too, and says which evaluator could not judge it
    agreement = out["evaluator_agreement"][0]
    assert "ssim" not in agreement["cells"] and agreement["n_cells"] == 14
    assert {"cell": "ssim", "not_judged_by": ["niqe"]} in agreement["cells_left_out"]


def test_undefined_cases_are_none_with_a_reason():
    opt, assess = make_study(metrics=["ssim", "gmsd"])
    out = analyze_json(opt, assess, n_boot=50)
    for r in out["rank_agreement"]:
        assert r["spearman"] is None and r["spearman_ci"] is None
        assert r["reason"] == "fewer than 3 fidelity metrics (2)"
    opt, assess = make_study()
    for c in opt.cells:                                   # musiq cannot tell the models apart
        opt.scores[c.name]["musiq"] = np.linspace(0, 1, len(opt.images))
    out = analyze_json(opt, assess, n_boot=50)
    r = rows(out, "setting", "none", "musiq")[0]
    assert r["kendall"] is None and r["reason"] == \
        "optimization quality is the same for every metric"
    json.dumps(out, allow_nan=False)


def test_pooled_groups_contrasts_and_the_weight_sweep():
    opt, assess = make_study(weights=(0.01, 0.1, 1.0))
    opt.cells = [c for c in opt.cells if c.name != "gmsd+patchgan@0.1"]
    del opt.scores["gmsd+patchgan@0.1"]
    out = analyze_json(opt, assess, n_boot=50)
    groups = {(g["scope"], g["group"]): g["settings"] for g in out["groups"]}
    assert groups[("level", "patch")] == ["patchgan@0.01", "patchgan@0.1", "patchgan@1"]
    assert groups[("weight", "0")] == ["none"]
    assert groups[("weight", "1")] == ["patchgan@1", "swin_head@1"]
    # gmsd lacks one patch setting: left out of the pooled patch group, kept elsewhere
    patch = rows(out, "level", "patch", "niqe")[0]
    assert patch["left_out"]["not_trained"] == ["gmsd"] and patch["n_metrics"] == 4
    assert rows(out, "level", "image", "niqe")[0]["n_metrics"] == 5
    # a pooled quality is the mean of the per-setting qualities
    quality = {(r["cell"], r["evaluator"]): r["quality"] for r in out["optimization"]}
    point = next(p for p in rows(out, "adversarial", "with", "niqe")[0]["points"]
                 if p["metric"] == "ssim")
    assert point["optimization"] == pytest.approx(np.mean([quality[(c, "niqe")]
                                                           for c in point["cells"]]))
    assert point["optimization_raw"] == pytest.approx(-point["optimization"])  # lower-better
    contrast = next(c for c in out["contrasts"] if c["scope"] == "level"
                    and c["evaluator"] == "niqe")
    assert (contrast["first"], contrast["second"]) == ("patch", "image")
    # patch level only on a conv backbone, image level only on a Transformer: confounded, so
    # no difference is reported (it could be either factor)
    assert contrast["reason"].startswith("confounded: patch has (backbone_kind")
    assert contrast["spearman_difference"] is None and contrast["spearman_difference_ci"] is None
    assert contrast["same_metrics"] is False
    curve = next(c for c in out["weight_sweep"]["curves"] if c["fidelity"] == "ssim"
                 and c["discriminator"] == "swin_head" and c["evaluator"] == "psnr")
    assert curve["weights"] == [0.0, 0.01, 0.1, 1.0]
    raw = {(r["cell"], r["evaluator"]): r["mean"] for r in out["optimization"]}
    assert curve["mean"] == [raw[(c, "psnr")] for c in curve["cells"]]
    assert {r["group"] for r in out["weight_sweep"]["rank_agreement"]} == {"0", "0.01", "0.1",
                                                                           "1"}


def test_evaluator_agreement_in_the_study():
    out = analyze_json(*make_study(noise=0.01), n_boot=200)
    agreement = out["evaluator_agreement"][0]
    assert agreement["w"] == pytest.approx(1.0)           # every evaluator ranks alike
    assert agreement["n_cells"] == 15 and agreement["df"] == 14
    assert agreement["p_chi2"] < 1e-6 and agreement["p_permutation"] == pytest.approx(1 / 201)
    assert all(r["spearman_with_others"] == pytest.approx(1.0)
               for r in agreement["leave_one_out"])
    pair = agreement["pairwise"]
    assert pair["n_cells"][0][1] == 15                    # psnr and lpips_alex both judge
    assert pair["spearman"][0][1] == pytest.approx(1.0)


def test_paired_tests_in_the_study():
    opt, assess = make_study()
    out = analyze_json(opt, assess, n_boot=20)
    assert len(out["paired_tests"]) == len(default_pairs(opt.cells)) * len(PANEL)
    row = next(r for r in out["paired_tests"] if r["a"] == "ssim+patchgan@0.1"
               and r["evaluator"] == "niqe")
    assert row["b"] == "ssim"
    a, b = opt.scores["ssim+patchgan@0.1"]["niqe"], opt.scores["ssim"]["niqe"]
    assert row["p_value"] == pytest.approx(stats.wilcoxon(-a, -b).pvalue)
    assert row["rank_biserial"] == pytest.approx(R.rank_biserial(b - a))  # lower NIQE = better
    assert row["p_holm"] >= row["p_value"]
    circular = next(r for r in out["paired_tests"] if r["a"].startswith("l1+")
                    and r["evaluator"] == "psnr")
    assert circular["p_value"] is None and circular["reason"].startswith("circular")
    chosen = analyze_json(opt, assess, n_boot=20, pairs=[("ssim", "gmsd")])["paired_tests"]
    assert [r["evaluator"] for r in chosen] == [e.name for e in PANEL]


def test_within_strata_assessment_uses_the_benchmark_definition():
    opt, assess = make_study()
    ds = assess.datasets[0]
    ds.strata = np.array([f"{g}-{i % 2}" for i, g in enumerate(ds.groups)])
    out = analyze_json(opt, assess, n_boot=50)
    row = next(r for r in out["assessment"] if r["metric"] == "ssim")
    ref = C.summarize_within(assess.predictions["ssim"]["toy"], ds.targets, ds.strata, ds.groups,
                             n_boot=0)
    assert row["quality"] == pytest.approx(ref["srcc"])
    assert out["protocol"]["datasets"][0]["evaluation"] == "within"


def test_orientation_of_assessment():
    opt, assess = make_study()
    flipped = {m: {"toy": -v["toy"]} for m, v in assess.predictions.items()}
    lower = AssessmentScores(assess.datasets, flipped, {m: True for m in METRICS})
    a = analyze_json(opt, assess, n_boot=0)["assessment"]
    b = analyze_json(opt, lower, n_boot=0)["assessment"]
    assert [r["quality"] for r in a] == pytest.approx([r["quality"] for r in b])
    assert all(r["quality"] > 0 for r in a)


def test_deterministic_under_a_seed():
    opt, assess = make_study(noise=3.0, n_images=15)
    first, again = analyze_json(opt, assess, n_boot=100, seed=7), analyze_json(opt, assess, n_boot=100,
                                                                      seed=7)
    assert first == again
    other = analyze_json(opt, assess, n_boot=100, seed=8)
    assert other["assessment"][0]["quality_ci"] != first["assessment"][0]["quality_ci"]


def test_setting_groups_of_a_grid():
    groups = setting_groups(make_cells(["ssim"], weights=(0.1,)))
    assert [(g.scope, g.group) for g in groups] == [
        ("setting", "none"), ("setting", "patchgan@0.1"), ("setting", "swin_head@0.1"),
        ("adversarial", "without"), ("adversarial", "with"), ("level", "patch"),
        ("level", "image"), ("backbone", "conv"), ("backbone", "transformer"), ("weight", "0"),
        ("weight", "0.1")]


def test_bad_inputs_raise_naming_the_problem():
    opt, assess = make_study()
    opt.metric_family.pop("gmsd")
    with pytest.raises(InputError, match="no family given for fidelity metric 'gmsd'"):
        analyze_json(opt, assess, n_boot=0)
    opt, assess = make_study()
    opt.scores["ssim"]["niqe"] = opt.scores["ssim"]["niqe"][:3]
    with pytest.raises(InputError, match="scores of cell ssim, evaluator niqe: expected shape"):
        analyze_json(opt, assess, n_boot=0)
    opt, assess = make_study()
    opt.scores["ssim"]["niqe"][0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        analyze_json(opt, assess, n_boot=0)
    opt, assess = make_study()
    opt.cells.append(Cell("bad", "ssim", "none", adversarial_weight=0.1))
    with pytest.raises(InputError, match="adversarial_weight"):
        analyze_json(opt, assess, n_boot=0)
    opt, assess = make_study()
    with pytest.raises(InputError, match="unknown cell 'nope'"):
        analyze_json(opt, assess, n_boot=0, pairs=[("ssim", "nope")])
