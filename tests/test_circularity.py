"""The circularity rule by construction: families, shared feature extractors (loss and
discriminator), and the same marking of excluded judgments in HTML, Markdown, CSV and JSON."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from optiqa.evaluators.circularity import circular_reason
from optiqa.evaluators import (EXCLUDED_MARK, discriminator_extractor, exclusion,
                               family_of, feature_extractor)

ROOT = Path(__file__).resolve().parents[1]


def test_feature_extractors_as_documented():
    assert feature_extractor("dists") == "vgg16"
    assert feature_extractor("dists_vgg16") == "vgg16"
    assert feature_extractor("dists_vgg16_r") == "vgg16_r"      # random weights: not ImageNet
    assert feature_extractor("dists_effnet_lite0") == "effnet_lite0"
    assert feature_extractor("lpips_vgg") == "vgg16"
    assert feature_extractor("lpips_alex") == "alexnet"
    assert feature_extractor("ssim") is None and feature_extractor("niqe") is None


def test_shared_backbone_with_the_loss_is_circular_even_across_families():
    assert exclusion("lpips_vgg", "dists_vgg16") == \
        "shares the vgg16 features of the training loss dists_vgg16"
    assert exclusion("lpips_vgg", "dists") == \
        "shares the vgg16 features of the training loss dists"  # published DISTS: ImageNet VGG
    assert exclusion("lpips_alex", "dists_vgg16") is None
    # VGG-16-R (fixed-seed random) and ImageNet VGG-16 share the architecture, not the weights
    assert exclusion("dists_vgg16_r", "dists_vgg16", exclude_family=False) is None
    assert exclusion("dists_vgg16_r", "dists_vgg16") == \
        "family 'dists' of the training loss dists_vgg16"


def test_shared_backbone_with_the_discriminator_is_circular():
    d = {"type": "backbone", "backbone": "effnet_lite0", "head": "patch", "stage": 2}
    assert discriminator_extractor(d) == "effnet_lite0"
    assert discriminator_extractor({**d, "pretrained": False}) is None
    assert discriminator_extractor(None) is None
    assert exclusion("dists_effnet_lite0", "ssim", "effnet_lite0") == \
        "shares the effnet_lite0 features of the discriminator"
    assert exclusion("dists_vgg16_r", "ssim", "effnet_lite0") is None
    assert exclusion("gmsd", "ssim", "effnet_lite0") is None


def test_the_quick_study_excludes_by_construction():
    from optiqa.study.judges import excluded_evaluators
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config

    cfg = load_study_config(ROOT / "configs" / "study" / "quick.yaml")
    cells = {c.name: c for c in expand_cells(cfg)}
    adv = excluded_evaluators(cfg, cells["sr_x4__ssim__patch__w0.03"])
    # the discriminator is ImageNet EfficientNet-Lite0: DISTS on that backbone may not judge
    assert "dists_effnet_lite0" in adv and "features of the discriminator" in \
        adv["dists_effnet_lite0"]
    assert {"ssim_y", "ms_ssim"} <= set(adv) and "dists_vgg16_r" not in adv
    plain = excluded_evaluators(cfg, cells["sr_x4__ssim__none"])
    assert "dists_effnet_lite0" not in plain
    # the published DISTS as the loss: its family goes, LPIPS on AlexNet (no shared features)
    # stays; LPIPS on VGG-16 would share DISTS's ImageNet VGG-16 and go too
    dists = excluded_evaluators(cfg, cells["sr_x4__dists__patch__w0.03"])
    assert {"dists_vgg16_r", "dists_effnet_lite0"} <= set(dists) and "lpips_alex" not in dists
    assert "lpips_alex" in cfg.evaluators.metrics
    vgg = load_study_config(ROOT / "configs" / "study" / "quick.yaml",
                            ["evaluators.metrics=[lpips_vgg, lpips_alex, gmsd]"])
    vgg_cells = {c.name: c for c in expand_cells(vgg)}
    assert excluded_evaluators(vgg, vgg_cells["sr_x4__dists__none"]) == {
        "lpips_vgg": "shares the vgg16 features of the training loss dists"}


def test_every_output_marks_excluded_judgments_the_same(tmp_path):
    """HTML (greyed), Markdown and CSV show the mark in place of the number, and the analysis
    JSON has no number for the same (cell, evaluator) judgments."""
    from optiqa.study.judges import excluded_evaluators
    from optiqa.stats.asymmetry import (AssessmentDataset, AssessmentScores, Cell, EvaluatorSpec,
                                        OptimizationScores, analyze)
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config
    from optiqa.report.document import Document, Table
    from optiqa.report.study import Model, optimization_rows
    from optiqa.stats.rows import ModelMean

    cfg = load_study_config(ROOT / "configs" / "study" / "quick.yaml")
    cells = expand_cells(cfg)[:8]
    evaluators = list(cfg.evaluators.metrics)
    rng = np.random.default_rng(0)
    per_image = {(c.name, e): list(rng.normal(size=4)) for c in cells for e in evaluators}
    # the report reads its means from the analysis (one source for every number and interval)
    model_means = [ModelMean(c.name, e, float(np.mean(per_image[(c.name, e)])), None)
                   for c in cells for e in evaluators]
    models = [Model(c.name, c.fidelity, c.discriminator,
                    c.adversarial_weight if c.adversarial else None, excluded_evaluators(cfg, c))
              for c in cells]
    rows, muted = optimization_rows(models, evaluators, model_means)
    headers = ["model", "fidelity", "disc", "w"] + [x for e in evaluators for x in (e, e + " CI")]
    doc = Document("t")
    doc.table(Table("opt", headers, rows, csv_name="optimization", muted=muted))
    doc.write(tmp_path)
    marked = {(c.name, e) for c in cells for e in excluded_evaluators(cfg, c)}
    assert any(e == "dists_effnet_lite0" for _, e in marked)       # by the discriminator
    with open(tmp_path / "tables" / "optimization.csv") as f:
        table = list(csv.DictReader(f))
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for row in table:
        for e in evaluators:
            assert (row[e] == EXCLUDED_MARK) == ((row["model"], e) in marked)
            if (row["model"], e) not in marked:   # the others carry the analysis' mean
                assert float(row[e]) == pytest.approx(np.mean(per_image[(row["model"], e)]), abs=1e-3)
    md_rows = [line for line in md.splitlines() if line.startswith("| sr_x4__")]
    assert sum(line.count(EXCLUDED_MARK) for line in md_rows) == len(marked)
    assert len(re.findall(r"class='[^']*muted[^']*'>" + re.escape(EXCLUDED_MARK), html)) == \
        len(marked)
    # the analysis JSON: the same judgments carry no number and say why
    fam = {m: family_of(m) for m in {*cfg.fidelity.metrics, *evaluators}}
    acells = [Cell(c.name, c.fidelity, c.discriminator, c.level, c.architecture,
                   c.adversarial_weight, c.task,
                   discriminator_extractor(c.train_config.get("network_d"))) for c in cells]
    opt = OptimizationScores(acells, [EvaluatorSpec(e, False, fam[e]) for e in evaluators],
                             [f"i{i}" for i in range(4)],
                             {c.name: {e: np.array(per_image[(c.name, e)]) for e in evaluators}
                              for c in cells},
                             {m: fam[m] for m in cfg.fidelity.metrics},
                             {m: feature_extractor(m) for m in fam}, rule=circular_reason)
    groups = np.repeat(np.arange(6), 3)
    assess = AssessmentScores([AssessmentDataset("toy", rng.normal(size=18), groups)],
                              {m: {"toy": rng.normal(size=18)} for m in cfg.fidelity.metrics},
                              {m: False for m in cfg.fidelity.metrics})
    out = analyze(opt, assess, n_boot=0, pairs=[])
    json_marked = {(x.cell, x.evaluator) for x in out.optimization if x.excluded}
    assert json_marked == marked
    assert all(x.mean is None for x in out.optimization if x.excluded)
    assert {(x.cell, x.evaluator) for x in out.exclusions} == marked
    written = out.to_json()      # analysis.json: no number where the judgment is excluded
    assert all(x["mean"] is None and x["excluded"]["kind"] == "circular"
               for x in written["optimization"] if (x["cell"], x["evaluator"]) in marked)


def test_a_kept_pixel_term_is_excluded_the_same_by_panel_analysis_and_json():
    """The case where the three copies of the rule disagreed: a cell that keeps an L1 pixel term
    beside its fidelity loss. ``panel()`` let the pixel evaluators judge it, the study's
    exclusion list and ``analysis.json`` both left them out but with different reasons. Now the
    panel, the analysis and the statistics give the same judgments and the same words."""
    from optiqa.evaluators import excluded_judges, panel
    from optiqa.study.judges import excluded_evaluators
    from optiqa.stats.asymmetry import Cell, EvaluatorSpec, OptimizationScores
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config

    names = ["psnr_y", "ssim_y", "lpips_alex", "gmsd"]
    p = panel(names, exclude_for="ssim", exclude_family=True, extra_terms=("l1",))
    assert p.names == ["lpips_alex", "gmsd"]                 # psnr_y was kept before
    assert set(p.excluded) == {"psnr_y", "ssim_y"}
    assert p.excluded == excluded_judges(names, "ssim", True, extra_terms=("l1",))
    # without the extra term the pixel evaluator may judge (the rule, not a blanket ban)
    assert "psnr_y" in panel(names, exclude_for="ssim", exclude_family=True).names

    cfg = load_study_config(ROOT / "configs" / "study" / "quick.yaml",
                            [f"evaluators.metrics=[{', '.join(names)}]",
                             "train.overrides={train.pixel_opt: {weight: 0.01}}"])
    cell = next(c for c in expand_cells(cfg) if c.name == "sr_x4__ssim__none")
    study = excluded_evaluators(cfg, cell)
    assert study == p.excluded

    fam = {m: family_of(m) for m in [*names, "ssim"]}
    opt = OptimizationScores([Cell(cell.name, "ssim", extra_families=(family_of("l1"),))],
                             [EvaluatorSpec(e, False, fam[e]) for e in names], ["i0"],
                             {cell.name: {e: np.zeros(1) for e in names}}, {"ssim": fam["ssim"]},
                             {m: feature_extractor(m) for m in fam}, rule=circular_reason)
    json_reasons = {e.name: why for e in opt.evaluators
                    for kind, why in [opt.exclusion(opt.cells[0], e) or (None, None)] if kind}
    assert json_reasons == study
