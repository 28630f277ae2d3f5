"""GMSD (Xue et al. 2014): identity, symmetry, degradation order, batching, a closed-form case,
a float64 transliteration of the official GMSD.m, and agreement with piq.

Official MATLAB values are checked in test_calibration.py, finite loss gradients in
test_metric_losses.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optiqa
from optiqa.metrics.gmsd import GMSD_C, gmsd

MATLAB_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _astronaut(size=192):
    skdata = pytest.importorskip("skimage.data")
    img = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).float().div(255)
    return img[None, :, 100:100 + size, 150:150 + size].contiguous()


def _noisy(ref, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (ref + sigma * torch.randn(ref.shape, generator=g)).clamp(0, 1)


def _blurred(ref, k):
    return F.avg_pool2d(F.pad(ref, (k // 2,) * 4, mode="replicate"), k, 1)


def test_identity_is_exactly_zero():
    metric = optiqa.create_metric("gmsd")
    ref = _astronaut()
    assert metric(ref.clone(), ref).item() == 0.0
    assert metric.loss(ref.clone(), ref).item() == 0.0


def test_more_noise_or_blur_is_worse():
    metric = optiqa.create_metric("gmsd")
    ref = _astronaut()
    noise = [metric(_noisy(ref, s), ref).item() for s in (0.01, 0.03, 0.08)]
    blur = [metric(_blurred(ref, k), ref).item() for k in (3, 5, 9)]
    assert 0 < noise[0] < noise[1] < noise[2], noise
    assert 0 < blur[0] < blur[1] < blur[2], blur


def test_symmetric():
    ref = _astronaut(128)
    x = _noisy(ref, 0.05)
    torch.testing.assert_close(gmsd(x, ref), gmsd(ref, x), rtol=0, atol=1e-7)


def test_batch_equals_single():
    ref = torch.cat([_astronaut(96), F.avg_pool2d(torch.rand(2, 3, 100, 100), 5, 1)])
    x = _noisy(ref, 0.05)
    batched = gmsd(x, ref)
    single = torch.cat([gmsd(x[i:i + 1], ref[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batched, single, rtol=1e-6, atol=1e-7)


def test_flat_images_closed_form():
    """Two flat images: only the zero-padded border has gradients, known in closed form.

    Downsampled to 8x8, a flat image of value v has Prewitt magnitude v on the edge pixels
    (|h_x| = v, h_y = 0) and (2/3) sqrt(2) v at the corners (two of three rows/columns inside),
    0 inside. GMS is 1 inside, (2 a b k^2 + c) / ((a^2 + b^2) k^2 + c) on the border.
    """
    a, b = 51 / 255, 153 / 255  # exact 8-bit levels, so rounding changes nothing
    x, ref = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)

    def gms(k):
        return (2 * a * b * k * k + GMSD_C) / ((a * a + b * b) * k * k + GMSD_C)

    values = [1.0] * 36 + [gms(1.0)] * 24 + [gms(2 * math.sqrt(2) / 3)] * 4
    expected = float(np.std(values, ddof=1))
    assert gmsd(x, ref).item() == pytest.approx(expected, rel=1e-5)


def _gmsd_matlab(dist: np.ndarray, ref: np.ndarray) -> float:
    """GMSD.m transliterated to numpy float64 (conv2 'same' = full convolution, central crop)."""
    from scipy.signal import convolve2d

    def conv2_same(img, k):
        full = convolve2d(img, k, mode="full")
        r, c = k.shape[0] // 2, k.shape[1] // 2
        return full[r:r + img.shape[0], c:c + img.shape[1]]

    def gray(rgb):  # rgb2gray on uint8: rounded to uint8
        return np.floor(np.tensordot(MATLAB_GRAY, rgb * 255.0, axes=(0, 0)) + 0.5)

    dx = np.array([[1, 0, -1]] * 3) / 3.0
    maps = []
    for img in (gray(ref), gray(dist)):
        low = conv2_same(img, np.ones((2, 2)) / 4)[::2, ::2]
        maps.append(np.hypot(conv2_same(low, dx), conv2_same(low, dx.T)))
    quality = (2 * maps[0] * maps[1] + 170) / (maps[0] ** 2 + maps[1] ** 2 + 170)
    return float(np.std(quality, ddof=1))


@pytest.mark.parametrize("size", [(64, 64), (37, 50)])
def test_matches_matlab_transliteration(size):
    """Including odd sizes, where conv2's 'same' 2x2 average sees a zero row/column."""
    g = torch.Generator().manual_seed(1)
    ref = F.avg_pool2d(torch.rand(1, 3, size[0] + 2, size[1] + 2, generator=g), 3, 1)
    x = _noisy(ref, 0.05)
    expected = _gmsd_matlab(x[0].double().numpy(), ref[0].double().numpy())
    assert gmsd(x, ref).item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_agrees_with_piq_without_rounding():
    """piq's GMSD: same filters, no 8-bit rounding, and std normalised by n instead of n - 1."""
    piq = pytest.importorskip("piq")
    ref = F.avg_pool2d(torch.rand(3, 1, 68, 68), 5, 1)
    x = _noisy(ref, 0.05)
    ours = gmsd(x, ref, quantize=False)
    n = 32 * 32
    theirs = piq.gmsd(x, ref, reduction="none") / math.sqrt((n - 1) / n)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_quantize_rounds_to_8bit_levels_only_in_forward():
    ref = _astronaut(64)[:, :1]  # 8-bit grey levels
    x = (ref + 0.4 / 255).clamp(0, 1)  # less than half a level: rounds back to ref
    assert gmsd(x, ref).item() == 0.0
    assert gmsd(x, ref, quantize=False).item() > 0.0
    x = _noisy(ref, 0.05).requires_grad_(True)
    gmsd(x, ref).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
