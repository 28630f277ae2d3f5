"""The report's statistics sections, rendered from a constructed analysis (no study run)."""
from __future__ import annotations

import csv

import pytest
from test_asymmetry import make_study

from optiqa.report import figures
from optiqa.stats.asymmetry import analyze
from optiqa.report.document import Document
from optiqa.report.analysis import analysis_sections

FOUR = ["l1", "ssim", "gmsd", "dists_vgg16"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = analyze(*make_study(metrics=FOUR, n_images=10), n_boot=20, planned=[("ssim", "gmsd")])
    titles = []
    real = figures.scatter_panels

    def capture(panels, *a, **k):
        titles.extend(p.title + " | " + p.note for p in panels)
        return real(panels, *a, **k)
    figures.scatter_panels = capture
    try:
        doc = Document("t")
        analysis_sections(doc, out)
        folder = tmp_path_factory.mktemp("report")
        doc.write(folder)
    finally:
        figures.scatter_panels = real
    return out, titles, folder


def test_rank_agreement_tables_and_titles_state_p_k_and_descriptive_only(rendered):
    out, titles, folder = rendered
    with open(folder / "tables" / "rank_agreement.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"p", "k"} <= set(rows[0])
    defined = [r for r in rows if not r["undefined because"]]
    assert defined and all("descriptive only" in r["k"] and "exact" in r["k"] for r in defined)
    assert all(float(r["p"]) == pytest.approx(2 / 24) for r in defined if r["metrics"] == "4")
    assert titles and all("p " in t and "k = " in t and "descriptive only" in t for t in titles)
    md = (folder / "report.md").read_text()
    assert "descriptive only" in md and "2/k!" in md


def test_test_tables_state_family_size_and_floor(rendered):
    out, _, folder = rendered
    md = (folder / "report.md").read_text()
    planned = md[md.index("Planned comparisons"):md.index("Exploratory paired comparisons")]
    assert "Planned family: 4 tests, Holm-adjusted over this family alone" in planned
    assert "2/2^10 = 0.002" in planned
    n = out.test_families.exploratory.size
    assert f"Exploratory family: {n} tests" in md and "not as findings" in md
    assert "Exploratory family:" in md[md.index("Rank agreement between"):]
    with open(folder / "tables" / "planned_tests.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and "p (Holm, 4 tests)" in rows[0]


def test_human_tables_state_stimuli_resampling_and_family(tmp_path):
    from optiqa.report.human import human_section
    from optiqa.stats.permutation import rank_test
    from optiqa.stats.rows import (Human, HumanAgreement, HumanCrops, HumanFit, HumanRun,
                                   HumanVsEvaluator)

    def corr(n):
        xs = list(range(n))
        return {"n": n, "spearman": 1.0, "kendall": 1.0, "reason": None,
                "descriptive_only": n < 5, "spearman_test": rank_test(xs, xs),
                "kendall_test": rank_test(xs, xs, "kendall")}
    message = "30 votes from 3 rater(s)"
    fit = HumanFit([HumanRun("a", "A", 0.1, -0.2, 0.4, 1, 30, 16)], [], [], n_votes=30,
                   n_repeat_votes=0, consistency=None, connected=True, n_boot=100, seed=0,
                   alpha=0.01, ci_level=0.95, model="bradley-terry", scale="log odds",
                   message=message, notes=[], resampled="raters and images", n_raters=3,
                   n_images=2, has_votes=True)
    h = Human(True, message, fit, HumanCrops(6, [], {}),
              [HumanVsEvaluator("psnr_y", "sr_x4", ["a"], "the 6 crops the raters saw",
                                **corr(6))],
              [HumanAgreement("sr_x4", "main", "setting", "none", ["none"], ["l1"], 0.0,
                              points=[], **corr(4))])
    doc = Document("t")
    human_section(doc, h, "x")
    doc.write(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "resampling raters and images (3 raters, 2 images" in md
    assert "fewer than 10 raters the intervals are too narrow" in md
    assert "the 6 crops the raters saw" in md
    assert "Exploratory family: 1 permutation tests of rho (one per evaluator)" in md
    assert "descriptive only (k < 5)" in md
