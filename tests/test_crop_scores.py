"""Evaluators scored on exactly the crops the raters saw (optiqa.judge.crop_scores)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from judge_helpers import RUNS, make_study
from PIL import Image

import optiqa
from optiqa.judge.crop_scores import score_crops, voted_crops
from optiqa.judge.manifest import load_manifest
from optiqa.judge.store import Vote


def _vote(i, image, box, a="l1__none", b="bicubic"):
    return Vote(f"v{i}", "r", image, 0, box, a, b, "left", a, b, 500.0, 0.0, None)


def _crop(path, box):
    x, y, w, h = box
    a = np.asarray(Image.open(path).convert("RGB"))[y:y + h, x:x + w].copy()
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def test_scores_are_those_of_the_judged_crops(tmp_path):
    study = make_study(tmp_path, size=64)
    images = load_manifest(study)
    boxes = [("Set5/baby", (8, 16, 32, 32)), ("Set5/bird", (0, 0, 40, 40))]
    votes = [_vote(0, *boxes[0]), _vote(1, *boxes[1]), _vote(2, *boxes[0])]
    crops = voted_crops(votes)
    assert crops == sorted(boxes)
    got = score_crops(images, crops, ["psnr_y", "niqe"])
    psnr = optiqa.create_metric("psnr_y")
    for run in RUNS:
        expected = [float(psnr(_crop(images.runs[run].images[i], b),
                               _crop(images.references[i], b))) for i, b in crops]
        assert got.scores[run]["psnr_y"] == pytest.approx(expected, rel=1e-5)
        assert got.mean(run, "psnr_y") == pytest.approx(np.mean(expected), rel=1e-5)
        # and not the whole image's score
        whole = float(psnr(_crop(images.runs[run].images["Set5/bird"], (0, 0, 64, 64)),
                           _crop(images.references["Set5/bird"], (0, 0, 64, 64))))
        assert got.scores[run]["psnr_y"][1] != pytest.approx(whole, rel=1e-4)
    # NIQE needs larger inputs than a 32-px crop: said, not scored on something else
    assert "niqe" in got.unscored and "niqe" not in got.scores["bicubic"]
