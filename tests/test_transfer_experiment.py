"""Transfer experiments: cached features, repeats, cross-database, finetune, the store."""
import csv
import shutil

import numpy as np
import pytest
import torch

from optiqa import backbones
from optiqa.data import synthetic
from optiqa.data.io import read_image
from optiqa.data.iqa import load_database as load_dataset
from optiqa.core.errors import ConfigError, InputError
from optiqa.core.store import ResultsStore
from optiqa.transfer import experiment, fitting
from optiqa.transfer.experiment import TransferOptions, run_transfer
from optiqa.transfer.features import extract, image_batches
from optiqa.transfer.fitting import TrainSettings
from optiqa.transfer.models import create_model

SMALL = dict(size=32, photos=["astronaut", "coffee", "chelsea", "rocket"],
             distortions=["gaussian_blur", "jpeg"])
FAST = dict(epochs=3, patience=2, batch_size=16, eval_batch_size=16)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return synthetic.load_synthetic(cache=tmp_path_factory.mktemp("syn"), **SMALL)


@pytest.fixture(scope="module")
def koniq_like(tmp_path_factory, small):
    """An NR database in KonIQ-10k's format: single images with a MOS (higher = better)."""
    root = tmp_path_factory.mktemp("koniq")
    rng = np.random.default_rng(0)
    with open(root / "KonIQ10k.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["img_name", "mos"])
        for it in small.items:
            shutil.copy(it.dist, root / it.dist.name)
            w.writerow([it.dist.name, 90 - 15 * it.score + rng.normal(0, 5)])
    return load_dataset("koniq10k", root=root)


def _opts(**kw):
    base = dict(backbone="effnet_lite0", init="imagenet", kind="nr", mode="frozen", repeats=2)
    base.update(kw)
    return TransferOptions(**base, train=TrainSettings(**FAST))


@pytest.mark.parametrize("kind", ["nr", "fr"])
def test_cached_descriptors_equal_the_models_own(small, kind):
    model = create_model(kind, backbones.create("effnet_lite0")).eval()
    items = small.items[:12]
    d = extract(model, items, batch_size=5)
    with torch.no_grad():
        for i in (0, 7, 11):
            it = items[i]
            x, ref = read_image(it.dist)[None], read_image(it.ref)[None]
            torch.testing.assert_close(d.values[i], model.descriptor(x, ref)[0],
                                       rtol=1e-4, atol=1e-5)
    refs = len({it.ref for it in items})
    assert d.images == len(items) + (refs if kind == "fr" else 0)
    assert d.images_per_second > 0


def test_frozen_mode_extracts_each_image_once(small, koniq_like, monkeypatch):
    calls, forwards = [], []
    real_extract = experiment.extract

    def counting_extract(model, items, *a, **k):
        calls.append(len(items))
        return real_extract(model, items, *a, **k)

    real_forward = backbones.Backbone.forward
    monkeypatch.setattr(experiment, "extract", counting_extract)
    monkeypatch.setattr(backbones.Backbone, "forward",
                        lambda self, x: forwards.append(x.shape[0]) or real_forward(self, x))
    r = run_transfer(_opts(repeats=3), small, cross=[koniq_like])
    assert calls == [len(small), len(koniq_like)]  # once per dataset, for 3 repeats x epochs
    assert sum(forwards) == len(small) + len(koniq_like)
    assert len(forwards) == len(image_batches([it.dist for it in small.items], 16)) + \
        len(image_batches([it.dist for it in koniq_like.items], 16))
    assert r["features"]["images"] == len(small) + len(koniq_like)
    assert all(p["epochs_run"] >= 1 for p in r["per_repeat"])


def test_cached_and_recomputed_training_give_the_same_model(small):
    a = run_transfer(_opts(repeats=1), small)
    b = run_transfer(_opts(repeats=1, cache=False), small)
    pa, pb = a["per_repeat"][0], b["per_repeat"][0]
    assert pa["best_epoch"] == pb["best_epoch"]
    assert pa["val_srcc"] == pytest.approx(pb["val_srcc"], abs=1e-6)
    assert pa["test"]["srcc"] == pytest.approx(pb["test"]["srcc"], abs=1e-6)
    assert a["key"] == b["key"]  # caching is a speed setting, not part of the result


def test_repeats_summary_and_cross_database(small, koniq_like):
    r = run_transfer(_opts(repeats=3), small, cross=[koniq_like])
    per = r["per_repeat"]
    assert [p["seed"] for p in per] == [0, 1, 2]
    srcc = [p["test"]["srcc"] for p in per]
    assert r["test"]["srcc"]["n"] == 3
    assert r["test"]["srcc"]["mean"] == pytest.approx(np.mean(srcc))
    assert r["test"]["srcc"]["std"] == pytest.approx(np.std(srcc, ddof=1))
    assert r["test"]["srcc"]["median"] == pytest.approx(np.median(srcc))
    assert r["test"]["plcc"] is None  # within-stratum evaluation: no PLCC
    cross = r["cross"]["koniq10k"]
    assert cross["srcc"]["n"] == 3 and cross["plcc"]["n"] == 3 and cross["evaluation"] == "pooled"
    assert cross["srcc"]["mean"] == pytest.approx(np.mean([p["cross"]["koniq10k"]["srcc"]
                                                           for p in per]))
    for p in per:
        assert p["n_train"] + p["n_val"] + p["n_test"] == len(small)
        assert set(p["test_contents"]) <= set(SMALL["photos"])


def test_imagenet_probe_learns_the_known_order(tmp_path):
    ds = synthetic.load_synthetic(cache=tmp_path, size=64,
                                  photos=["astronaut", "coffee", "chelsea", "rocket", "motorcycle"],
                                  distortions=["gaussian_blur", "jpeg", "gaussian_noise"])
    opts = _opts(repeats=3)
    opts.train = TrainSettings(epochs=30, patience=10, batch_size=16, eval_batch_size=16)
    r = run_transfer(opts, ds)
    assert r["test"]["srcc"]["mean"] > 0.6, r["per_repeat"]


def test_nr_database_trains_pooled_and_fr_model_refuses_it(koniq_like):
    r = run_transfer(_opts(repeats=2), koniq_like)
    assert r["evaluation"] == "pooled" and r["test"]["plcc"]["n"] == 2
    with pytest.raises(InputError, match="no reference images"):
        run_transfer(_opts(kind="fr"), koniq_like)


def test_no_test_part_needs_cross(small, koniq_like):
    with pytest.raises(ConfigError, match="cross-database test sets"):
        run_transfer(_opts(test_fraction=0.0), small)
    r = run_transfer(_opts(test_fraction=0.0, repeats=1), small, cross=[koniq_like])
    assert r["test"] is None and r["per_repeat"][0]["n_test"] == 0
    assert r["cross"]["koniq10k"]["srcc"]["n"] == 1


@pytest.mark.parametrize("kind", ["nr", "fr"])
def test_finetune_trains_the_backbone_and_validates_only_on_validation(small, kind, monkeypatch):
    seen = []
    real = fitting.validation_srcc
    monkeypatch.setattr(fitting, "validation_srcc",
                        lambda pred, ds: seen.append({it.key for it in ds.items}) or real(pred, ds))
    trained = []
    real_finetune = experiment.finetune

    def keep(model, *a, **k):
        out = real_finetune(model, *a, **k)
        trained.append(model)
        return out

    monkeypatch.setattr(experiment, "finetune", keep)
    opts = _opts(kind=kind, mode="finetune", repeats=1, init="random")
    opts.train = TrainSettings(epochs=2, patience=2, batch_size=10, crop=24, eval_batch_size=16)
    with pytest.raises(ConfigError, match="below backbone 'effnet_lite0'"):
        run_transfer(opts, small)
    opts.train.crop = 32
    r = run_transfer(opts, small)
    p = r["per_repeat"][0]
    assert r["head"] == "mlp" and p["epochs_run"] == 2 and np.isfinite(p["test"]["srcc"])
    test_keys = {small.items[i].key for i in range(len(small))
                 if small.items[i].group in p["test_contents"]}
    assert seen and all(not (s & test_keys) for s in seen)
    fresh, _ = experiment.create_backbone("effnet_lite0", "random", seed=0)
    w = "trunk.conv_stem.weight"
    assert not torch.equal(trained[0].backbone.state_dict()[w], fresh.state_dict()[w])


def test_results_go_into_the_store_and_are_reused(small, tmp_path):
    store = ResultsStore(tmp_path)
    r = run_transfer(_opts(repeats=1), small, store=store)
    assert not r["from_store"]
    assert store.get_result("transfer", r["key"])["test"] == r["test"]
    assert store.is_complete(f"transfer/{r['key']}")
    again = run_transfer(_opts(repeats=1), small, store=store)
    assert again["from_store"] and again["test"] == r["test"]
    forced = run_transfer(_opts(repeats=1), small, store=store, force=True)
    assert not forced["from_store"]
    other = run_transfer(_opts(repeats=1, head="mlp"), small, store=store)
    assert other["key"] != r["key"] and len(store.results("transfer")) == 2
    store.close()


def test_finetune_crops_move_per_epoch_and_match_the_reference(small):
    data = fitting.CropItems(small.items[:3], crop=20, fr=True, seed=0)
    x0, r0, _ = data[1]
    assert x0.shape == r0.shape == (3, 20, 20)
    full_x, full_r = read_image(small.items[1].dist), read_image(small.items[1].ref)
    spots = set()
    for epoch in range(6):
        data.epoch = epoch
        x, r, _ = data[1]
        hits = [(t, s) for t in range(13) for s in range(13)
                if torch.equal(full_x[:, t:t + 20, s:s + 20], x)]
        assert hits and any(torch.equal(full_r[:, t:t + 20, s:s + 20], r) for t, s in hits)
        spots.add(hits[0])
    assert len(spots) > 1


def test_fr_linear_probe_without_cache_matches_the_cached_one(small):
    a = run_transfer(_opts(kind="fr", repeats=1), small)
    b = run_transfer(_opts(kind="fr", repeats=1, cache=False), small)
    assert a["head"] == "linear"
    assert a["per_repeat"][0]["test"]["srcc"] == pytest.approx(b["per_repeat"][0]["test"]["srcc"],
                                                               abs=1e-6)
