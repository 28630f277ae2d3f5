"""Cached constant tensors (filter banks, windows, resize matrices) must work in training after
being first built during evaluation: an inference tensor cannot be saved for backward."""
import pytest
import torch

import optiqa
from optiqa.ops.cache import tensor_cache


def test_an_entry_first_built_in_inference_mode_is_an_ordinary_tensor():
    @tensor_cache(maxsize=2)
    def ones(n):
        return torch.ones(n)

    with torch.inference_mode():
        first = ones(3)
    assert not first.is_inference()
    x = torch.rand(3, requires_grad=True)
    (x * ones(3)).sum().backward()          # the same cached object, now in autograd
    assert torch.equal(x.grad, torch.ones(3))


@pytest.mark.parametrize("name", ["fsim", "vsi", "mad", "ssim", "ms_ssim", "nlpd"])
def test_a_metric_scored_in_inference_mode_then_trains(name):
    """The study assesses and evaluates (inference mode) and trains in one process; this failed
    for FSIM with 'Inference tensors cannot be saved for backward' before tensor_cache."""
    torch.manual_seed(0)
    size = 200 if name == "ms_ssim" else 64
    ref = torch.rand(1, 3, size, size)
    m = optiqa.create_metric(name)
    with torch.inference_mode():
        m(ref.clamp(0.1, 0.9), ref)
    x = ref.mul(0.9).add(0.05).requires_grad_(True)
    m.loss(x, ref).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
