"""NLPD (Laparra et al. 2016): the Laplacian pyramid, a closed-form case, a float64
transliteration of the official NLP_dist.m, and the smallest size.

Identity, symmetry, degradation order and batching are checked for every metric in
test_metric_properties.py, official MATLAB values in test_calibration.py, finite loss gradients
in test_metric_losses.py.
"""
import math

import numpy as np
import pytest
import torch

import optiqa
from imaging import matlab_gray_uint8, noisy, smooth_random
from optiqa.core.errors import InputError
from optiqa.metrics import nlpd as N


@pytest.mark.parametrize("size", [(64, 64), (45, 61), (17, 17)])
def test_laplacian_pyramid_reconstructs_the_image(size):
    img = torch.rand(2, 1, *size, dtype=torch.float64)
    bands = N.laplacian_pyramid(img)
    assert len(bands) == 6 and bands[-1].shape[-2:] == tuple(math.ceil(s / 32) for s in size)
    rebuilt = bands[-1]
    for band in reversed(bands[:-1]):
        rebuilt = band + N._expand(rebuilt, band.shape[-2:])
    torch.testing.assert_close(rebuilt, img, rtol=0, atol=1e-12)


def test_flat_images_closed_form():
    """Flat images: all Laplacian bands vanish but the 2x2 low-pass residual (64 px / 32).

    There the last divisive normalisation ``P_6`` has taps 0.2215 (right neighbour, after
    conv2's flip) and 0.0717 (left neighbour), so with zero padding the left column is divided
    by ``0.2782 + 0.2215 v`` and the right one by ``0.2782 + 0.0717 v``.
    """
    a, b = 51 / 255, 153 / 255  # exact 8-bit levels
    x, ref = torch.full((1, 3, 64, 64), a), torch.full((1, 3, 64, 64), b)
    bands = N.laplacian_pyramid(torch.full((1, 1, 64, 64), a))
    assert max(band.abs().max().item() for band in bands[:-1]) < 1e-6

    def z(v, tap):
        return v / (0.2782 + tap * v)

    rms = math.sqrt(((z(a, 0.2215) - z(b, 0.2215)) ** 2 + (z(a, 0.0717) - z(b, 0.0717)) ** 2) / 2)
    assert N.nlpd(x, ref).item() == pytest.approx(rms / 6, rel=1e-5)


def _nlpd_matlab(dist: np.ndarray, ref: np.ndarray) -> float:
    """NLP_dist.m transliterated to numpy float64 (imfilter 'symmetric' = ndimage 'reflect')."""
    from scipy.ndimage import correlate
    from scipy.signal import convolve2d

    f = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
    filt = np.outer(f, f)
    dn = [np.zeros((5, 5)) for _ in range(6)]
    for k, inner in enumerate(N._DN_INNER):
        dn[k][1:4, 1:4] = inner
    dn[0][2, 4] = 0.0072

    def nlp(img):
        out, j = [], img
        for _ in range(5):
            low = correlate(j, filt, mode="reflect")[::2, ::2]
            odd = (2 * low.shape[0] - j.shape[0], 2 * low.shape[1] - j.shape[1])
            padded = np.pad(low, 1, mode="edge")
            up = np.zeros((2 * padded.shape[0], 2 * padded.shape[1]))
            up[::2, ::2] = 4 * padded
            up = correlate(up, filt, mode="constant")
            out.append(j - up[2:up.shape[0] - 2 - odd[0], 2:up.shape[1] - 2 - odd[1]])
            j = low
        out.append(j)
        return [b / (s + convolve2d(np.abs(b), p, mode="same"))
                for b, s, p in zip(out, N._DN_SIGMAS, dn)]

    return float(np.mean([np.sqrt(np.mean((p - q) ** 2))
                          for p, q in zip(nlp(matlab_gray_uint8(ref) / 255),
                                          nlp(matlab_gray_uint8(dist) / 255))]))


@pytest.mark.parametrize("size", [(64, 64), (45, 61)])
def test_matches_matlab_transliteration(size):
    ref = smooth_random(1, size)
    x = noisy(ref, 0.05)
    expected = _nlpd_matlab(x[0].double().numpy(), ref[0].double().numpy())
    assert N.nlpd(x, ref).item() == pytest.approx(expected, rel=1e-5)


def test_smallest_size():
    metric = optiqa.create_metric("nlpd")
    assert metric.min_size == 17
    x, ref = torch.rand(1, 3, 17, 17), torch.rand(1, 3, 17, 17)
    assert torch.isfinite(metric(x, ref)).all()
    with pytest.raises(InputError, match="at least 17x17"):
        metric(x[..., :16, :], ref[..., :16, :])
