"""The metric contract of DESIGN.md: creation, validation, orientation of scores and losses."""
import math

import pytest
import torch

import optiqa
from optiqa.core.errors import InputError, UnknownNameError
from optiqa.metrics.base import MetricInfo, check_pair, loss_from_scores
from optiqa.metrics.registry import REGISTRY

EXPECTED_NAMES = {"l1", "mse", "psnr", "psnr_y", "ssim", "ssim_y", "ms_ssim", "cw_ssim", "gmsd",
                  "nlpd", "fsim", "vsi", "vif", "mad", "lpips_alex", "lpips_vgg", "dists"}


def test_registry_lists_every_required_metric():
    names = set(optiqa.list_metrics())
    assert EXPECTED_NAMES <= names
    for bb in optiqa.backbones.names():
        assert f"dists_{bb}" in names


def test_unknown_metric_names_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown metric 'nope'.*psnr"):
        optiqa.create_metric("nope")


def test_created_metric_is_frozen_and_in_eval_mode():
    m = optiqa.create_metric("psnr")
    assert not m.training
    assert all(not p.requires_grad for p in m.parameters())
    assert m.info.name == "psnr" and m.info is REGISTRY["psnr"].info


def _pair(n=2, c=3, h=16, w=16):
    return torch.rand(n, c, h, w), torch.rand(n, c, h, w)


@pytest.mark.parametrize("bad, message", [
    (lambda x, r: (x[0], r[0]), "4-D NCHW"),
    (lambda x, r: (x, r[..., :15]), "shapes differ"),
    (lambda x, r: (x[:, :2], r[:, :2]), "1 or 3 channels"),
    (lambda x, r: (x * float("nan"), r), "NaN"),
    (lambda x, r: (x, r + float("inf")), "infinite"),
    (lambda x, r: (x * 2, r), r"\[0, 1\]"),
    (lambda x, r: (x - 1, r), r"\[0, 1\]"),
    (lambda x, r: ((x * 255).byte(), r), "floating-point"),
    (lambda x, r: (x.numpy(), r), "torch.Tensor"),
])
def test_bad_input_raises_value_error_naming_the_problem(bad, message):
    x, ref = bad(*_pair())
    with pytest.raises(ValueError, match=message):
        check_pair(x, ref)


def test_too_small_for_metric():
    x, ref = _pair(h=8, w=8)
    with pytest.raises(InputError, match="too small.*at least 11x11"):
        check_pair(x, ref, min_size=11)


def test_one_channel_is_expanded_to_rgb():
    x, ref = _pair(c=1)
    x3, ref3 = check_pair(x, ref)
    assert x3.shape[1] == 3 and torch.equal(x3[:, 0], x3[:, 2])
    m = optiqa.create_metric("mse")
    assert torch.allclose(m(x, ref), m(x.expand(-1, 3, -1, -1), ref.expand(-1, 3, -1, -1)))


def test_rounding_overshoot_is_tolerated():
    x, ref = _pair()
    check_pair(x.clamp(0, 1) * (1 + 1e-7), ref)


def _info(lower_better, score_range):
    return MetricInfo(name="t", lower_better=lower_better, differentiable=True,
                      score_range=score_range, approach="t", citation="t")


@pytest.mark.parametrize("lower_better, score_range, scores, expected", [
    (True, (0.0, 1.0), [0.2, 0.4], 0.3),            # DISTS-like: loss = mean score
    (False, (-1.0, 1.0), [0.8, 0.6], 0.3),          # SSIM-like: 1 - mean
    (False, (0.0, math.inf), [30.0, 20.0], -25.0),  # PSNR-like: -mean
    (True, (0.0, math.inf), [1.0, 3.0], 2.0),       # NLPD-like
])
def test_loss_orientation_comes_from_info(lower_better, score_range, scores, expected):
    loss = loss_from_scores(torch.tensor(scores), _info(lower_better, score_range))
    assert loss.item() == pytest.approx(expected)


def test_loss_orders_like_the_score():
    ref = torch.rand(1, 3, 32, 32)
    mild, strong = ref * 0.95, ref * 0.5
    for name in ("psnr", "l1", "mse"):
        m = optiqa.create_metric(name)
        assert m.loss(mild, ref) < m.loss(strong, ref), name


def test_pixel_metrics_known_values():
    ref = torch.zeros(1, 3, 4, 4)
    x = torch.full((1, 3, 4, 4), 0.1)
    assert optiqa.create_metric("l1")(x, ref).item() == pytest.approx(0.1)
    assert optiqa.create_metric("mse")(x, ref).item() == pytest.approx(0.01)
    assert optiqa.create_metric("psnr")(x, ref).item() == pytest.approx(20.0, abs=1e-4)
    # identical images: MSE floor of 1e-10 -> 100 dB
    assert optiqa.create_metric("psnr")(ref, ref).item() == pytest.approx(100.0)


def test_psnr_y_uses_bt601_luma():
    # A pure blue offset changes Y by 24.966/255 * 0.1 only.
    ref = torch.full((1, 3, 4, 4), 0.5)
    x = ref.clone()
    x[:, 2] += 0.1
    dy = 24.966 / 255 * 0.1
    assert optiqa.create_metric("psnr_y")(x, ref).item() == pytest.approx(
        -20 * math.log10(dy), abs=1e-3)


def test_metric_info_entries_are_consistent():
    for name, spec in REGISTRY.items():
        info = spec.info
        lo, hi = info.score_range
        assert lo < hi, name
        assert info.min_size >= 1, name
        assert info.citation, name



@pytest.mark.parametrize("name", ["ssim", "ssim_y", "psnr", "gmsd", "dists_vgg16_r", "mad", "fsim"])
def test_reference_scorer_equals_direct_call(name):
    """One reference, many distortions: preparing the reference once changes nothing."""
    m = optiqa.create_metric(name)
    ref = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 70, 90), 3, 1, 1)
    x = (ref + 0.05 * torch.randn(3, 3, 70, 90)).clamp(0, 1)
    with torch.no_grad():
        direct = m(x, ref.expand_as(x))
        prepared = m.reference_scorer(ref)(x)
    torch.testing.assert_close(prepared, direct, rtol=1e-5, atol=1e-6)


def test_reference_scorer_validates_like_the_metric():
    m = optiqa.create_metric("ssim")
    score = m.reference_scorer(torch.rand(1, 3, 32, 32))
    with pytest.raises(InputError, match="shapes differ"):
        score(torch.rand(2, 3, 32, 31))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        score(torch.rand(2, 3, 32, 32) * 2)
    with pytest.raises(InputError, match="one reference"):
        m.reference_scorer(torch.rand(2, 3, 32, 32))
