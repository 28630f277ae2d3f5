"""The study's design (issue 20): weight curves at each loss's own weights, pooled groups defined
per grid, one-factor contrasts, the dry run's design check, human comparisons per task."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_asymmetry import analyze_json

from optiqa.evaluators.circularity import circular_reason
from optiqa.stats.asymmetry import (AssessmentDataset, AssessmentScores, Cell, EvaluatorSpec,
                                    OptimizationScores, analyze)

ROOT = Path(__file__).resolve().parents[1]
METRICS = ["l1", "ssim", "gmsd", "dists_vgg16", "lpips_vgg"]
FAMILY = {"l1": "pixel", "ssim": "ssim", "gmsd": "gmsd", "dists_vgg16": "dists",
          "lpips_vgg": "lpips"}
PANEL = [EvaluatorSpec("niqe", True, "niqe", "nr"), EvaluatorSpec("musiq", False, "musiq", "nr")]
CROSSED = (("vgg_patch", "patch", "conv"), ("vgg_image", "image", "conv"),
           ("swin_patch", "patch", "transformer"), ("swin_image", "image", "transformer"))


# --------------------------------------------------------------------------- the weight figure
def test_weight_curves_draw_each_loss_at_its_own_weights():
    from optiqa.report import figures
    from optiqa.report.document import Document
    from optiqa.report.analysis import _sweep

    sweep = [0.0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02]
    from optiqa.stats.rows import SweepCurve, WeightSweep

    def curve(fidelity, weights, mean):
        n = len(weights)
        return SweepCurve("sr_x4", "d", "niqe", fidelity, weights, [f"c{i}" for i in range(n)],
                          mean, [None] * n, mean, [None] * n)
    curves = [curve("dists", sweep, list(range(7))), curve("l1", [0.0, 0.005], [1.0, 2.0])]
    doc = Document("t")
    # 7 points for one loss and 2 for another: this raised "x and y must have same first
    # dimension" and ended the paper study with no report
    _sweep(doc, WeightSweep(curves, []))
    fig = next(b[1] for b in doc.blocks if b[0] == "f")
    assert fig.png.startswith(b"\x89PNG")
    ticks, weights, series = figures.weight_positions(figures.WeightPanel(
        "t", {"dists": (sweep, list(range(7))), "l1": ([0.0, 0.005], [1.0, None])}))
    assert weights == sweep and ticks[0] == pytest.approx(0.0005 / 3)
    # l1's second point sits at 0.005, not at dists' second weight (0.0005)
    assert series["l1"][0] == [pytest.approx(0.0005 / 3), 0.005]
    assert np.isnan(series["l1"][1][1])
    with pytest.raises(ValueError, match="2 weights but 3 values"):
        figures.weight_positions(figures.WeightPanel("t", {"l1": ([0, 1], [1, 2, 3])}))


# --------------------------------------------------------------------------- groups per grid
def _study(cells, seed=0):
    """Metric i trains models of quality i and has assessment SRCC increasing with i."""
    rng = np.random.default_rng(seed)
    quality = {m: i for i, m in enumerate(METRICS)}
    images = [f"img{i}" for i in range(12)]
    scores = {c.name: {e.name: (-1 if e.lower_better else 1) * (quality[c.fidelity]
                                                               + rng.normal(0, .01, 12))
                       for e in PANEL} for c in cells}
    groups = np.repeat(np.arange(20), 5)
    target = rng.normal(size=100)
    preds = {m: {"toy": target * (i + 1) / 5 + rng.normal(0, 1, 100)}
             for i, m in enumerate(METRICS)}
    return (OptimizationScores(cells, PANEL, images, scores, FAMILY, rule=circular_reason),
            AssessmentScores([AssessmentDataset("toy", target, groups)], preds,
                             {m: False for m in METRICS}))


def _grid_cells():
    """Grid "crossed": every metric x (none + level x backbone at 0.01); grid "sweep": dists
    alone against vgg_patch over three weights (as paper.yaml's old design)."""
    cells = []
    for m in METRICS:
        cells.append(Cell(m, m))
        cells += [Cell(f"{m}+{d}@0.01", m, d, lvl, kind, 0.01) for d, lvl, kind in CROSSED]
    cells += [Cell(f"dists_vgg16+vgg_patch@{w}", "dists_vgg16", "vgg_patch", "patch", "conv", w)
              for w in (0.001, 0.1)]
    grids = [{"name": "crossed", "fidelity": METRICS,
              "settings": ["none"] + [f"{d}@0.01" for d, _, _ in CROSSED]},
             {"name": "sweep", "fidelity": ["dists_vgg16"],
              "settings": ["none", "vgg_patch@0.001", "vgg_patch@0.01", "vgg_patch@0.1"]}]
    return cells, grids


def test_pooled_groups_are_defined_per_grid_not_by_a_silent_intersection():
    cells, grids = _grid_cells()
    out = analyze_json(*_study(cells), n_boot=30, grids=grids)
    by = {(r["grid"], r["scope"], r["group"], r["evaluator"]): r for r in out["rank_agreement"]}
    # the intersection over all settings kept only dists_vgg16 (the one metric of the sweep)
    for scope, group in (("adversarial", "with"), ("level", "patch"), ("level", "image"),
                         ("backbone", "conv"), ("backbone", "transformer")):
        r = by[("crossed", scope, group, "niqe")]
        assert r["n_metrics"] == 5 and r["left_out"]["not_trained"] == []
        assert r["spearman"] == pytest.approx(1.0)
        assert by[("sweep", "adversarial", "with", "niqe")]["n_metrics"] == 1
    # a weight of the sweep grid pools only that grid's settings
    assert [g["settings"] for g in out["groups"] if g["grid"] == "sweep"
            and g["scope"] == "weight" and g["group"] == "0.01"] == [["vgg_patch@0.01"]]
    contrasts = {(c["grid"], c["scope"]): c for c in out["contrasts"] if c["evaluator"] == "niqe"}
    # crossed level x backbone: both one-factor contrasts are defined
    for scope in ("level", "backbone", "adversarial"):
        c = contrasts[("crossed", scope)]
        assert c["reason"] is None and c["spearman_difference"] == pytest.approx(0.0)
        assert c["same_metrics"] is True


def test_a_contrast_whose_sides_differ_in_two_factors_is_confounded():
    cells = []
    for m in METRICS:
        cells += [Cell(m, m), Cell(f"{m}+p", m, "vgg_patch", "patch", "conv", 0.01),
                  Cell(f"{m}+i", m, "swin_image", "image", "transformer", 0.01)]
    out = analyze_json(*_study(cells), n_boot=0)
    c = next(c for c in out["contrasts"] if c["scope"] == "level" and c["evaluator"] == "niqe")
    assert c["reason"] == ("confounded: patch has (backbone_kind / adversarial_weight) "
                           "conv/0.01, image has transformer/0.01")
    assert c["spearman_difference"] is None


def _cfg(tmp_path, text):
    from optiqa.study.config import load_study_config

    p = tmp_path / "s.yaml"
    p.write_text(text.replace("BASE", str(ROOT / "configs/train/tiny_cpu.yaml")))
    return load_study_config(p)


STUDY = """
name: s
train: {base: BASE}
fidelity: {metrics: [l1, ssim, gmsd, nlpd]}
adversarial:
  discriminators: {p: {type: patchgan}, u: {type: unet}}
  weights: [0.01, 0.1]
grids:
  - {name: all losses, discriminators: [none, p], weights: [0.01]}
  - {name: sweep, fidelity: [ssim, gmsd]}
evaluators: {metrics: [psnr_y, ssim_y, niqe]}
"""


def test_dry_run_design_check_flags_undefined_groups_and_confounded_contrasts(tmp_path):
    from optiqa.study.design import check_design

    check = check_design(_cfg(tmp_path, STUDY))
    # the sweep grid has two metrics: every one of its groups is undefined, each named
    assert check.undefined and all(" / sweep / " in u for u in check.undefined)
    assert any(u.endswith("adversarial with: at most 2 fidelity metric(s) per evaluator (the "
                          "rank agreement needs 3)") for u in check.undefined)
    assert not any(" / all losses / " in u for u in check.undefined)
    # sweep: the level contrast compares PatchGAN (patch) with the U-Net (patch too): no image
    # side, so no contrast; "all losses" has no second level either
    assert all("level" not in c for c in check.contrasts + check.confounded)
    assert "sr_x4 / all losses / adversarial: with - without" in check.contrasts


def test_the_paper_design_has_no_undefined_group_or_confounded_contrast():
    from optiqa.study.config import load_study_config
    from optiqa.study.design import check_design

    check = check_design(load_study_config(ROOT / "configs/study/paper.yaml"))
    assert check.undefined == [] and check.confounded == []
    scopes = {c.split(" / ")[2].split(":")[0] for c in check.contrasts}
    assert scopes == {"adversarial", "level", "backbone"}


# --------------------------------------------------------------------------- human judgments
def test_human_vs_evaluator_correlations_are_per_task(monkeypatch):
    import optiqa.judge
    from optiqa.study import analysis

    tasks = ["sr_x4", "sr_x2"]
    cells = [SimpleNamespace(name=f"{t}__{m}", task=t, fidelity=m, discriminator="none",
                             adversarial=False, adversarial_weight=0.0)
             for t in tasks for m in METRICS]
    # within each task people and the evaluator agree perfectly; the tasks' scores are on
    # unrelated scales (votes never compare two tasks), so pooling them would mislead
    human = {f"sr_x4__{m}": float(i) for i, m in enumerate(METRICS)}
    human.update({f"sr_x2__{m}": 10.0 + i for i, m in enumerate(METRICS)})
    quality = {f"sr_x4__{m}": 10.0 + i for i, m in enumerate(METRICS)}
    quality.update({f"sr_x2__{m}": float(i) for i, m in enumerate(METRICS)})
    from optiqa.judge.fit import HumanScores, RunScore

    fitted = HumanScores(tuple(RunScore(n, n, s, None, None, None, 8, 4) for n, s in human.items()),
                         (), (), 40, 0, None, True, 0, 0, 0.01, message="m")
    monkeypatch.setattr(optiqa.judge, "fit_study", lambda *a, **k: fitted)
    # the evaluators' scores on the crops the raters saw
    crops = SimpleNamespace(crops=[], unscored={})
    monkeypatch.setattr(analysis, "crop_quality",
                        lambda plan, cells: (crops, {(n, "niqe"): q for n, q in quality.items()}))
    cfg = SimpleNamespace(tasks={t: {} for t in tasks}, seed=0, fidelity=SimpleNamespace(
        metrics=METRICS), evaluators=SimpleNamespace(metrics=["niqe"]),
        assessment=SimpleNamespace(bootstrap=0))
    plan = SimpleNamespace(cfg=cfg, cells=cells, folder=SimpleNamespace(root="."))
    result = SimpleNamespace(assessment=[], groups=[])    # no IQA side: by evaluator only
    rows = analysis.human_judgments(plan, result).by_evaluator
    assert [(r.task, r.n, r.spearman) for r in rows] == [
        ("sr_x4", 5, pytest.approx(1.0)), ("sr_x2", 5, pytest.approx(1.0))]


# --------------------------------------------------------------------------- greyscale
def test_built_in_greyscale_photos_are_detected_from_their_pixels():
    from optiqa.data.task_datasets import SRTestDataset
    from optiqa.restore.scoring import SetResult, create_scorers, restore_and_score
    from optiqa.restore.generator import load_generator

    ds = SRTestDataset("builtin:test/48", scale=4)
    model = load_generator("bicubic", scale=4).model
    res = SetResult("photos", "", ds.lq_source, scores={"psnr_y": []})
    scorers, kinds = create_scorers(["psnr_y"], "cpu", have_reference=True)
    restore_and_score(model, 4, ds, res, scorers, kinds, "matlab", progress=False)
    # camera, coins, page and cell are greyscale photos (no file header to read): compared as
    # grey under the MATLAB protocol, as the table note says; the colour photos are not
    assert {"camera", "coins", "page"} <= set(res.greyscale)
    assert not {"astronaut", "chelsea", "rocket"} & set(res.greyscale)


# --------------------------------------------------------------------------- one interval source
def test_the_report_takes_every_interval_from_the_analysis():
    from optiqa.report.study import Model, optimization_rows
    from optiqa.stats.asymmetry import model_means
    from optiqa.stats.rows import ModelMean

    cells = [Cell(m, m) for m in METRICS[:3]]
    opt, assess = _study(cells)
    out = analyze(opt, assess, n_boot=200, seed=4)
    raw = {c.name: {e.name: opt.scores[c.name][e.name] for e in PANEL} for c in cells}
    raw["bicubic__sr_x4"] = {e.name: opt.scores["l1"][e.name] + 1.0 for e in PANEL}
    means = model_means(raw, n_boot=200, seed=4)
    # the same replicates as the analysis' own: identical intervals for every cell
    for row in out.optimization:
        m = next(x for x in means if x.model == row.cell and x.evaluator == row.evaluator)
        assert m.mean_ci == pytest.approx(row.mean_ci) and m.mean == row.mean
    # the report's table shows these numbers; it never draws replicates of its own
    models = [Model("bicubic__sr_x4"), Model("l1", "l1", "none")]
    rows, _ = optimization_rows(models, ["niqe"], [ModelMean("bicubic__sr_x4", "niqe", 7.0,
                                                             [6.5, 7.5]),
                                                   ModelMean("l1", "niqe", 3.0, [2.0, 4.0])])
    assert rows == [["bicubic__sr_x4", "(baseline)", "-", None, 7.0, "[6.500, 7.500]"],
                    ["l1", "l1", "none", None, 3.0, "[2.000, 4.000]"]]
