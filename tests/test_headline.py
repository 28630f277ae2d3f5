"""The answer-first report: sentences generated from the numbers, checked on studies whose answer
is known (agreeing, reversed, null, too few losses)."""
from __future__ import annotations

import json

import pytest
from test_asymmetry import METRICS, make_study

from optiqa.stats.headline import Headline
from optiqa.stats.asymmetry import analyze
from optiqa.report.document import Document
from optiqa.report.analysis import answer_section


def null_study():
    """Each metric trains the models of another metric: rho = 0.3 against the assessment
    ranking over the 5 losses, whose exact two-sided p at k = 5 is far from significant."""
    opt, assess = make_study()
    order = [2, 0, 4, 1, 3]             # quality rank of metric i: rho(order, 0..4) = 0.3
    by = {(c.fidelity, c.setting): c.name for c in opt.cells}
    old = {name: dict(v) for name, v in opt.scores.items()}
    for c in opt.cells:
        source = METRICS[order[METRICS.index(c.fidelity)]]
        opt.scores[c.name] = old[by[(source, c.setting)]]
    return opt, assess


def sentences(out, task="sr_x4"):
    return {(h.scope, h.group): h for h in out.headline if h.task == task}


def test_agreeing_study():
    out = analyze(*make_study(), n_boot=0, pairs=[])
    h = sentences(out)[("setting", "none")]
    assert h.verdict == "agreement"
    assert h.sentence == (
        "Without a discriminator (sr_x4): the better a loss ranks as an IQA model, the better "
        "the models it trains: 4 of 4 evaluators agree with the IQA ranking, 0 reverse it; "
        "median rho +1.00, p 0.017 (exact permutation test, k = 5). Caveats: 5 losses, 1 seed "
        "per cell (seed-to-seed variation not measured), 30 test images.")
    pooled = sentences(out)[("adversarial", "with")]
    assert pooled.sentence.startswith("With a discriminator (pooled over 4 settings)")
    assert [h.group for h in out.headline][:2] == ["none", "with"]


def test_reversed_study():
    out = analyze(*make_study(reverse=True), n_boot=0, pairs=[])
    for h in out.headline:
        assert h.verdict == "reversal"
        assert "the worse the models it trains: 0 of 4 evaluators agree with the IQA ranking, " \
               "4 reverse it; median rho -1.00, p 0.017" in h.sentence


def test_null_study():
    out = analyze(*null_study(), n_boot=0, pairs=[])
    for h in out.headline:
        assert h.verdict == "no evidence"
        assert h.median == pytest.approx(0.3)
        # psnr may not judge l1 (pixel family): rho 0.4 over 4 losses; lpips_alex may not judge
        # lpips_vgg: rho 0 (neither agrees nor reverses); niqe and musiq: 0.3 over all 5
        assert "no evidence either way: 3 of 4 evaluators agree with the IQA ranking, 0 reverse " \
               "it; median rho +0.30, p 0.73 (exact permutation test, k = 5)" in h.sentence


def test_too_few_losses_is_descriptive_and_seeds_are_a_caveat():
    from test_seeds import seeded_study

    out = analyze(*seeded_study(metrics=METRICS[:4], n_images=30)[:2], n_boot=0, pairs=[])
    h = sentences(out)[("setting", "none")]
    assert h.verdict == "descriptive"
    assert "descriptive only (with k = 4 losses the smallest possible p is 0.083)" in \
        h.sentence
    assert "Caveats: 4 losses, 3 seeds per cell, averaged, 30 test images." in h.sentence
    assert Headline.from_json(json.loads(json.dumps(h.to_json()))) == h


def test_the_report_opens_with_the_answer_and_the_heatmap(tmp_path):
    out = analyze(*make_study(), n_boot=0, pairs=[])
    doc = Document("t")
    answer_section(doc, out)
    doc.write(tmp_path)
    md = (tmp_path / "report.md").read_text().splitlines()
    assert md[2] == "## The answer"
    assert md[4].startswith("- Without a discriminator (sr_x4): the better a loss ranks")
    assert (tmp_path / "figures" / "rank_agreement_heatmap_sr_x4.png").is_file()
    html = (tmp_path / "report.html").read_text()
    body = html[html.index("<body>"):]
    assert body.index("The answer") < body.index("class='answer'") < body.index("<figure>")


def test_two_grids_sharing_a_setting_are_told_apart_in_sentences_and_heatmap(monkeypatch):
    """The paper's design has three grids that each include 'none' over different losses: the
    sentences must name the grid, and the heatmap must read each grid's own rank agreement
    (keyed without the grid, the last grid's rows stood in for every grid's)."""
    from optiqa.report import figures

    opt, assess = null_study()
    settings = list(dict.fromkeys(c.setting for c in opt.cells))
    grids = [{"name": "all five", "fidelity": list(METRICS), "settings": settings},
             {"name": "three", "fidelity": [METRICS[i] for i in (0, 1, 3)],
              "settings": ["none"]}]
    out = analyze(opt, assess, n_boot=0, pairs=[], grids=grids)
    nones = [h for h in out.headline if h.group == "none"]
    assert [h.grid for h in nones] == ["all five", "three"]
    assert nones[0].sentence.startswith("Without a discriminator in the 'all five' grid")
    assert nones[1].sentence.startswith("Without a discriminator in the 'three' grid")

    seen = {}

    real = figures.agreement_heatmap

    def capture(rho, p, labels, evaluators, title, notes=None):
        seen.update(rho=rho, labels=labels, evaluators=evaluators)
        return real(rho, p, labels, evaluators, title, notes=notes)
    monkeypatch.setattr(figures, "agreement_heatmap", capture)
    answer_section(Document("t"), out)
    cols = [lab.split("\n")[0] for lab in seen["labels"]]
    assert cols[0] == "all five:" and cols[-1] == "three:"
    e = seen["evaluators"].index("niqe")          # judges every loss
    want = {(r.grid, r.group): r.spearman for r in out.rank_agreement
            if r.evaluator == "niqe" and r.scope == "setting"}
    assert want[("all five", "none")] == pytest.approx(0.3)
    assert want[("three", "none")] == pytest.approx(-0.5)
    assert seen["rho"][e][0] == pytest.approx(0.3)
    assert seen["rho"][e][-1] == pytest.approx(-0.5)
