"""Caches that cannot go stale: for each cache, change one input that matters and see a
recompute; change nothing and see a hit (issue: "a cached result can be returned for different
data")."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import optiqa
from optiqa.assess.benchmark import assess, metric_fingerprint
from optiqa.core import sources
from optiqa.core.store import ResultsStore
from optiqa.data.distortions import distort
from optiqa.data.io import read_image, write_image
from optiqa.data.iqa import item_signatures
from optiqa.data.iqa import load_database as load_dataset
from optiqa.data.samples import load_sample

PHOTOS = ["astronaut", "coffee", "chelsea"]
KINDS = ["gaussian_blur", "gaussian_noise"]


def _write_meta(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["ref_name", "dist_name", "dmos"], *rows])
    return path


@pytest.fixture
def db(tmp_path):
    """A CSIQ-shaped database of 3 contents x 2 distortions x 5 levels at 48 px."""
    root = tmp_path / "csiq"
    rows = []
    for p in PHOTOS:
        ref = load_sample(p, 48)
        write_image(root / "src_imgs" / f"{p}.png", ref)
        for k, kind in enumerate(KINDS):
            for level in range(1, 6):
                name = f"{p}.{kind}.{level}.png"
                write_image(root / "dst_imgs" / name, distort(ref, kind, level))
                rows.append([f"{p}.png", name, round(0.15 * level + 0.05 * k, 3)])
    _write_meta(root / "CSIQ.csv", rows)
    return root, rows


def _assess(root, store, meta=None, allow_missing=False, metric="psnr"):
    ds = load_dataset("csiq", root=root, meta=meta, allow_missing=allow_missing)
    return assess([metric], ds, workers=0, store=store, n_boot=0, progress=False)[0], ds


def test_assessment_cache_hits_and_recomputes(db, tmp_path):
    root, rows = db
    store = ResultsStore(tmp_path / "study")
    n = len(rows)
    first, _ = _assess(root, store)
    assert first["from_store"] == 0 and not first["summary_from_store"]
    # nothing changed: every score and the summary come from the store
    again, _ = _assess(root, store)
    assert again["from_store"] == n and again["summary_from_store"]
    assert again["srcc"] == first["srcc"]

    # other human scores for the same images (another meta file): per-image scores are still
    # valid (same pixels), the summary is not
    flipped = [[r, d, round(1.0 - s, 3)] for r, d, s in rows]
    other_meta = _write_meta(tmp_path / "other.csv", flipped)
    changed, ds = _assess(root, store, meta=other_meta)
    assert changed["from_store"] == n and not changed["summary_from_store"]
    assert changed["srcc"] == pytest.approx(-first["srcc"])
    # the same scores in a file at another path: same content, same data, a hit
    same_meta = shutil.copy(root / "CSIQ.csv", tmp_path / "copy.csv")
    copy, _ = _assess(root, store, meta=same_meta)
    assert copy["summary_from_store"] and copy["srcc"] == first["srcc"]

    # the pixels of one image change, its size does not: that image is scored again
    victim = root / "dst_imgs" / "coffee.gaussian_blur.3.png"
    write_image(victim, distort(load_sample("coffee", 48), "gaussian_noise", 5))
    repixeled, ds = _assess(root, store)
    assert repixeled["from_store"] == n - 1 and not repixeled["summary_from_store"]
    fresh = assess(["psnr"], ds, workers=0, n_boot=0, progress=False)[0]
    assert repixeled["srcc"] == fresh["srcc"]

    # a subset (an image missing, allowed): another item list, another summary
    victim.unlink()
    subset, ds = _assess(root, store, allow_missing=True)
    assert subset["n"] == n - 1 and not subset["summary_from_store"]
    store.close()


def test_signatures_follow_pixels_not_names_or_times(db, tmp_path):
    root, _ = db
    ds = load_dataset("csiq", root=root)
    sigs, ds_fp = item_signatures(ds.items), ds.fingerprint()
    item = ds.items[0]
    img = read_image(item.dist)
    write_image(item.dist, img)  # rewritten with the same pixels: the same signature
    assert item_signatures([item]) == {item.key: sigs[item.key]}
    write_image(item.dist, img.flip(-1))  # same size and name, other pixels
    assert item_signatures([item]) != {item.key: sigs[item.key]}
    # the dataset's fingerprint (what transfer and zero-shot results are keyed by) follows too
    assert load_dataset("csiq", root=root).fingerprint() != ds_fp


def test_dataset_fingerprint_follows_scores_and_subset(db, tmp_path):
    root, rows = db
    base = load_dataset("csiq", root=root)
    base_fp = base.fingerprint()
    assert load_dataset("csiq", root=root).fingerprint() == base_fp
    rows2 = [list(r) for r in rows]
    rows2[0][2] += 0.01
    other = load_dataset("csiq", root=root, meta=_write_meta(tmp_path / "m.csv", rows2))
    assert other.fingerprint() != base_fp
    assert other.identity["meta_sha256"] != base.identity["meta_sha256"]
    (root / "dst_imgs" / "astronaut.gaussian_noise.1.png").unlink()
    assert load_dataset("csiq", root=root, allow_missing=True).fingerprint() != base_fp


def _fingerprint(name, **kwargs):
    return metric_fingerprint(name, optiqa.create_metric(name, **kwargs), kwargs)


def test_metric_fingerprint_follows_the_source_it_imports(tmp_path, monkeypatch):
    copy = tmp_path / "optiqa"
    shutil.copytree(sources.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = _fingerprint("ssim")
    monkeypatch.setattr(sources, "PACKAGE_ROOT", copy)
    assert _fingerprint("ssim") == original  # an identical copy of the code
    with open(copy / "cli" / "metrics.py", "a") as f:  # code ssim does not import
        f.write("\n# an edit elsewhere\n")
    assert _fingerprint("ssim") == original
    with open(copy / "ops" / "filters.py", "a") as f:  # a filter ssim uses
        f.write("\n# an edit in a filter\n")
    assert _fingerprint("ssim") != original
    assert _fingerprint("psnr") == _fingerprint("psnr")  # psnr does not use the filters


def test_metric_fingerprint_follows_weight_files(tmp_path, monkeypatch):
    from optiqa.models.testing import write_standin_weights

    # a trained alpha/beta file: same path, new content -> a different metric
    channels = optiqa.create_metric("dists_vgg16_r").backbone.channels
    w = tmp_path / "ab.pt"
    torch.save({"alpha": torch.ones(sum(channels)), "beta": torch.ones(sum(channels))}, w)
    first = _fingerprint("dists_vgg16_r", weights=str(w))
    torch.save({"alpha": torch.rand(sum(channels)), "beta": torch.ones(sum(channels))}, w)
    assert _fingerprint("dists_vgg16_r", weights=str(w)) != first
    # the backbone's pretrained weights file ($OPTIQA_WEIGHTS takes precedence)
    for seed in (0, 1):
        folder = write_standin_weights(tmp_path / f"w{seed}", ["effnet_lite0"], seed=seed)
        monkeypatch.setenv("OPTIQA_WEIGHTS", str(folder))
        fp = _fingerprint("dists_effnet_lite0")
        if seed == 0:
            fp0 = fp
            assert _fingerprint("dists_effnet_lite0") == fp0
    assert fp != fp0


def test_synthetic_set_follows_its_code(tmp_path, monkeypatch):
    from optiqa.data import synthetic

    small = {"size": 32, "photos": ["astronaut"], "distortions": ["gaussian_blur"]}
    v = synthetic.version_string(**small)
    copy = tmp_path / "optiqa"
    shutil.copytree(sources.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sources, "PACKAGE_ROOT", copy)
    assert synthetic.version_string(**small) == v
    with open(copy / "data" / "distortions.py", "a") as f:
        f.write("\n# a changed distortion\n")
    assert synthetic.version_string(**small) != v


def test_scores_from_the_store_equal_fresh_scores(db, tmp_path):
    root, _ = db
    store = ResultsStore(tmp_path / "s")
    first, ds = _assess(root, store, metric="ssim")
    cached, _ = _assess(root, store, metric="ssim")
    fresh = assess(["ssim"], ds, workers=0, n_boot=0, progress=False)[0]
    assert cached["from_store"] == len(ds) and np.isclose(cached["srcc"], fresh["srcc"])
    store.close()


def test_files_sha256_answers_remembered_files_and_hashes_the_rest(tmp_path):
    """core.hashing.files_sha256 looks remembered files up itself and hashes only the others
    (in threads past 16): every digest is the file's SHA-256, a rewritten file gets its new
    one, a missing file raises."""
    import hashlib
    import os

    from optiqa.core import hashing

    paths = []
    for i in range(40):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(os.urandom(100 + i))
        paths.append(p)

    def truth():
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert hashing.files_sha256(paths[:20]) == truth()[:20]      # 20 new: the threads
    assert hashing.files_sha256(paths) == truth()                 # 20 remembered, 20 new
    paths[3].write_bytes(b"rewritten, another size")
    assert hashing.files_sha256(paths) == truth()                 # one new state
    assert hashing.files_sha256(paths, workers=1) == truth()
    with pytest.raises(FileNotFoundError):
        hashing.files_sha256(paths + [tmp_path / "missing.bin"])
