"""``optiqa study CONFIG --rehearse`` (issue 20): a study whose data, IQA databases, start model
and backbone weights are not on the machine runs end to end, shrunk, with every substitution
listed and every page, table and figure marked as a rehearsal."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "data" / "rehearsal_study.yaml"
SECTIONS = ["Metrics as IQA models", "Metrics as training losses", "Assessment vs optimization",
            "Human judgments", "Why a metric fails as a loss: the recovery test",
            "Discriminators reused for IQA", "Visual comparison", "Training curves"]


@pytest.fixture(scope="module")
def rehearsed(tmp_path_factory):
    out = tmp_path_factory.mktemp("rehearsal") / "r"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "OPTIQA_CACHE": str(out.parent / "cache")}
    env.pop("OPTIQA_WEIGHTS", None)
    proc = subprocess.run([sys.executable, "-m", "optiqa", "study", str(CONFIG), "--rehearse",
                           "--out", str(out), "-q"], env=env, capture_output=True, text=True,
                          timeout=1800)   # a shared, loaded machine: ~50 s of CPU
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_every_section_runs_and_the_report_is_marked_as_a_rehearsal(rehearsed):
    page = (rehearsed / "report" / "report.html").read_text()
    md = (rehearsed / "report" / "report.md").read_text()
    assert md.startswith("# REHEARSAL (shrunk CPU run, not results): optiqa study")
    for section in SECTIONS:
        assert f">{section}</h2>" in page, section
    titles = [line for line in md.splitlines() if line.startswith("**")]
    assert titles and all(t.startswith("**[REHEARSAL") for t in titles)
    for table in (rehearsed / "report" / "tables").glob("*.csv"):
        assert table.read_text().startswith("# REHEARSAL"), table.name
    # every cell and the baselines, including the shared start model, were evaluated
    evaluated = {p.stem for p in (rehearsed / "evaluate").glob("*.json")}
    assert {"bicubic__sr_x4", "start__sr_x4"} <= evaluated and len(evaluated) == 2 + 15


def test_every_substitution_is_listed_at_the_top(rehearsed):
    md = (rehearsed / "report" / "report.md").read_text()
    top = md[:md.index("## ")]
    for needle in ("generator swinir: tiny version of the same architecture",
                   "start model path.pretrain_network_g", "training data",
                   "DF2K_HR (not on this machine): replaced by the built-in photos",
                   "test set Set5:", "test set Urban100:",
                   "assessment datasets live, csiq: replaced by the built-in known-order set",
                   "transfer dataset koniq10k: replaced",
                   # recorded when the discriminator was built: DINOv2's weights are missing
                   "backbone dinov2_s14 (DINOv2 ViT-S/14): pretrained weights not on this "
                   "machine, replaced by a fixed-seed random init"):
        assert needle in top, needle


def test_the_comparisons_of_the_design_are_defined(rehearsed):
    analysis = json.loads((rehearsed / "analysis.json").read_text())
    contrasts = {c["scope"]: c for c in analysis["contrasts"] if c["evaluator"] == "piqe"}
    agreement = {(r["task"], r["grid"], r["scope"], r["group"]): r
                 for r in analysis["rank_agreement"] if r["evaluator"] == "piqe"}
    # with/without, level and backbone kind, each over the same three losses on both sides
    for scope in ("adversarial", "level", "backbone"):
        c = contrasts[scope]
        assert c["reason"] is None, c
        assert c["same_metrics"] and c["n_metrics_first"] == c["n_metrics_second"] == 3
        # the difference (second - first) of the two groups' own rank agreements
        first, second = (agreement[(c["task"], c["grid"], scope, c[g])] for g in
                         ("first", "second"))
        assert first["metrics"] == second["metrics"]
        for stat in ("spearman", "kendall"):
            assert c[f"{stat}_difference"] == pytest.approx(second[stat] - first[stat],
                                                            abs=1e-12), (scope, stat)
    # protocol sentences come from the data they describe: a known-order set has no humans
    assert "synthetic: mean SRCC within (content, distortion) groups with distortion level" in \
        analysis["protocol"]["assessment_quality"]
    assert "with the human scores" not in analysis["protocol"]["assessment_quality"]
    weights = [r for r in analysis["weight_sweep"]["rank_agreement"] if r["evaluator"] == "piqe"]
    assert {r["group"] for r in weights} == {"0", "0.1"}
    assert all(r["n_metrics"] == 3 and r["reason"] is None for r in weights)
    with open(rehearsed / "report" / "tables" / "contrasts.csv") as f:
        rows = list(csv.reader(line for line in f if not line.startswith("#")))
    assert rows[0][:4] == ["evaluator", "task", "grid", "contrast"]


def test_every_gan_cell_trained_with_the_ratio_it_was_given_and_the_report_shows_it(rehearsed):
    """adversarial.relative end to end: each GAN cell's lambda makes the measured adversarial /
    fidelity gradient ratio 0.1 (lambda = 0.1 g_fid / g_adv from its own recorded norms, which
    differ from loss to loss), recorded in the run folder, its completion marker and the report."""
    gan = sorted(p.parent.name for p in (rehearsed / "runs").glob("*/gradient_ratio.json"))
    assert len(gan) == 12 and all(n.endswith("__r0.1") for n in gan)
    lambdas = {}
    for name in gan:
        rec = json.loads((rehearsed / "runs" / name / "gradient_ratio.json").read_text())
        assert rec["relative"] and rec["weight"] == 0.1 and rec["iteration"] == 1
        assert rec["adversarial_weight"] == pytest.approx(
            0.1 * rec["reference_norm"] / rec["adversarial_norm"], rel=1e-12)
        assert rec["ratio"] == pytest.approx(0.1, rel=1e-12)
        marker = json.loads((rehearsed / "runs" / name / "complete.json").read_text())
        assert marker["gradient_ratio"] == rec
        lambdas[name] = rec["adversarial_weight"]
    assert len({round(v, 12) for v in lambdas.values()}) > 3      # one lambda per loss scale
    with open(rehearsed / "report" / "tables" / "gradient_ratio.csv") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    assert sorted(r["model"] for r in rows) == gan
    assert all(r["weight is"] == "ratio" and float(r["ratio"]) == pytest.approx(0.1, rel=1e-3)
               for r in rows)
    md = (rehearsed / "report" / "report.md").read_text()
    assert "Adversarial/fidelity gradient ratio at the start of training" in md
    assert "at adversarial/fidelity gradient ratio 0.1" in md        # the answer's wording


def test_a_finished_rehearsed_cell_keeps_only_what_later_stages_read(rehearsed):
    """No resume state is left of a finished cell, and the discriminators, bit-identical after
    one step whatever the loss, are stored once per discriminator (hard links)."""
    runs = [p for p in (rehearsed / "runs").iterdir() if (p / "complete.json").is_file()]
    assert len(runs) == 15
    assert not [s for run in runs for s in (run / "state").glob("*.state")]
    d_files = [f for run in runs for f in (run / "models").glob("net_d_*.pth")]
    assert len(d_files) == 12
    assert len({os.stat(f).st_ino for f in d_files}) == 4      # conv/vit x patch/image
