"""NLPD (Laparra et al. 2016): identity, symmetry, degradation order, batching, the Laplacian
pyramid, a closed-form case, and a float64 transliteration of the official NLP_dist.m.

Official MATLAB values are checked in test_calibration.py, finite loss gradients in
test_metric_losses.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optiqa
from optiqa.errors import InputError
from optiqa.metrics import nlpd as N

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
    metric = optiqa.create_metric("nlpd")
    ref = _astronaut()
    assert metric(ref.clone(), ref).item() == 0.0
    assert metric.loss(ref.clone(), ref).item() == 0.0


def test_more_noise_or_blur_is_worse():
    metric = optiqa.create_metric("nlpd")
    ref = _astronaut()
    noise = [metric(_noisy(ref, s), ref).item() for s in (0.01, 0.03, 0.08)]
    blur = [metric(_blurred(ref, k), ref).item() for k in (3, 5, 9)]
    assert 0 < noise[0] < noise[1] < noise[2], noise
    assert 0 < blur[0] < blur[1] < blur[2], blur


def test_symmetric():
    ref = _astronaut(128)
    x = _noisy(ref, 0.05)
    torch.testing.assert_close(N.nlpd(x, ref), N.nlpd(ref, x), rtol=0, atol=1e-7)


def test_batch_equals_single():
    ref = torch.cat([_astronaut(96), F.avg_pool2d(torch.rand(2, 3, 100, 100), 5, 1)])
    x = _noisy(ref, 0.05)
    batched = N.nlpd(x, ref)
    single = torch.cat([N.nlpd(x[i:i + 1], ref[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batched, single, rtol=1e-6, atol=1e-7)


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

    def gray(rgb):
        return np.floor(np.tensordot(MATLAB_GRAY, rgb * 255.0, axes=(0, 0)) + 0.5) / 255

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
                          for p, q in zip(nlp(gray(ref)), nlp(gray(dist)))]))


@pytest.mark.parametrize("size", [(64, 64), (45, 61)])
def test_matches_matlab_transliteration(size):
    g = torch.Generator().manual_seed(1)
    ref = F.avg_pool2d(torch.rand(1, 3, size[0] + 2, size[1] + 2, generator=g), 3, 1)
    x = _noisy(ref, 0.05)
    expected = _nlpd_matlab(x[0].double().numpy(), ref[0].double().numpy())
    assert N.nlpd(x, ref).item() == pytest.approx(expected, rel=1e-5)


def test_smallest_size():
    metric = optiqa.create_metric("nlpd")
    assert metric.min_size == 17
    x, ref = torch.rand(1, 3, 17, 17), torch.rand(1, 3, 17, 17)
    assert torch.isfinite(metric(x, ref)).all()
    with pytest.raises(InputError, match="at least 17x17"):
        metric(x[..., :16, :], ref[..., :16, :])
