"""Fitting DISTS-style alpha/beta: cached terms, the optimiser, held-out SRCC, the weights file."""
import json

import numpy as np
import pytest
import torch

from optiqa import create_metric
from optiqa.assess import fit
from optiqa.assess.benchmark import score_items, statistics
from optiqa.cli import main
from optiqa.data.io import read_image
from optiqa.data.synthetic import load_synthetic
from optiqa.core.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # small convolutions on a shared 2-core machine: one thread avoids oversubscription
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synthetic48(tmp_path_factory):
    return load_synthetic(size=48, cache=tmp_path_factory.mktemp("cache"))


def test_backbone_names():
    assert fit.backbone_of("dists_vgg16_r") == "vgg16_r"
    assert fit.backbone_of("dists") == "vgg16"
    with pytest.raises(ConfigError, match="DISTS-style"):
        fit.backbone_of("ssim")


def test_cached_terms_reproduce_the_metric(tmp_path):
    ds = load_synthetic(size=40, photos=["coffee"], distortions=["jpeg", "contrast"],
                        cache=tmp_path)
    metric = create_metric("dists_vgg16_r")
    terms = fit.dists_terms(metric, ds, workers=0, progress=False)
    assert terms.shape == (10, 2 * sum(metric.backbone.channels))
    w = torch.cat([metric.alpha, metric.beta]).double().numpy()
    with torch.no_grad():  # the metric's own forward, one pair at a time
        direct = np.array([float(metric(read_image(it.dist)[None], read_image(it.ref)[None]))
                           for it in ds.items])
    np.testing.assert_allclose(terms @ w, direct, rtol=1e-4, atol=1e-6)
    # the benchmark's batched path (reference features computed once) gives the same scores
    batched = score_items({"d": metric}, ds.items, batch_size=4, workers=0, progress=False)["d"]
    np.testing.assert_allclose(batched, direct, rtol=1e-4, atol=1e-6)


def test_fit_weights_finds_the_informative_channels():
    rng = np.random.default_rng(0)
    n = 400
    quality = rng.normal(size=n)
    informative = np.stack([np.exp(-quality), np.exp(-quality) * 2], 1)  # grow as quality falls
    noise = rng.gamma(2.0, 1.0, (n, 4)) * 3
    terms = np.concatenate([informative, noise], 1)
    w = fit.fit_weights(terms, quality, steps=300, seed=0)
    assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
    assert w[:2].sum() > 0.9
    from scipy.stats import spearmanr
    assert spearmanr(-(terms @ w), quality)[0] > 0.95 > spearmanr(-terms.mean(1), quality)[0]


def test_fit_improves_heldout_srcc_for_random_vgg(synthetic48, tmp_path):
    out = tmp_path / "w.pt"
    r = fit.fit_dists("dists_vgg16_r", synthetic48, out, workers=0, test_fraction=0.34,
                      progress=False)
    before, after = r["heldout_before"]["srcc"], r["heldout_after"]["srcc"]
    assert after > before + 0.02, (before, after)
    assert len(r["test_contents"]) == 2 and r["n_train"] + r["n_test"] == 355  # 5 static out
    assert r["heldout_after_within_type"]["srcc"] > 0.95  # monotone groups stay monotone

    # the file loads through create_metric and gives exactly the fitted held-out numbers
    data = torch.load(out, weights_only=True)
    assert {"alpha", "beta"} <= data.keys() and data["backbone"] == "vgg16_r"
    fitted = create_metric("dists_vgg16_r", weights=out)
    held = [i for i, it in enumerate(synthetic48.items)
            if it.group in r["test_contents"] and not it.extra["static"]]
    view = fit.subset(fit._fit_view(synthetic48), held)
    scores = score_items({"d": fitted}, view.items, workers=0, progress=False)["d"]
    st = statistics(scores, view, True, n_boot=0)
    assert st["srcc"] == pytest.approx(after, abs=1e-6)


def test_fit_cli_writes_json_and_rejects_other_metrics(synthetic48, tmp_path, capsys,
                                                      monkeypatch):
    assert main(["fit", "-m", "ssim", "-d", "synthetic", "--out", str(tmp_path / "w.pt")]) == 2
    assert "DISTS-style" in capsys.readouterr().err

    calls = {}

    def fake_fit(metric, dataset, out, **kw):
        calls.update(metric=metric, n=len(dataset), **kw)
        return {"metric": metric, "backbone": "vgg16_r", "dataset": dataset.name,
                "out": str(out), "label": dataset.label, "n_train": 1, "n_test": 1,
                "train_contents": 1, "test_contents": ["a"], "ranking": "x",
                "heldout_before": {"srcc": 0.5, "krcc": 0.4}, "heldout_after":
                {"srcc": 0.6, "krcc": 0.5}, "train_after": {"srcc": 0.7},
                "seconds_features": 1.0, "seconds_fit": 0.1}
    monkeypatch.setattr(fit, "fit_dists", fake_fit)
    monkeypatch.setenv("OPTIQA_CACHE", str(tmp_path / "cache"))
    code = main(["fit", "-q", "-m", "dists_vgg16_r", "-d", "synthetic", "--size", "32",
                 "--out", str(tmp_path / "w.pt"), "--steps", "7", "--json",
                 str(tmp_path / "f.json")])
    assert code == 0 and calls["steps"] == 7 and calls["n"] == 360
    out = capsys.readouterr().out
    assert "held-out SRCC: before 0.5000 -> after 0.6000" in out and "NOT HUMAN OPINION" in out
    assert json.loads((tmp_path / "f.json").read_text())["metric"] == "dists_vgg16_r"
