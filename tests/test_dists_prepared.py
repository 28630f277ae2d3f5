"""DISTS against a prepared reference (`optiqa assess`, the evaluate stage) gives the same scores,
bit for bit, as the direct formula on the same features; the reference's moments are computed
once and the reductions run on contiguous copies (optiqa.metrics.deep.dists_from_prepared)."""
import pytest
import torch

from optiqa.metrics import create_metric
from optiqa.metrics.deep import (contiguous_maps, dists_from_features, dists_from_prepared,
                                 prepare_dists_reference)


@pytest.fixture(scope="module")
def metric():
    return create_metric("dists_vgg16_r")


def _images(n, h=72, w=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth reference, distortions of several strengths (one equal to the reference)
    ref = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 3, 1, 1)
    noise = torch.randn(n, 3, h, w, generator=g) * torch.linspace(0, 0.2, n).view(n, 1, 1, 1)
    return (ref + noise).clamp(0, 1), ref


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [1, 3])
def test_prepared_statistics_equal_the_formula_bit_for_bit(metric, n, threads):
    x, ref = _images(n)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            fx, fr = metric.features(x), metric.features(ref)
            assert fx[1].is_contiguous(memory_format=torch.channels_last)  # what assess feeds
            direct = dists_from_features(fx, [f.expand(n, *f.shape[1:]) for f in fr],
                                         metric.alpha, metric.beta)
            prepared = dists_from_prepared(fx, prepare_dists_reference(fr), metric.alpha,
                                           metric.beta)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(prepared, direct)
    # the undistorted image is 0 up to the convolutions' rounding (its features come from a
    # batch of n, the reference's from a batch of 1: oneDNN's results depend on the batch)
    assert prepared[0].abs() < 1e-9 and (prepared[1:] > 1e-3).all()


def test_reference_scorer_gives_the_scores_of_the_unprepared_statistics(metric):
    """What `optiqa assess` computes, one distorted image at a time against the prepared
    reference, is exactly what the statistics give on the expanded reference features (the path
    before the reference's moments were kept), and the kept moments are the formula's."""
    x, ref = _images(4, seed=1)
    with torch.inference_mode():
        score = metric.reference_scorer(ref)
        fr = metric.features(ref)
        for i in range(4):
            xi = x[i:i + 1]
            unprepared = dists_from_features(metric.features(xi), [f.expand(1, *f.shape[1:])
                                                                  for f in fr],
                                             metric.alpha, metric.beta)
            assert torch.equal(score(xi), unprepared)
        maps, moments = prepare_dists_reference(fr)
        for f, g, (var, mean) in zip(fr, maps, moments):
            v, m = torch.var_mean(f, dim=(2, 3), correction=0)
            assert torch.equal(var, v) and torch.equal(mean, m)
            assert g.is_contiguous() and torch.equal(g, f)
        # and the whole batch at once, as on a GPU
        whole = dists_from_features(metric.features(x), [f.expand(4, *f.shape[1:]) for f in fr],
                                    metric.alpha, metric.beta)
        assert torch.equal(score(x), whole)


def test_prepared_reference_keeps_gradients(metric):
    """The prepared path stays differentiable in the distorted image (a reference_scorer used
    as a loss)."""
    x, ref = _images(2, h=40, w=48, seed=2)
    x = x.requires_grad_()
    score = metric.reference_scorer(ref)
    score(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 64, 24, 40), (3, 5, 7, 9), (2, 512, 1, 1), (2, 3, 1, 30)])
def test_contiguous_maps_copies_channels_last_exactly(shape):
    x = torch.randn(shape)
    # contiguous, channels-last, and another layout (H and W swapped in memory)
    for layout in (x, x.contiguous(memory_format=torch.channels_last),
                   x.transpose(2, 3).contiguous().transpose(2, 3)):
        y = contiguous_maps(layout)
        assert y.is_contiguous() and y.shape == x.shape and torch.equal(y, x)
