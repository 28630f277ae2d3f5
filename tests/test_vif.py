"""VIF (Sheikh & Bovik 2006, vifvec.m): known properties, the steerable-pyramid taps and
filtering, the neighbourhood covariance, small images, and a float64 transliteration of the
official vifvec.m.

Identity, degradation order, batching and asymmetry (VIF is not symmetric) are checked for every
metric in test_metric_properties.py, official MATLAB values in test_calibration.py, finite loss
gradients in test_metric_losses.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optiqa
from imaging import astronaut_crop, matlab_gray_uint8, noisy, smooth_random
from optiqa.core.errors import InputError
from optiqa.metrics import vif as V


def test_contrast_enhancement_scores_above_one():
    """A property the paper stresses: VIF > 1 when the distortion adds information (contrast)."""
    ref = 0.25 + 0.5 * astronaut_crop(128)
    enhanced = 0.5 + 1.4 * (ref - 0.5)  # stays inside [0, 1]
    assert V.vif(enhanced, ref, quantize=False).item() > 1.05


def test_mean_shift_is_invisible_and_flat_distortion_is_zero():
    """Only band-pass subbands enter VIF (band filters sum to 0), so adding a constant changes
    nothing; a flat distorted image carries no information about the reference."""
    ref = 0.1 + 0.8 * astronaut_crop(128)
    shifted = V.vif(ref + 0.05, ref, quantize=False)
    torch.testing.assert_close(shifted, torch.ones(1), rtol=0, atol=1e-4)
    flat = V.vif(torch.full_like(ref, 0.5), ref)
    assert 0 <= flat.item() < 1e-4


def test_published_taps_have_their_symmetries():
    """sp5Filters: the band filters are derivatives (sum 0), band 4 is band 1 turned by 90
    degrees (-transpose), the low-passes are symmetric. Catches a mistyped tap."""
    for band in V._BANDS:
        assert abs(band.sum().item()) < 1e-6
    torch.testing.assert_close(V._BFILT_4, -V._BFILT_1.T, rtol=0, atol=0)
    for low in (V._LO0FILT, V._LOFILT):
        torch.testing.assert_close(low, low.T, rtol=0, atol=0)
        torch.testing.assert_close(low, low.flip(0, 1), rtol=0, atol=0)
    assert V._LOFILT.sum().item() == pytest.approx(2.0, abs=1e-5)


def test_steerable_subbands_match_corrdn_reflect1():
    """buildSpyr's corrDn with 'reflect1' edges is scipy's correlate with mode='mirror'."""
    from scipy.ndimage import correlate

    img = torch.rand(1, 1, 70, 53, dtype=torch.float64)
    ours = V.steerable_subbands(img, 3)
    low = correlate(img[0, 0].numpy(), V._LO0FILT.double().numpy(), mode="mirror")
    for bands in ours:
        for k, filt in enumerate((V._BFILT_1, V._BFILT_4)):
            expected = correlate(low, filt.double().numpy(), mode="mirror")
            np.testing.assert_allclose(bands[0, k].numpy(), expected, rtol=0, atol=1e-6)
        low = correlate(low, V._LOFILT.double().numpy(), mode="mirror")[::2, ::2]


def test_neighbourhood_covariance_and_its_gradient():
    y = torch.randn(3, 20, 23, dtype=torch.float64) * 10 + 3
    patches = F.unfold(y[:, None], 3)
    expected = torch.stack([torch.cov(p, correction=0) for p in patches])
    torch.testing.assert_close(V._NeighbourhoodCov.apply(y), expected, rtol=1e-9, atol=1e-9)
    assert torch.autograd.gradcheck(V._NeighbourhoodCov.apply, (y[:1, :9, :11].clone()
                                                                .requires_grad_(True),))


def test_small_images_use_the_scales_that_keep_blocks():
    assert [V._scales_with_blocks(s, s) for s in (21, 32, 33, 64, 65, 72, 128)] == \
        [1, 2, 3, 3, 4, 4, 4]
    metric = optiqa.create_metric("vif")
    ref = smooth_random(1, 32)
    assert 0 < metric(noisy(ref, 0.05), ref).item() < 1
    with pytest.raises(InputError, match="at least 32x32"):
        metric(ref[..., :31], ref[..., :31])
    with pytest.raises(ValueError, match="at least 21x21"):
        V.vif(ref[..., :20, :20], ref[..., :20, :20])


def _vif_matlab(dist: np.ndarray, ref: np.ndarray) -> float:
    """vifvec.m (with vifsub_est_M and refparams_vecgsm) transliterated to numpy float64.

    Vectors are ordered column-major as in MATLAB; a scale whose border crop leaves no block
    contributes empty sums (0), as MATLAB would if buildSpyr allowed that height.
    """
    from scipy.ndimage import correlate

    def corr(img, k):
        return correlate(img, k.double().numpy(), mode="mirror")

    def pyramid(img):
        low, out = corr(img, V._LO0FILT), []
        for _ in range(4):
            out.append([corr(low, V._BFILT_1), corr(low, V._BFILT_4)])
            low = corr(low, V._LOFILT)[::2, ::2]
        return out

    num = den = 0.0
    tol = 1e-15
    for s, (org_bands, dist_bands) in enumerate(zip(pyramid(matlab_gray_uint8(ref)),
                                                        pyramid(matlab_gray_uint8(dist))), 1):
        win = 2 ** (5 - s) + 1
        off = math.ceil((win - 1) / 2 / 3)
        for y, yn in zip(org_bands, dist_bands):
            h, w = y.shape[0] // 3 * 3, y.shape[1] // 3 * 3
            y, yn = y[:h, :w], yn[:h, :w]

            def wsum(a):
                return correlate(a, np.ones((win, win)), mode="mirror")[1:h - 1:3, 1:w - 1:3]

            mx, my = wsum(y) / win ** 2, wsum(yn) / win ** 2
            cov = wsum(y * yn) - win ** 2 * mx * my
            ssx = np.maximum(wsum(y * y) - win ** 2 * mx ** 2, 0)
            ssy = np.maximum(wsum(yn * yn) - win ** 2 * my ** 2, 0)
            g = cov / (ssx + tol)
            vv = (ssy - g * cov) / win ** 2
            g[ssx < tol] = 0
            vv[ssx < tol] = ssy[ssx < tol]
            g[ssy < tol] = 0
            vv[ssy < tol] = 0
            vv[g < 0] = ssy[g < 0]
            g[g < 0] = 0
            vv[vv <= tol] = tol
            cols = [(k, j) for j in range(3) for k in range(3)]  # MATLAB: j outer, k inner
            temp = np.stack([y[k:h - 2 + k, j:w - 2 + j].ravel() for k, j in cols])
            cu = np.cov(temp, bias=True)
            blocks = np.stack([y[k::3, j::3] for k, j in cols])
            ss = np.einsum("ab,axy,bxy->xy", np.linalg.inv(cu), blocks, blocks) / 9
            lam = np.linalg.eigvalsh(cu)
            crop = (slice(off, -off), slice(off, -off))
            g, vv, ss = g[crop], vv[crop], ss[crop]
            num += np.log2(1 + (g * g * ss / (vv + 0.4))[..., None] * lam).sum()
            den += np.log2(1 + (ss / 0.4)[..., None] * lam).sum()
    return num / den


@pytest.mark.parametrize("size", [96, 64])
def test_matches_vifvec_transliteration(size):
    """96 px: all four scales; 64 px: the coarsest scale has no block left and adds nothing."""
    ref = smooth_random(1, size)
    x = noisy(ref, 0.05)
    expected = _vif_matlab(x[0].double().numpy(), ref[0].double().numpy())
    assert V.vif(x, ref).item() == pytest.approx(expected, rel=1e-4)
