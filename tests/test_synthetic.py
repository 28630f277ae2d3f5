"""The built-in known-order set: deterministic, cached, labelled, evaluated within groups."""
import numpy as np
import pytest

from optiqa.assess.benchmark import score_items, statistics
from optiqa.data import synthetic
from optiqa.data.distortions import DISTORTIONS, LEVELS
from optiqa.data.io import read_image
from optiqa.data.samples import sample_names
from optiqa.metrics import create_metric

SMALL = dict(size=32, photos=["camera", "coffee"], distortions=["desaturate", "gaussian_blur",
                                                               "jpeg"])


@pytest.fixture
def small(tmp_path):
    return synthetic.load_synthetic(cache=tmp_path, **SMALL)


def test_default_set_covers_all_photos_distortions_levels():
    assert len(sample_names()) * len(DISTORTIONS) * len(LEVELS) == 360
    assert len(DISTORTIONS) >= 10
    v = synthetic.version_string()
    assert v.startswith(f"v{synthetic.GENERATOR_VERSION}-{synthetic.DEFAULT_SIZE}px-")


def test_items_targets_groups_and_label(small):
    assert len(small) == 2 * 3 * 5
    assert small.label == "synthetic known-order set, not human opinion"
    assert "not human opinion" in small.spec.score_meaning
    assert small.evaluation == "within" and small.spec.lower_better
    assert sorted(set(small.scores.tolist())) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert set(small.groups.tolist()) == {"camera", "coffee"}
    assert len(set(small.strata)) == 6
    it = small.items[0]
    assert read_image(it.dist).shape == read_image(it.ref).shape == (3, 32, 32)


def test_generation_is_deterministic(tmp_path):
    a = synthetic.ensure_synthetic(cache=tmp_path / "a", **SMALL)
    b = synthetic.ensure_synthetic(cache=tmp_path / "b", **SMALL)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2 + 30
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_cache_is_reused_and_keyed_by_parameters(tmp_path, monkeypatch):
    first = synthetic.ensure_synthetic(cache=tmp_path, **SMALL)
    monkeypatch.setattr(synthetic, "_generate", lambda *a: pytest.fail("regenerated"))
    assert synthetic.ensure_synthetic(cache=tmp_path, **SMALL) == first
    other = {**SMALL, "size": 40}
    assert synthetic.version_string(**{k: other[k] for k in ("size", "photos", "distortions")}) \
        != first.name
    monkeypatch.setenv(synthetic.CACHE_ENV, str(tmp_path))
    assert synthetic.ensure_synthetic(**SMALL) == first  # $OPTIQA_CACHE is the default root
    assert not list(first.parent.glob(".*"))  # no temporary folder left behind


def test_static_group_is_flagged_and_excluded(small):
    static = {(it.extra["content"], it.extra["distortion"]) for it in small.items
              if it.extra["static"]}
    assert static == {("camera", "desaturate")}  # greyscale photo: nothing to desaturate
    scores = score_items({"psnr": create_metric("psnr")}, small.items, workers=0,
                         progress=False)["psnr"]
    st = statistics(scores, small, metric_lower_better=False, n_boot=50)
    assert st["strata_used"] == 5
    assert st["strata_excluded"] == {synthetic.STATIC_REASON: 1}
    assert st["srcc"] == pytest.approx(1.0)  # psnr falls monotonically with every level
    assert st["sign"] == -1 and st["plcc"] is None


def test_levels_are_monotone_for_mse(small):
    """The premise of the set: within a group, error grows with the level."""
    scores = score_items({"mse": create_metric("mse")}, small.items, workers=0,
                         progress=False)["mse"]
    for stratum in set(small.strata):
        idx = [i for i, s in enumerate(small.strata) if s == stratum]
        if small.items[idx[0]].extra["static"]:
            continue
        levels = small.scores[idx]
        assert np.all(np.diff(scores[idx][np.argsort(levels)]) > 0), stratum


def test_reversed_metric_gets_negative_srcc(small):
    scores = score_items({"psnr": create_metric("psnr")}, small.items, workers=0,
                         progress=False)["psnr"]
    # pretending psnr were lower-better must flip the sign of the agreement
    st = statistics(scores, small, metric_lower_better=True, n_boot=0)
    assert st["srcc"] == pytest.approx(-1.0)
