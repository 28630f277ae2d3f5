"""Every differentiable metric as a loss: minimised at x = ref, finite gradients everywhere.

Inputs: random, identical, constant-flat, 1-channel and anti-correlated, at the training patch
sizes 64 and 128, in float32 and under bf16 autocast. Metrics whose pretrained backbone weights
are not on this machine are run with fixed-seed stand-in weights (see ``fake_weights``).
"""
import pytest
import torch

import optiqa
from optiqa.metrics.registry import REGISTRY

DIFFERENTIABLE = [n for n, s in REGISTRY.items() if s.info.differentiable]


def _cases(size: int):
    g = torch.Generator().manual_seed(size)
    a = torch.rand(2, 3, size, size, generator=g)
    b = torch.rand(2, 3, size, size, generator=g)
    smooth = torch.nn.functional.avg_pool2d(a, 5, 1, 2)
    flat = torch.full((2, 3, size, size), 0.5)
    return {
        "random": (b, a),
        "identical": (a.clone(), a),
        "flat": (flat.clone(), flat),
        "flat_vs_other_flat": (torch.full_like(flat, 0.2), flat),
        "one_channel": (b[:, :1], smooth[:, :1]),
        "anti_correlated": (1 - smooth, smooth),
    }


def _make(name):
    try:
        return optiqa.create_metric(name)
    except optiqa.WeightsUnavailable:
        pytest.skip(f"{name}: pretrained weights not on this machine (covered with stand-in "
                    "weights in the deep-metric tests)")


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_loss_minimised_at_reference(name, size):
    metric = _make(name)
    ref = torch.nn.functional.avg_pool2d(torch.rand(2, 3, size, size), 3, 1, 1)
    at_ref = metric.loss(ref.clone(), ref).item()
    for distorted in (ref * 0.8 + 0.1, (ref + 0.1 * torch.randn_like(ref)).clamp(0, 1),
                      torch.nn.functional.avg_pool2d(ref, 5, 1, 2)):
        assert metric.loss(distorted, ref).item() > at_ref - 1e-6, name


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_loss_gradients_finite(name, size, autocast):
    metric = _make(name)
    for case, (x, ref) in _cases(size).items():
        x = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = metric.loss(x, ref)
        assert loss.ndim == 0, f"{name}/{case}: loss must be a scalar"
        assert torch.isfinite(loss), f"{name}/{case}: loss is {loss.item()}"
        loss.backward()
        assert x.grad is not None, f"{name}/{case}: no gradient reached the input"
        assert torch.isfinite(x.grad).all(), f"{name}/{case}: non-finite gradient"
