"""Blur kernels (ops/kernels.py) and the deblurring degradations (data/blur.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optiqa.core.errors import ConfigError
from optiqa.data.blur import GaussianBlur, MotionBlur, camera_shake_trajectory
from optiqa.data.task_datasets import SRTrainDataset, mod_crop
from optiqa.data.task_degradations import DEGRADATIONS, create_degradation
from optiqa.ops import kernels as K
from optiqa.ops.filters import gaussian_kernel1d


def _moments(k: torch.Tensor):
    x, y = K.kernel_grid(k.shape[-1])
    k = k.double()
    return ((k * x).sum(), (k * y).sum(), (k * x * x).sum(), (k * y * y).sum(),
            (k * x * y).sum())


def test_isotropic_gaussian_is_the_outer_product_of_1d_gaussians():
    g1 = gaussian_kernel1d(15, 2.0, dtype=torch.float64)
    k = K.gaussian_kernel2d(15, 2.0, dtype=torch.float64)
    assert torch.allclose(k, g1[:, None] * g1[None, :], atol=1e-15)
    assert abs(float(k.sum()) - 1) < 1e-12


def test_anisotropic_gaussian_has_the_rotated_covariance():
    sx, sy, theta = 3.0, 1.0, 0.6
    k = K.gaussian_kernel2d(41, sx, sy, theta, dtype=torch.float64)
    mx, my, xx, yy, xy = _moments(k)
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor([sx ** 2, sy ** 2], dtype=torch.float64)) @ rot.T
    assert abs(mx) < 1e-12 and abs(my) < 1e-12
    # a sampled Gaussian's variance is sigma^2 to within ~1e-6 for sigma >= 1
    assert torch.allclose(torch.stack([xx, xy, yy]), torch.stack([cov[0, 0], cov[0, 1],
                                                                  cov[1, 1]]), atol=1e-4)


def test_generalized_and_plateau_kernels_follow_their_formulas():
    g = K.generalized_gaussian_kernel2d(21, 2.0, 1.2, 0.3, beta=1.0, dtype=torch.float64)
    assert torch.allclose(g, K.gaussian_kernel2d(21, 2.0, 1.2, 0.3, dtype=torch.float64))
    q = K.quadratic_form(21, 2.0, 1.2, 0.3)
    beta = 1.7
    p = K.plateau_kernel2d(21, 2.0, 1.2, 0.3, beta, dtype=torch.float64)
    # k(0) / k(x) = 1 + q(x)^beta
    assert torch.allclose(p[10, 10] / p, 1 + q.pow(beta), rtol=1e-12)
    gg = K.generalized_gaussian_kernel2d(21, 2.0, 1.2, 0.3, beta, dtype=torch.float64)
    near = q.pow(beta) < 200  # far out the kernel underflows to denormals
    assert torch.allclose(torch.log(gg[10, 10] / gg)[near], 0.5 * q.pow(beta)[near], rtol=1e-10)


def test_sinc_kernel_against_scipy_bessel_and_its_passband():
    from scipy import special

    cutoff, size = math.pi / 2, 41
    k = K.sinc_kernel2d(size, cutoff, dtype=torch.float64).numpy()
    r = np.hypot(*np.meshgrid(np.arange(size) - 20.0, np.arange(size) - 20.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    ref[20, 20] = cutoff ** 2 / (4 * np.pi)
    assert np.allclose(k, ref / ref.sum(), atol=1e-14)
    # frequency response along a row: ~1 well inside the cut-off, ~0 well outside
    response = np.abs(np.fft.fft(np.pad(k.sum(0), (0, 215))))  # 256-point DFT of the row sum
    freqs = np.fft.fftfreq(256) * 2 * np.pi
    assert np.all(np.abs(response[np.abs(freqs) < 0.3 * np.pi] - 1) < 0.1)
    assert np.all(response[(np.abs(freqs) > 0.7 * np.pi)] < 0.1)


def test_blur_convolves_or_correlates():
    x = torch.zeros(1, 1, 9, 9)
    x[..., 4, 4] = 1
    k = torch.zeros(3, 3)
    k[1, 2] = 1  # a delta one pixel right of the centre
    # convolution with a PSF shifted right moves the image right; correlation moves it left
    assert K.blur(x, k, convolve=True)[0, 0, 4, 5] == 1
    assert K.blur(x, k)[0, 0, 4, 3] == 1
    # one kernel per image of the batch
    two = torch.rand(2, 3, 12, 12)
    ks = torch.stack([K.gaussian_kernel2d(5, 1.0), K.gaussian_kernel2d(5, 2.0)])
    out = K.blur(two, ks)
    assert torch.allclose(out[1:], K.blur(two[1:], ks[1]), atol=1e-6)


def test_rasterized_trajectory_is_a_centred_box_for_a_straight_path():
    t = torch.linspace(-5, 5, 2001, dtype=torch.float64)
    points = torch.stack([t, torch.zeros_like(t)], 1)
    k = K.rasterize_trajectory(points, dtype=torch.float64)
    assert k.shape == (13, 13) and abs(float(k.sum()) - 1) < 1e-12
    mx, my, *_ = _moments(k)
    assert abs(mx) < 1e-12 and abs(my) < 1e-12  # centroid on the centre
    assert torch.all(k[6, 2:11] > 0) and float(k[6].sum()) == pytest.approx(1.0)
    assert torch.allclose(k[6, 3:10], torch.full((7,), 1 / 10, dtype=torch.float64), atol=2e-3)
    with pytest.raises(ValueError, match="odd kernel"):
        K.rasterize_trajectory(points, size=9)


def test_camera_shake_paths_have_the_length_and_are_seeded():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    p = camera_shake_trajectory(g(1), 20.0, samples=500)
    assert p.shape == (500, 2)
    assert float((p[1:] - p[:-1]).norm(dim=1).sum()) == pytest.approx(20.0, rel=1e-9)
    assert torch.equal(p, camera_shake_trajectory(g(1), 20.0, samples=500))
    assert not torch.equal(p, camera_shake_trajectory(g(2), 20.0, samples=500))
    straight = camera_shake_trajectory(g(3), 12.0, samples=300, anxiety=0)
    d = straight - straight[0]
    cross = d[:, 0] * d[-1, 1] - d[:, 1] * d[-1, 0]  # collinear: zero cross products
    assert float(cross.abs().max()) < 1e-9 and float(d[-1].norm()) == pytest.approx(12.0)


@pytest.mark.parametrize("degradation", [
    GaussianBlur(sigma=[1.0, 2.5]),
    MotionBlur(length=[6.0, 14.0], anxiety=0.005),
])
def test_degrading_a_crop_with_context_equals_cropping_the_degraded_image(degradation, astronaut):
    full = astronaut[..., :96, :96]
    ctx = degradation.context_lr
    top, left, size = 40, 30, 24
    whole = degradation(full, torch.Generator().manual_seed(5))
    part = degradation(full[..., top - ctx:top + size + ctx, left - ctx:left + size + ctx],
                       torch.Generator().manual_seed(5))
    assert torch.equal(part[..., ctx:ctx + size, ctx:ctx + size],
                       whole[..., top:top + size, left:left + size])


def test_blur_degradations_draw_per_image_and_add_the_noise_they_say():
    d = GaussianBlur(sigma=[1.0, 2.0, 3.0])
    assert d.kernel_size == 19 and d.context_lr == 9
    g = torch.Generator().manual_seed(0)
    drawn = [d.draw_kernel(g)[1]["sigma"] for _ in range(300)]
    counts = [drawn.count(s) for s in (1.0, 2.0, 3.0)]
    assert min(counts) > 70, counts
    flat = torch.full((1, 3, 64, 64), 0.5)
    noisy = GaussianBlur(sigma=1.0, noise_sigma=10.0, quantize=False)(
        flat, torch.Generator().manual_seed(1))
    assert float(noisy.std()) == pytest.approx(10 / 255, rel=0.05)
    out = GaussianBlur(sigma=1.0, noise_sigma=10.0)(flat, torch.Generator().manual_seed(1))
    assert torch.equal(out, torch.floor(out * 255 + 0.5) / 255) and out.min() >= 0
    lq, params = MotionBlur(length=10.0)(flat), MotionBlur(length=10.0).degrade_one(
        flat, torch.Generator().manual_seed(2))[1]
    assert torch.allclose(lq, flat, atol=1 / 255)  # blur keeps a flat image
    assert params["length"] == 10.0 and float(params["kernel"].sum()) == pytest.approx(1.0)


def test_blur_tasks_from_config_values():
    assert isinstance(create_degradation("deblur_motion", 1), MotionBlur)
    d = create_degradation({"type": "gaussian_blur", "sigma": 1.6, "noise_sigma": 2.55}, 1)
    assert d.sigmas == [1.6] and "1.6" in d.describe()
    assert {"gaussian_blur", "motion_blur", "realesrgan"} <= set(DEGRADATIONS.names())
    with pytest.raises(ConfigError, match="x1 but the scale is 4"):
        create_degradation("deblur_motion", 4)
    with pytest.raises(ConfigError, match="scale: 1"):
        create_degradation("gaussian_blur", 4)
    for bad in ({"sigma": 0}, {"sigma": []}, {"kernel_size": 4}):
        with pytest.raises(ConfigError, match="gaussian_blur"):
            create_degradation({"type": "gaussian_blur", **bad}, 1)
    with pytest.raises(ConfigError, match="length"):
        create_degradation({"type": "motion_blur", "length": [5, 2]}, 1)
    ds = SRTrainDataset("builtin:samples/96", scale=1, gt_size=32, seed=3,
                        degradation="deblur_gaussian")
    item = ds[4]
    assert item["lq"].shape == item["gt"].shape == (3, 32, 32)
    assert not torch.equal(item["lq"], item["gt"])
    assert torch.equal(mod_crop(item["gt"], 1), item["gt"])
