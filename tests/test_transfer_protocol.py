"""Protocol: content splits without leaks, the loss, batches, early stopping, repeat statistics."""
import dataclasses
import statistics as pystats

import numpy as np
import pytest
import torch

from optiqa.data import synthetic
from optiqa.core.errors import ConfigError, InputError
from optiqa.transfer.protocol import (EarlyStopping, batch_order, correlation_loss, evaluate,
                                      quality_targets, repeat_splits, repeat_summary, strata_ids,
                                      summarize_repeats, validation_srcc)

SMALL = dict(size=32, photos=["astronaut", "camera", "coffee", "chelsea", "rocket"],
             distortions=["desaturate", "gaussian_blur", "jpeg"])


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return synthetic.load_synthetic(cache=tmp_path_factory.mktemp("syn"), **SMALL)


@pytest.mark.parametrize("test_fraction", [0.2, 0.4, 0.0])
def test_splits_never_share_a_content(small, test_fraction):
    splits = repeat_splits(small, repeats=6, test_fraction=test_fraction, seed=3)
    groups = small.groups
    static = {i for i, it in enumerate(small.items) if it.extra["static"]}
    assert static  # the greyscale photo's desaturation has no order
    seen_tests = set()
    for s in splits:
        parts = [set(groups[s.train]), set(groups[s.val]), set(groups[s.test])]
        assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
        assert parts[0] and parts[1] and (bool(parts[2]) == (test_fraction > 0))
        every = np.concatenate([s.train, s.val, s.test])
        assert len(every) == len(set(every.tolist())) == len(small) - len(static)
        assert not static & set(every.tolist())
        seen_tests.add(tuple(sorted(parts[2])))
    assert [s.seed for s in splits] == [3, 4, 5, 6, 7, 8]
    if test_fraction:
        assert len(seen_tests) > 1  # repeats differ
    assert [s.test.tolist() for s in repeat_splits(small, 6, test_fraction, seed=3)] == \
        [s.test.tolist() for s in splits]  # and are reproducible


def test_split_errors(small):
    two = dataclasses.replace(small, items=[it for it in small.items
                                            if it.group in ("astronaut", "coffee")])
    with pytest.raises(InputError, match="at least 3"):
        repeat_splits(two, 2)
    assert len(repeat_splits(two, 2, test_fraction=0)) == 2
    with pytest.raises(ConfigError):
        repeat_splits(small, 0)
    with pytest.raises(ConfigError):
        repeat_splits(small, 2, test_fraction=1.0)


def test_targets_and_strata(small):
    y = quality_targets(small)
    np.testing.assert_array_equal(y, -small.scores)  # level: lower = better -> negated
    st = strata_ids(small)
    assert st.shape == (len(small),) and len(np.unique(st)) == len(set(small.strata))


def test_correlation_loss_prefers_the_right_order():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    good, bad = correlation_loss(y * 2, y), correlation_loss(-y, y)
    assert good < 0.5 < 2.0 < bad
    q = torch.zeros(4, requires_grad=True)
    correlation_loss(q + torch.tensor([0.0, 0.1, 0.0, 0.1]), y).backward()
    # gradient descent moves predictions towards the targets' order
    assert q.grad[3] < q.grad[0]


def test_within_strata_loss_ignores_pairs_across_strata():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    strata = torch.tensor([0, 0, 1, 1])
    q1 = torch.tensor([0.0, 1.0, 5.0, 6.0])   # right order everywhere
    q2 = torch.tensor([5.0, 6.0, 0.0, 1.0])   # right inside each stratum, wrong across
    torch.testing.assert_close(correlation_loss(q1, y, strata), correlation_loss(q2, y, strata))
    assert correlation_loss(q1, y, strata) < correlation_loss(-q1, y, strata)
    # without strata the pairs across strata count
    assert correlation_loss(q1, y) + 0.5 < correlation_loss(q2, y)


def test_batch_order_covers_items_and_keeps_strata_whole():
    g = torch.Generator().manual_seed(0)
    batches = batch_order(10, 4, g)
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    strata = np.repeat([0, 1, 2, 3], 5)
    batches = batch_order(20, 8, torch.Generator().manual_seed(1), strata)
    assert sorted(np.concatenate(batches).tolist()) == list(range(20))
    for b in batches:
        for s in set(strata[b].tolist()):
            assert (strata[b] == s).sum() == 5


def test_early_stopping_restores_the_best_epoch():
    m = torch.nn.Linear(1, 1)
    stop = EarlyStopping(patience=2)
    scores = [0.1, 0.5, 0.4, 0.3, 0.9]
    stopped = None
    for epoch, s in enumerate(scores):
        with torch.no_grad():
            m.weight.fill_(epoch)
        if stop.step(epoch, s, m):
            stopped = epoch
            break
    assert stopped == 3 and stop.best_epoch == 1 and stop.best == 0.5
    stop.restore(m)
    assert m.weight.item() == 1.0
    assert EarlyStopping(1).step(0, float("nan"), m) is False  # NaN never counts as best-but-1


def test_repeat_statistics_known_values():
    vals = [0.8, 0.9, 0.7, None, float("nan"), 0.95]
    s = summarize_repeats(vals)
    finite = [0.8, 0.9, 0.7, 0.95]
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(pystats.mean(finite))
    assert s["std"] == pytest.approx(pystats.stdev(finite))  # sample std, ddof=1
    assert s["median"] == pytest.approx(pystats.median(finite))
    assert (s["min"], s["max"]) == (0.7, 0.95)
    assert summarize_repeats([None]) is None
    assert summarize_repeats([0.5])["std"] == 0.0
    r = repeat_summary([{"srcc": 0.5, "plcc": None}, {"srcc": 0.7, "plcc": None}])
    assert r["srcc"]["mean"] == pytest.approx(0.6) and r["plcc"] is None


def test_evaluation_sign_follows_the_dataset(small):
    keep = [i for i, it in enumerate(small.items) if not it.extra["static"]]
    sub = dataclasses.replace(small, items=[small.items[i] for i in keep],
                              strata=[small.strata[i] for i in keep])
    quality = -sub.scores  # a perfect quality predictor: less distortion = better
    assert evaluate(quality, sub)["srcc"] == pytest.approx(1.0)
    assert evaluate(-quality, sub)["srcc"] == pytest.approx(-1.0)
    assert validation_srcc(quality, sub) == pytest.approx(1.0)
    pooled = dataclasses.replace(sub, evaluation="pooled", strata=None)
    rng = np.random.default_rng(0)
    noisy = quality + rng.normal(0, 0.5, quality.size)
    st = evaluate(noisy, pooled)
    assert 0.5 < st["srcc"] < 1 and 0.5 < st["plcc"] < 1
    assert validation_srcc(noisy, pooled) == pytest.approx(st["srcc"])
