"""GMSD (Xue et al. 2014): a closed-form case, a float64 transliteration of the official GMSD.m,
agreement with piq, and the 8-bit rounding of the grey image.

Identity, symmetry, degradation order and batching are checked for every metric in
test_metric_properties.py, official MATLAB values in test_calibration.py, finite loss gradients
in test_metric_losses.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imaging import astronaut_crop, matlab_gray_uint8, noisy, smooth_random
from optiqa.metrics.gmsd import GMSD_C, gmsd


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

    dx = np.array([[1, 0, -1]] * 3) / 3.0
    maps = []
    for img in (matlab_gray_uint8(ref), matlab_gray_uint8(dist)):
        low = conv2_same(img, np.ones((2, 2)) / 4)[::2, ::2]
        maps.append(np.hypot(conv2_same(low, dx), conv2_same(low, dx.T)))
    quality = (2 * maps[0] * maps[1] + 170) / (maps[0] ** 2 + maps[1] ** 2 + 170)
    return float(np.std(quality, ddof=1))


@pytest.mark.parametrize("size", [(64, 64), (37, 50)])
def test_matches_matlab_transliteration(size):
    """Including odd sizes, where conv2's 'same' 2x2 average sees a zero row/column."""
    ref = smooth_random(1, size)
    x = noisy(ref, 0.05)
    expected = _gmsd_matlab(x[0].double().numpy(), ref[0].double().numpy())
    assert gmsd(x, ref).item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_agrees_with_piq_without_rounding():
    """piq's GMSD: same filters, no 8-bit rounding, and std normalised by n instead of n - 1."""
    piq = pytest.importorskip("piq")
    ref = F.avg_pool2d(torch.rand(3, 1, 68, 68), 5, 1)
    x = noisy(ref, 0.05)
    ours = gmsd(x, ref, quantize=False)
    n = 32 * 32
    theirs = piq.gmsd(x, ref, reduction="none") / math.sqrt((n - 1) / n)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_quantize_rounds_to_8bit_levels_only_in_forward():
    ref = astronaut_crop(64)[:, :1]  # 8-bit grey levels
    x = (ref + 0.4 / 255).clamp(0, 1)  # less than half a level: rounds back to ref
    assert gmsd(x, ref).item() == 0.0
    assert gmsd(x, ref, quantize=False).item() > 0.0
    x = noisy(ref, 0.05).requires_grad_(True)
    gmsd(x, ref).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
