"""Scheduling of pairs (balanced, adaptive, repeats), crop placement and the image manifest."""
from __future__ import annotations

import json
import math
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from judge_helpers import make_study
from optiqa.core.errors import InputError
from optiqa.judge.crops import Crop, detail_crops
from optiqa.judge.fit import bradley_terry
from optiqa.judge.manifest import load_manifest
from optiqa.judge.schedule import (SCHEDULE_ALPHA, ScheduleOptions, choose_pair, plan_repeat,
                                   plan_trial, rng_for)
from optiqa.judge.store import Trial


def simulate_schedule(true: dict, n_votes: int, seed: int = 0):
    """Issue trials one by one and answer them from the Bradley–Terry model."""
    runs = list(true)
    pairs = [tuple(sorted((a, b))) for i, a in enumerate(runs) for b in runs[i + 1:]]
    crops = [Crop("img", k, (k * 8, 0, 8, 8)) for k in range(3)]
    crops_by_pair = {p: crops for p in pairs}
    pair_counts, crop_counts, wins = Counter(), Counter(), Counter()
    sides = Counter()
    rng_votes = np.random.default_rng(seed)
    for n in range(n_votes):
        scores = bradley_terry(runs, dict(wins), SCHEDULE_ALPHA)
        plan = plan_trial(pairs, crops_by_pair, pair_counts, crop_counts, scores, set(),
                          rng_for(seed, "sim", n))
        pair = tuple(sorted((plan.run_left, plan.run_right)))
        pair_counts[pair] += 1
        crop_counts[(pair, crops[plan.crop].key)] += 1
        sides[plan.run_left] += 1
        a, b = pair
        p = 1 / (1 + math.exp(-(true[a] - true[b])))
        wins[(a, b) if rng_votes.random() < p else (b, a)] += 1
    return pairs, pair_counts, crop_counts, sides


def test_every_run_is_compared_about_equally_often():
    true = {"a": -1.5, "b": -0.2, "c": 0.0, "d": 0.1, "e": 1.5, "f": 3.0}
    pairs, pair_counts, crop_counts, sides = simulate_schedule(true, 600)
    per_run = Counter()
    for (a, b), n in pair_counts.items():
        per_run[a] += n
        per_run[b] += n
    assert sum(per_run.values()) == 1200
    # within max(2, 5 % of the mean) + 1 by construction; in practice much closer
    assert max(per_run.values()) - min(per_run.values()) <= 0.05 * 200 + 1, per_run
    assert all(pair_counts[p] >= 10 for p in pairs)          # every pair keeps being sampled
    for p in pairs:                                           # crops of a pair used evenly
        counts = [crop_counts[(p, k)] for k in {key for (q, key) in crop_counts if q == p}]
        assert max(counts) - min(counts) <= 1
    assert all(60 <= sides[r] <= 140 for r in true)           # left/right at random


def test_votes_go_where_the_ranking_is_uncertain():
    """Close runs (b, c, d within 0.3) get far more votes than distant ones (a vs f: 4.5)."""
    true = {"a": -1.5, "b": -0.2, "c": 0.0, "d": 0.1, "e": 1.5, "f": 3.0}
    _, pair_counts, _, _ = simulate_schedule(true, 600)
    close = np.mean([pair_counts[p] for p in [("b", "c"), ("c", "d"), ("b", "d")]])
    far = pair_counts[("a", "f")]
    assert close > 2 * far, (close, far)


def test_without_votes_the_partner_is_the_least_compared():
    pairs = [("a", "b"), ("a", "c"), ("b", "c")]
    counts = {("a", "b"): 3, ("a", "c"): 1, ("b", "c"): 3}
    # run counts: a 4, b 6, c 4 -> anchor a or c; the pair (a, c) has the fewest votes
    for seq in range(10):
        assert choose_pair(pairs, counts, {}, rng_for(0, "x", seq)) == ("a", "c")


def trial(seq, repeat_of=None, left="a", right="b"):
    return Trial(f"t{seq:06d}", "ann", seq, "img", 0, (0, 0, 8, 8), left, right, repeat_of, 0.0)


def test_repeats_swap_sides_and_respect_gap_and_limit():
    options = ScheduleOptions(repeat_every=10, max_repeats=2, repeat_min_gap=5)
    history = [(trial(s), True) for s in range(1, 10)]
    assert plan_repeat(history, 9, options, rng_for(0, "ann", 9)) is None   # not a 10th trial
    plan = plan_repeat(history, 10, options, rng_for(0, "ann", 10))
    assert plan.repeat_of in {f"t{s:06d}" for s in range(1, 6)}           # at least 5 trials old
    assert (plan.run_left, plan.run_right) == ("b", "a")
    history += [(trial(10, repeat_of=plan.repeat_of, left="b", right="a"), True)]
    history += [(trial(s), True) for s in range(11, 20)]
    second = plan_repeat(history, 20, options, rng_for(0, "ann", 20))
    assert second.repeat_of not in {plan.repeat_of, "t000010"}            # no repeat twice
    history += [(trial(20, repeat_of=second.repeat_of), True)]
    assert plan_repeat(history, 30, options, rng_for(0, "ann", 30)) is None  # limit reached
    unanswered = [(trial(s), False) for s in range(1, 10)]
    assert plan_repeat(unanswered, 10, options, rng_for(0, "ann", 10)) is None


def test_crops_land_on_detail_and_do_not_overlap():
    rng = np.random.default_rng(0)
    gray = np.zeros((100, 200))
    gray[20:60, 120:180] = rng.uniform(0, 255, (40, 60))   # texture in one corner, flat elsewhere
    boxes = detail_crops(gray, 32, 3)
    assert len(boxes) == 3
    x, y, w, h = boxes[0]
    assert (w, h) == (32, 32) and 120 <= x <= 148 and 20 <= y <= 28      # inside the texture
    for i, a in enumerate(boxes):
        assert 0 <= a[0] <= 200 - 32 and 0 <= a[1] <= 100 - 32
        for b in boxes[i + 1:]:
            assert (a[0] + 32 <= b[0] or b[0] + 32 <= a[0] or a[1] + 32 <= b[1]
                    or b[1] + 32 <= a[1])
    assert detail_crops(gray, 32, 3) == boxes                          # deterministic
    assert detail_crops(np.zeros((20, 50)), 32, 3)[0] == (0, 0, 32, 20)  # clipped to the image


def test_manifest_paths_must_stay_inside_the_study(tmp_path):
    study = make_study(tmp_path / "s")
    images = load_manifest(study)
    assert list(images.runs) == ["l1__none", "dists__patch", "lpips__unet", "bicubic"]
    assert images.comparable_images() == ["Set5/baby", "Set5/bird"]
    path = study / "images" / "manifest.json"
    good = json.loads(path.read_text())
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", study / "images" / "link.png")
    for bad, message in [("../secret.png", "outside the study folder"),
                         (str(tmp_path / "secret.png"), "must be relative"),
                         ("images/link.png", "outside the study folder"),
                         ("images/none.png", "missing file")]:
        data = json.loads(json.dumps(good))
        data["runs"]["bicubic"]["images"]["Set5/baby"] = bad
        path.write_text(json.dumps(data))
        with pytest.raises(InputError, match=message):
            load_manifest(study)
    path.write_text(json.dumps({**good, "version": 2}))
    with pytest.raises(InputError, match="version"):
        load_manifest(study)
    path.write_text(json.dumps(good))
    Image.new("RGB", (10, 10)).save(study / good["runs"]["bicubic"]["images"]["Set5/baby"])
    with pytest.raises(InputError, match="different sizes"):
        load_manifest(study)
