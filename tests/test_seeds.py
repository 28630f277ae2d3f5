"""Training seeds as a factor: replicated cells, the mean over seeds, the bootstrap over seeds and
images, and the seed-to-seed spread (ICC), on studies whose seed noise is known."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_asymmetry import FAMILY, METRICS, PANEL, analyze_json

from optiqa.evaluators.circularity import circular_reason
from optiqa.stats.replicates import SeedSpread, seed_spread
from optiqa.stats.asymmetry import (AssessmentDataset, AssessmentScores, Cell,
                                    OptimizationScores, _optimization, analyze)
from optiqa.stats.seeds import collapse

ROOT = Path(__file__).resolve().parents[1]


def test_icc_textbook_example():
    """Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(1,1) = .17, ICC(1,4) = .44,
    and the one-way ANOVA's mean squares BMS = 11.24, WMS = 6.26."""
    y = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
                  [6, 2, 4, 7]], dtype=float)
    r = seed_spread(y)
    assert r.icc == pytest.approx(0.17, abs=0.005)
    assert r.icc_mean == pytest.approx(0.44, abs=0.005)
    assert r.seed_sd ** 2 == pytest.approx(6.26, abs=0.01)
    assert r.f == pytest.approx(11.24 / 6.26, abs=0.01)
    assert SeedSpread.from_json(r.to_json()) == r
    assert seed_spread(np.ones((1, 3))).reason.startswith("needs at least 2 units")


def test_icc_recovers_the_known_variance_ratio():
    rng = np.random.default_rng(0)
    between, within = 2.0, 1.0
    y = rng.normal(0, between, (4000, 1)) + rng.normal(0, within, (4000, 3))
    r = seed_spread(y)
    assert r.icc == pytest.approx(between ** 2 / (between ** 2 + within ** 2), abs=0.02)
    assert r.seed_sd == pytest.approx(within, rel=0.03)


def seeded_study(n_seeds=3, seed_sd=0.5, image_sd=0.0, n_images=12, seed=0, metrics=METRICS):
    """Metric i trains models of true quality i; each seed's model is off by N(0, seed_sd) (the
    same for every evaluator: they judge the same network) and each image by N(0, image_sd)."""
    rng = np.random.default_rng(seed)
    cells, scores, offsets = [], {}, {}
    for i, m in enumerate(metrics):
        for s in range(n_seeds):
            name = f"{m}__s{s}"
            cells.append(Cell(name, m, seed=s, unit=m))
            offsets[name] = rng.normal(0, seed_sd)
            scores[name] = {}
            for e in PANEL:
                q = i + offsets[name] + rng.normal(0, image_sd, n_images)
                scores[name][e.name] = -q if e.lower_better else q
    groups = np.repeat(np.arange(30), 4)
    target = rng.normal(size=groups.size)
    preds = {m: {"toy": (0.5 + i) * target + rng.normal(0, 1.0, target.size)}
             for i, m in enumerate(metrics)}
    assess = AssessmentScores([AssessmentDataset("toy", target, groups)], preds,
                              {m: False for m in metrics})
    opt = OptimizationScores(cells, list(PANEL), [f"img{i}" for i in range(n_images)], scores,
                             dict(FAMILY), rule=circular_reason)
    return opt, assess, offsets


def test_replicates_are_averaged_and_the_spread_is_reported():
    opt, assess, offsets = seeded_study()
    out = analyze_json(opt, assess, n_boot=0, pairs=[])
    assert out["seeds"]["n_seeds"] == 3 and len(out["seeds"]["runs"]) == 15
    assert [c["name"] for c in out["cells"]] == METRICS          # one cell per setting
    row = next(r for r in out["optimization"] if r["cell"] == "gmsd" and r["evaluator"] == "niqe")
    expected = np.mean([2 + offsets[f"gmsd__s{s}"] for s in range(3)])
    assert row["quality"] == pytest.approx(expected)              # niqe oriented: higher=better
    spread = next(r for r in out["seeds"]["spread"] if r["evaluator"] == "niqe")
    y = np.array([[i + offsets[f"{m}__s{s}"] for s in range(3)] for i, m in enumerate(METRICS)])
    assert spread["icc"] == pytest.approx(seed_spread(y).icc)
    assert spread["seed_sd"] == pytest.approx(seed_spread(y).seed_sd)
    assert spread["n_units"] == 5 and spread["n_seeds"] == 3
    # psnr may not judge l1 (pixel family): 4 losses
    assert next(r for r in out["seeds"]["spread"] if r["evaluator"] == "psnr")["n_units"] == 4
    assert "3 seeds per cell, averaged" in out["headline"][0]["sentence"]
    assert "training seeds" in out["protocol"]["resampling"]


