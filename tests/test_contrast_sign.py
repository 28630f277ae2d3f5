"""A one-factor contrast is the second group's rank agreement minus the first's, checked on a
known answer: without a discriminator the losses' models rank against their assessment quality
(rho = tau = -1), with one they rank as it does (+1), so the adversarial contrast (without ->
with) is +2 in Spearman's rho and Kendall's tau (the rehearsal and the design tests only see
contrasts of 0, which do not show the sign)."""
from __future__ import annotations

import numpy as np
import pytest
from test_study_design import FAMILY, METRICS, PANEL

from optiqa.evaluators.circularity import circular_reason
from optiqa.stats.asymmetry import (AssessmentDataset, AssessmentScores, Cell,
                                    OptimizationScores, analyze)


def test_the_adversarial_contrast_is_with_minus_without():
    rng = np.random.default_rng(0)
    cells = [c for m in METRICS
             for c in (Cell(m, m), Cell(f"{m}+patch", m, "vgg_patch", "patch", "conv", 0.01))]
    rank = {m: i for i, m in enumerate(METRICS)}  # assessment SRCC increases with i (below)
    images = [f"img{i}" for i in range(12)]
    scores = {c.name: {e.name: (-1 if e.lower_better else 1)
                       * ((rank[c.fidelity] if c.adversarial else -rank[c.fidelity])
                          + rng.normal(0, .01, 12)) for e in PANEL} for c in cells}
    target = rng.normal(size=100)
    preds = {m: {"toy": target * (i + 1) / 5 + rng.normal(0, 1, 100)}
             for i, m in enumerate(METRICS)}
    out = analyze(OptimizationScores(cells, PANEL, images, scores, FAMILY, rule=circular_reason),
                  AssessmentScores([AssessmentDataset("toy", target, np.repeat(np.arange(20), 5))],
                                   preds, {m: False for m in METRICS}), n_boot=0).to_json()
    agreement = {r["group"]: r for r in out["rank_agreement"]
                 if r["scope"] == "adversarial" and r["evaluator"] == "niqe"}
    assert agreement["without"]["spearman"] == pytest.approx(-1.0)
    assert agreement["with"]["spearman"] == pytest.approx(1.0)
    c = next(c for c in out["contrasts"] if c["scope"] == "adversarial"
             and c["evaluator"] == "niqe")
    assert (c["first"], c["second"], c["reason"]) == ("without", "with", None)
    assert c["spearman_difference"] == pytest.approx(2.0)
    assert c["kendall_difference"] == pytest.approx(2.0)
