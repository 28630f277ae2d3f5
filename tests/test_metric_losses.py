"""Every differentiable metric as a loss: minimised at x = ref, finite gradients everywhere.

Inputs: random, identical, constant-flat, 1-channel and anti-correlated, at the training patch
sizes 64 and 128, in float32 and under bf16 autocast. Metrics whose pretrained backbone weights
are not on this machine are run with fixed-seed stand-in weights (see
``optiqa.models.testing.standin_weights``).
"""
import pytest
import torch

import optiqa
from optiqa.metrics.registry import REGISTRY

DIFFERENTIABLE = [n for n, s in REGISTRY.items() if s.info.differentiable and s.info.kind == "fr"]
# no-reference metrics as losses: tests/test_nr_metrics.py


def _cases(size: int):
    """(name, distorted, reference) batches; the RGB cases share one batch to keep deep
    metrics affordable: per-image scores and per-pixel gradients are still checked one by one.
    Two images per case, except the constant ones: a second copy of a constant image would be
    the same input again, the same numbers computed twice."""
    g = torch.Generator().manual_seed(size)
    a = torch.rand(2, 3, size, size, generator=g)
    b = torch.rand(2, 3, size, size, generator=g)
    smooth = torch.nn.functional.avg_pool2d(a, 5, 1, 2)
    flat = torch.full((1, 3, size, size), 0.5)
    rgb = {
        "random": (b, a),
        "identical": (a.clone(), a),
        "flat": (flat.clone(), flat),
        "flat_vs_other_flat": (torch.full_like(flat, 0.2), flat),
        "anti_correlated": (1 - smooth, smooth),
    }
    names = [n for n, (x, _) in rgb.items() for _ in range(len(x))]
    x = torch.cat([v[0] for v in rgb.values()])
    ref = torch.cat([v[1] for v in rgb.values()])
    return [(names, x, ref), (["one_channel"] * 2, b[:, :1], smooth[:, :1])]


def _make(name):
    try:
        return optiqa.create_metric(name)
    except optiqa.WeightsUnavailable:
        # no pretrained weights here: fixed-seed stand-in files through the same code path
        from optiqa.models.testing import standin_weights
        backbone = REGISTRY[name].info.backbone
        if backbone is None:
            raise
        with standin_weights(backbone):
            return optiqa.create_metric(name)


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
    for case_names, x, ref in _cases(size):
        x = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = metric.loss(x, ref)
        assert loss.ndim == 0, f"{name}: loss must be a scalar"
        if not torch.isfinite(loss):  # name the cases whose scores are not finite
            with torch.no_grad():
                scores = metric(x.detach(), ref).tolist()
            bad = [c for c, v in zip(case_names, scores) if not torch.isfinite(torch.tensor(v))]
            raise AssertionError(f"{name}: loss is {loss.item()}; non-finite scores for {bad}")
        loss.backward()
        assert x.grad is not None, f"{name}: no gradient reached the input"
        finite = torch.isfinite(x.grad).flatten(1).all(1).tolist()
        bad = [c for c, ok in zip(case_names, finite) if not ok]
        assert not bad, f"{name}: non-finite gradient for {bad}"