def test_the_bootstrap_resamples_seeds():
    """With no image noise, a cell's replicates vary only through the seeds drawn: their SD is
    the bootstrap standard error of a mean of S values, sqrt(sum (y_s - ybar)^2 / S) / sqrt(S)."""
    opt, _, offsets = seeded_study(n_seeds=4, seed_sd=1.0, image_sd=0.0)
    units, per_seed, n_seeds = collapse(opt)
    assert n_seeds == 4
    stats = _optimization(units, 4000, 0, per_seed)
    y = np.array([offsets[f"ssim__s{s}"] for s in range(4)])
    expected = math.sqrt(((y - y.mean()) ** 2).mean() / 4)
    point, reps = stats[("ssim", "niqe")]
    assert point == pytest.approx(1 + y.mean())
    assert reps.std() == pytest.approx(expected, rel=0.08)
    # the same unit's replicates share the seed draw across evaluators (same networks)
    _, reps_musiq = stats[("ssim", "musiq")]
    assert np.allclose(reps, reps_musiq)
    # without the seed resampling the replicates would not vary at all
    assert np.ptp(_optimization(units, 200, 0)[("ssim", "niqe")][1]) == pytest.approx(0)


def test_seed_noise_widens_the_rank_agreement_interval():
    def width(seed_sd):
        out = analyze_json(*seeded_study(seed_sd=seed_sd, image_sd=0.3)[:2], n_boot=400,
                           pairs=[])
        r = next(r for r in out["rank_agreement"] if r["scope"] == "setting"
                 and r["evaluator"] == "niqe")
        return r["spearman_ci"][1] - r["spearman_ci"][0]
    assert width(0.0) < width(1.5)


def test_train_seeds_replicate_every_cell_and_count_in_the_dry_run(tmp_path):
    from optiqa.study.cells import expand_cells
    from optiqa.study.config import load_study_config
    from optiqa.study.folder import StudyFolder
    from optiqa.study.plan import StudyPlan
    from optiqa.study.runner import StudyOptions, dry_run

    quick = ROOT / "configs" / "study" / "quick.yaml"
    one = load_study_config(quick)
    three = load_study_config(quick, ["train.seeds=[0, 1, 2]"])
    cells = expand_cells(three)
    assert len(cells) == 3 * len(expand_cells(one))
    c = next(c for c in cells if c.name == "sr_x4__ssim__patch__w0.03__s2")
    assert c.seed == 2 and c.train_config["seed"] == 2
    assert c.setting_name == "sr_x4__ssim__patch__w0.03"
    opts = StudyOptions(step_seconds=1.0)
    a = dry_run(StudyPlan(one, StudyFolder(tmp_path / "a")), opts)
    b = dry_run(StudyPlan(three, StudyFolder(tmp_path / "b")), opts)
    pre = one.train.pretrain.total_iter               # the pre-training is not replicated
    assert b["seeds"] == 3 and b["cells"] == 3 * a["cells"]
    assert b["remaining_steps"] - pre == 3 * (a["remaining_steps"] - pre)
    assert b["gpu_hours"] > 2.9 * a["gpu_hours"] * (1 - pre / a["remaining_steps"])


def test_bad_seeds_are_a_config_error():
    from optiqa.core.errors import ConfigError
    from optiqa.study.config import load_study_config

    with pytest.raises(ConfigError, match="train.seeds"):
        load_study_config(ROOT / "configs" / "study" / "quick.yaml", ["train.seeds=[1, 1]"])


def test_the_report_gives_the_seed_spread_per_evaluator(tmp_path):
    import csv

    from optiqa.report.document import Document
    from optiqa.report.analysis import analysis_sections

    out = analyze(*seeded_study()[:2], n_boot=50, pairs=[])
    doc = Document("t")
    analysis_sections(doc, out)
    doc.write(tmp_path)
    with open(tmp_path / "tables" / "seed_spread.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["evaluator"] for r in rows} == {e.name for e in PANEL}
    assert all(r["seeds"] == "3" and float(r["ICC(1,1)"]) <= 1 for r in rows)
    assert "resamples seeds within each cell" in (tmp_path / "report.md").read_text()
