"""SSIM, MS-SSIM and CW-SSIM: known properties, reference implementations, small images, dtypes.

Official MATLAB values are checked in test_calibration.py; finite gradients of the losses in
test_metric_losses.py; identity, symmetry, degradation order and batching, for every metric, in
test_metric_properties.py. Here: range, agreement with pytorch_msssim and piq
where the definitions coincide, the small-image rule of MS-SSIM, CW-SSIM's tolerance of small
translations, the steerable pyramid, and input dtypes.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import optiqa
from optiqa.core.errors import InputError
from optiqa.metrics import ssim as S
from optiqa.ops.steerable import level_sizes, oriented_bands

NAMES = ["ssim", "ssim_y", "ms_ssim", "cw_ssim"]


def _pair(n=2, size=96, noise=0.08, channels=3, dtype=torch.float32, seed=0):
    """Smooth random reference plus a noisy copy: correlated, like a real (dist, ref) pair."""
    g = torch.Generator().manual_seed(seed)
    h, w = (size, size) if isinstance(size, int) else size
    ref = F.avg_pool2d(torch.rand(n, channels, h + 4, w + 4, generator=g, dtype=torch.float64),
                       5, 1)
    x = (ref + noise * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x.to(dtype), ref.to(dtype)


def _camera(size=256):
    skdata = pytest.importorskip("skimage.data")
    img = torch.from_numpy(skdata.camera()).to(torch.float32).div(255)[None, None]
    return img.expand(-1, 3, -1, -1)


@pytest.mark.parametrize("name", NAMES)
def test_score_range(name):
    metric = optiqa.create_metric(name)
    x, ref = _pair(size=128)
    score = metric(x, ref)
    lo, hi = metric.info.score_range
    assert (score > lo).all() and (score < hi - 1e-3).all(), score


def test_ssim_of_anticorrelated_images_is_negative():
    x, ref = _pair(noise=0.0)
    assert (S.ssim(1 - ref, ref) < 0).all()
    assert (optiqa.create_metric("ms_ssim")(1 - ref, ref) >= 0).all()  # floored before the power


def test_official_ssim_is_gray_quantized_no_downsampling():
    x, ref = _pair(size=(300, 420))
    got = optiqa.create_metric("ssim")(x, ref)
    torch.testing.assert_close(got, S.ssim(x, ref, colour="gray", quantize=True))
    # quantisation really happens (8-bit grey levels) and the straight-through gradient flows
    assert not torch.allclose(got, S.ssim(x, ref, colour="gray"), atol=1e-7, rtol=0)
    xg = x.clone().requires_grad_(True)
    S.ssim(xg, ref, colour="gray", quantize=True).sum().backward()
    assert xg.grad.abs().sum() > 0


def test_ssim_y_is_the_bt601_y_channel():
    from optiqa.ops.color import rgb_to_y

    x, ref = _pair()
    got = optiqa.create_metric("ssim_y")(x, ref)
    torch.testing.assert_close(got, S.ssim(rgb_to_y(x), rgb_to_y(ref), colour="rgb"))


# --- agreement with reference implementations (float64, where definitions coincide) -----------

def test_ssim_matches_pytorch_msssim():
    pms = pytest.importorskip("pytorch_msssim")
    x, ref = _pair(n=3, size=(70, 90), dtype=torch.float64)
    ours = S.ssim(x, ref, colour="rgb")
    theirs = pms.ssim(x, ref, data_range=1.0, size_average=False)
    assert (ours - theirs).abs().max() <= 1e-5


def test_ms_ssim_matches_pytorch_msssim():
    pms = pytest.importorskip("pytorch_msssim")
    # 192 halves to even sizes at every scale, where 2x2 pooling conventions coincide
    x, ref = _pair(n=2, size=192, dtype=torch.float64)
    ours = S.ms_ssim(x, ref, colour="rgb")
    theirs = pms.ms_ssim(x, ref, data_range=1.0, size_average=False)
    assert (ours - theirs).abs().max() <= 1e-5


def test_ssim_matches_piq_with_and_without_downsampling():
    piq = pytest.importorskip("piq")
    x, ref = _pair(n=1, size=384, dtype=torch.float64)  # f = round(384 / 256) = 2
    assert S.auto_downsample_factor(384, 400) == 2
    for down in (False, True):
        ours = S.ssim(x, ref, colour="rgb", downsample=down)
        theirs = piq.ssim(x, ref, data_range=1.0, reduction="none", downsample=down)
        assert (ours - theirs).abs().max() <= 1e-5, down
    assert (S.ssim(x, ref, colour="rgb", downsample=True)
            - S.ssim(x, ref, colour="rgb")).abs().max() > 1e-3  # the option does something


def test_ms_ssim_matches_piq_standard_and_small_images():
    piq = pytest.importorskip("piq")
    x, ref = _pair(n=1, size=192, dtype=torch.float64)
    ours = S.ms_ssim(x, ref, colour="rgb")
    theirs = piq.multi_scale_ssim(x, ref, data_range=1.0, reduction="none")
    assert (ours - theirs).abs().max() <= 1e-5
    # below 161 px: the scales that fit, weights renormalised (piq normalises custom weights)
    for size, n_scales in ((128, 4), (64, 3)):
        x, ref = _pair(n=1, size=size, dtype=torch.float64)
        weights = torch.tensor(S.MS_SSIM_WEIGHTS[:n_scales], dtype=torch.float64)
        ours = S.ms_ssim(x, ref, colour="rgb")
        theirs = piq.multi_scale_ssim(x, ref, data_range=1.0, reduction="none",
                                      scale_weights=weights)
        assert (ours - theirs).abs().max() <= 1e-5, size


def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics")
    x, ref = _pair(n=1, size=(64, 80), channels=1, dtype=torch.float64)
    theirs = skm.structural_similarity(x[0, 0].numpy(), ref[0, 0].numpy(), data_range=1.0,
                                       gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)
    assert abs(S.ssim(x, ref, colour="gray").item() - theirs) <= 1e-5


# --- MS-SSIM on training patches ---------------------------------------------------------------

def test_ms_ssim_scale_count():
    assert S.ms_ssim_scales(161, 161) == 5 and S.ms_ssim_scales(1000, 300) == 5
    assert S.ms_ssim_scales(160, 400) == 4 and S.ms_ssim_scales(128, 128) == 4
    assert S.ms_ssim_scales(64, 64) == 3 and S.ms_ssim_scales(11, 11) == 1


def test_ms_ssim_at_128_works_and_large_images_use_the_standard_weights():
    x, ref = _pair(n=2, size=128)
    xg = x.clone().requires_grad_(True)
    loss = optiqa.create_metric("ms_ssim").loss(xg, ref)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    # >= 161 px: exactly prod(cs_j^w_j) * ssim_5^w_5 with the published weights
    x, ref = _pair(n=1, size=176, channels=1, dtype=torch.float64)
    sims = []
    for j in range(5):
        if j:
            x, ref = F.avg_pool2d(x, 2), F.avg_pool2d(ref, 2)
        ssim_map, cs_map = S.ssim_maps(x, ref)
        sims.append((ssim_map if j == 4 else cs_map).mean().item())
    expected = math.prod(s ** w for s, w in zip(sims, S.MS_SSIM_WEIGHTS))
    x, ref = _pair(n=1, size=176, channels=1, dtype=torch.float64)
    assert abs(S.ms_ssim(x, ref).item() - expected) < 1e-12


def test_ms_ssim_gradient_finite_when_contrast_structure_is_negative():
    _, ref = _pair(n=2, size=128, noise=0.0)
    x = (1 - ref).requires_grad_(True)  # cs < 0 at every scale
    score = S.ms_ssim(x, ref)
    score.sum().backward()
    assert torch.isfinite(score).all() and torch.isfinite(x.grad).all()


# --- CW-SSIM ----------------------------------------------------------------------------------

def test_cw_ssim_tolerates_small_translations_much_better_than_ssim():
    """Sampat et al. 2009: CW-SSIM is insensitive to small translations, SSIM is not."""
    img = _camera()
    ref = img[..., 64:320, 64:320]
    ssim_m, cw_m = optiqa.create_metric("ssim"), optiqa.create_metric("cw_ssim")
    for shift in (1, 2):
        moved = img[..., 64:320, 64 + shift:320 + shift]
        drop_ssim = 1 - ssim_m(moved, ref).item()
        drop_cw = 1 - cw_m(moved, ref).item()
        assert drop_ssim > 0.1 and drop_cw < 0.02 and drop_cw < 0.1 * drop_ssim, shift
    # yet it is no constant: it falls steadily as the displacement grows past the band scale
    scores = [cw_m(img[..., 64:320, 64 + s:320 + s], ref).item() for s in (1, 4, 16, 32)]
    assert scores == sorted(scores, reverse=True) and scores[-1] < 0.6, scores


def test_cw_ssim_options_and_size_limits():
    x, ref = _pair(n=1, size=96)
    base = S.cw_ssim(x, ref)
    assert not torch.allclose(base, S.cw_ssim(x, ref, k=1e-3))
    assert torch.isfinite(S.cw_ssim(x, ref, guard=8))
    with pytest.raises(ValueError, match="levels"):
        S.cw_ssim(x[..., :40, :40], ref[..., :40, :40])
    with pytest.raises(InputError, match="too small"):
        optiqa.create_metric("cw_ssim")(x[..., :48, :48], ref[..., :48, :48])


def test_steerable_bands_of_a_grating():
    """A single Fourier component lands in the band of its orientation, with constant modulus
    (each band is an analytic signal)."""
    n, k = 128, 4
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64),
                            torch.arange(n, dtype=torch.float64), indexing="ij")
    assert level_sizes(n, n, 3) == [(128, 128), (64, 64), (32, 32)]
    for b in range(k):
        theta = math.pi * b / k
        fx, fy = round(11 * math.cos(theta)), round(11 * math.sin(theta))  # level-2 passband
        img = torch.cos(2 * math.pi * (fx * xx + fy * yy) / n)
        bands = oriented_bands(img, level=2, n_orient=k)
        assert bands.shape == (k, 64, 64)
        energy = bands.abs().square().mean((-2, -1))
        assert energy.argmax().item() == b
        mag = bands[b].abs()
        assert (mag.std() / mag.mean()).item() < 1e-6


# --- helpers, dtypes -----------------------------------------------------------------------------

def test_box_downsample_is_matlab_imfilter_symmetric_then_subsample():
    img = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5)
    out = S.box_downsample(img, 2)
    assert out.shape[-2:] == (3, 3)
    # last row/column: symmetric padding repeats the edge, so the mean of (v, v) = v
    assert out[0, 0, 0, 0].item() == (0 + 1 + 5 + 6) / 4
    assert out[0, 0, 2, 2].item() == 24
    assert S.matlab_round(2.5) == 3 and S.auto_downsample_factor(640, 700) == 3


def test_window_filter_paths_agree_with_direct_convolution():
    g = torch.Generator().manual_seed(1)
    for size in (40, 400):  # banded-matrix path and convolution path
        img = torch.rand(1, 2, size, size + 3, generator=g, dtype=torch.float64)
        k1d = S._banded(11, 11, 1.5)[:, 0]
        kernel = (k1d[:, None] * k1d[None, :]).expand(2, 1, 11, 11)
        expected = F.conv2d(img, kernel, groups=2)
        torch.testing.assert_close(S.window_filter(img, 11, 1.5), expected)


@pytest.mark.parametrize("name", NAMES)
def test_dtypes(name):
    metric = optiqa.create_metric(name)
    x, ref = _pair(n=3, size=80)
    base = metric(x, ref)
    assert base.dtype == torch.float32 and base.shape == (3,)
    torch.testing.assert_close(metric(x.double(), ref.double()), base, atol=1e-5, rtol=0)
    half = metric(x.half(), ref.half())
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - base).abs().max() < 0.02


def test_pure_functions_keep_float64_and_promote_half():
    x, ref = _pair(n=1, size=80, dtype=torch.float64)
    for fn in (S.ssim, S.ms_ssim, S.cw_ssim):
        assert fn(x, ref).dtype == torch.float64
        assert fn(x.half(), ref.half()).dtype == torch.float32


def test_unknown_options_raise():
    x, ref = _pair(n=1, size=64)
    with pytest.raises(ValueError, match="colour"):
        S.ssim(x, ref, colour="lab")
    with pytest.raises(ValueError, match="variant"):
        optiqa.create_metric("ssim", variant="nope")
    with pytest.raises(ValueError, match="window"):
        S.ssim(x[..., :8, :8], ref[..., :8, :8])
