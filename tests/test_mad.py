"""MAD (Larson & Chandler 2010) against the official MAD_index.m, hand-computed cases and sanity.

Known answers: the official MAD_index.m (2011 release) with its MEX helpers ical_std.c and
ical_stat.c, compiled with mkoctfile and run in GNU Octave 7.3 (image package 2.14) on the
images below; the same numbers come out of an independent float64 NumPy port of that code.
Octave/MATLAB read grey 255 through ``LUT(img + 1)``, which saturates in uint8 and gives 255 the
luminance of 254; we use the formula, a relative difference below 1e-6 on these images.

The ``mad`` row of ``calibration/official_scores.csv`` is *not* the official code's output: it is
IQA-PyTorch's ``mad`` (whose authors note that the official code was not available to them), and
it differs by up to 88 on the five pairs; ``test_calibration.py`` reports that mismatch.

Identity, degradation order, batching (with an identical pair inside the batch) and asymmetry are
checked for every metric in test_metric_properties.py.
"""
import math

import numpy as np
import pytest
import torch

import optiqa
from imaging import astronaut_crop
from optiqa.metrics import mad as M
from optiqa.metrics import mad_blocks

skimage_data = pytest.importorskip("skimage.data")

# Octave run of the official code: (MAD, d_detect, d_appear).
OFFICIAL_SYNTHETIC = {
    "noise64": (44.7143207940, 10399.2822655433, 1.3277347731),
    "blur67x53": (21.1984819434, 441.5497969689, 1.1078783280),
    "contrast128": (18.3384034056, 644.4478131580, 0.6801824508),
}
OFFICIAL_CALIBRATION = {  # TID2013 pairs in ../shared/data/iqa/calibration
    "I03.bmp": (152.7177368952, 204110.4105283691, 6.4921419359),
    "I04.bmp": (0.0, 0.0, 0.3236254465),
    "I06.bmp": (0.0, 0.0, 0.1974490848),
    "I08.bmp": (88.0732770016, 277868.4126200529, 2.9502985789),
    "I19.bmp": (113.8503112986, 32849.6918245036, 4.8810768557),
}


def _synthetic(name):
    """The 8-bit pairs the Octave numbers were computed on, as (distorted, reference) in [0, 1]."""
    if name == "noise64":
        ref = skimage_data.astronaut()[100:164, 200:264].astype(np.float64)
        i, j = np.mgrid[0:64, 0:64]
        pattern = (i * 7919 + j * 104729) % 41 - 20.0 + 12.0 * np.sin(np.pi * (i + 2 * j) / 8)
        dst = np.clip(np.round(ref + pattern[..., None]), 0, 255)
    elif name == "blur67x53":
        ref = skimage_data.coffee()[150:217, 300:353].astype(np.float64)
        p = np.pad(ref, ((1, 1), (1, 1), (0, 0)), mode="edge")
        dst = np.clip(np.round(sum(p[a:a + 67, b:b + 53] for a in range(3) for b in range(3)) / 9),
                      0, 255)
    else:
        ref = skimage_data.chelsea()[100:228, 200:328].astype(np.float64)
        dst = np.clip(np.round(0.8 * ref + 20), 0, 255)

    def to_t(a):
        return torch.from_numpy(a / 255.0).permute(2, 0, 1)[None].float()

    return to_t(dst), to_t(ref)


@pytest.mark.parametrize("name", sorted(OFFICIAL_SYNTHETIC))
def test_matches_official_code_synthetic(name):
    x, ref = _synthetic(name)
    expected = torch.tensor(OFFICIAL_SYNTHETIC[name], dtype=torch.float64)
    # The metric as used (float32): MAD, d_detect and d_appear to 1e-4 relative.
    ours = torch.stack([t[0] for t in M.mad_components(x, ref)]).double()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    assert optiqa.create_metric("mad")(x, ref).item() == pytest.approx(expected[0].item(), rel=1e-4)
    # The same code in float64 reproduces the official float64 numbers to ~1e-9.
    ours64 = torch.stack([t[0] for t in M.mad_components(x.double(), ref.double())])
    torch.testing.assert_close(ours64, expected, rtol=1e-6, atol=1e-9)


def test_matches_official_code_calibration_pairs(calibration):
    names, dist, ref, _ = calibration
    metric = optiqa.create_metric("mad")
    for i, name in enumerate(names):
        with torch.no_grad():
            mad, hi, lo = (t.item() for t in M.mad_components(dist[i:i + 1], ref[i:i + 1]))
        exp_mad, exp_hi, exp_lo = OFFICIAL_CALIBRATION[name]
        assert mad == pytest.approx(exp_mad, rel=1e-4, abs=1e-6), name
        # I08 has many grey-255 pixels, which the official LUT maps to the luminance of 254
        # (module docstring): d_detect moves by 3.2e-4 relative, MAD by 5e-6.
        assert hi == pytest.approx(exp_hi, rel=5e-4, abs=1e-6), name
        assert lo == pytest.approx(exp_lo, rel=1e-4), name
    with torch.no_grad():
        assert metric(dist[:1], ref[:1]).item() == pytest.approx(OFFICIAL_CALIBRATION[names[0]][0],
                                                                 rel=1e-4)


def test_identity_zeroes_both_strategies():
    ref = astronaut_crop(96, top=64, left=160)
    mad, hi, lo = M.mad_components(ref.clone(), ref)
    assert mad.item() == 0.0 and hi.item() == 0.0 and lo.item() == 0.0


def test_gradient_at_identity_and_away_is_finite():
    ref = astronaut_crop(64, top=64, left=160)
    metric = optiqa.create_metric("mad")
    for x in (ref.clone(), (ref + 0.1 * torch.randn_like(ref)).clamp(0, 1)):
        x.requires_grad_(True)
        loss = metric.loss(x, ref)
        loss.backward()
        assert torch.isfinite(x.grad).all()
        if loss.item() > 0:
            assert x.grad.abs().sum() > 0, "a visibly distorted image must get a gradient"


def test_score_range_and_min_size():
    metric = optiqa.create_metric("mad")
    assert metric.info.lower_better and metric.info.min_size == M.MIN_SIZE == 34
    ref = torch.rand(2, 3, 34, 41)
    scores = metric(torch.rand(2, 3, 34, 41), ref)
    assert torch.isfinite(scores).all() and (scores >= 0).all()
    # Worst case: black against white-ish noise is far above the near-threshold regime.
    assert metric(torch.zeros(1, 3, 64, 64), torch.rand(1, 3, 64, 64)).item() > 50
    with pytest.raises(ValueError, match="too small"):
        metric(torch.rand(1, 3, 33, 64), torch.rand(1, 3, 33, 64))


def test_combination_formula():
    assert M.BETA1 == pytest.approx(0.467, abs=5e-4) and M.BETA2 == pytest.approx(0.130, abs=5e-4)
    hi = torch.tensor([0.0, 1e-3, 50.0, 2e5, 7.0])
    lo = torch.tensor([3.0, 2.0, 4.0, 6.5, 0.0])
    # MAD_index.m: b1 = exp(-thresh1 / thresh2), b2 = 1 / (log(10) thresh2), thresh = (2.55, 3.35).
    hi64, lo64 = hi.double(), lo.double()
    alpha = 1 / (1 + math.exp(-2.55 / 3.35) * hi64 ** (1 / (math.log(10) * 3.35)))
    expected = (hi64 ** alpha * lo64 ** (1 - alpha)).float()
    torch.testing.assert_close(M.combine(hi, lo), expected, rtol=1e-5, atol=1e-8)
    assert M.combine(hi, lo)[0].item() == 0.0 and M.combine(hi, lo)[4].item() == 0.0


def test_csf_hand_values():
    csf = M.csf_centred(64, 64)
    # Near DC (f < 7.8909 cycles/degree) the official CSF is flat at 0.9809.
    assert csf[32, 32].item() == pytest.approx(0.9809)
    assert csf[30, 35].item() == pytest.approx(0.9809)

    def by_hand(i, j, h, w):
        u, v = i - h / 2 + 0.5, j - w / 2 + 0.5  # half-sample grid, both divided by the width
        s = 0.15 * math.cos(4 * math.atan2(v, u)) + 0.85
        f = math.hypot(u, v) * 64 / w / s
        return 0.9809 if f < 7.8909 else 2.6 * (0.0192 + 0.114 * f) * math.exp(-(0.114 * f) ** 1.1)

    for (h, w, i, j) in [(64, 64, 32, 52), (64, 64, 5, 60), (64, 64, 32 - 11, 32 + 11),
                         (32, 64, 0, 32), (37, 50, 3, 40)]:
        assert M.csf_centred(h, w)[i, j].item() == pytest.approx(by_hand(i, j, h, w), rel=1e-12)


def test_csf_filter_equals_official_recipe():
    """``real(ifft2(ifftshift(fftshift(fft2(x)) .* csf)))`` via our real-FFT path, odd sizes too."""
    for h, w in [(48, 64), (37, 50)]:
        x = torch.rand(1, 1, h, w, dtype=torch.float64)
        full = torch.fft.ifftshift(torch.fft.fftshift(torch.fft.fft2(x)) * M.csf_centred(h, w))
        expected = torch.fft.ifft2(full).real
        ours = torch.fft.irfft2(torch.fft.rfft2(x) * M._csf_rfft(h, w, x.dtype, x.device), s=(h, w))
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_block_statistics_match_ical_stat_by_hand():
    """Std (n - 1), skewness and kurtosis (1/n moments) of 16x16 blocks, stride 4 (ical_stat.c)."""
    x = torch.rand(2, 40, 44, dtype=torch.float64) ** 3 * 50 + 100  # skewed, large mean
    mean, s2, s3, s4 = mad_blocks.block_moments(mad_blocks.cell_moments(x, 4), 4)
    for a in range((40 - 16) // 4 + 1):
        for b in range((44 - 16) // 4 + 1):
            blk = x[1, 4 * a: 4 * a + 16, 4 * b: 4 * b + 16].flatten()
            d = blk - blk.mean()
            m2 = (d ** 2).mean()
            assert mean[1, a, b].item() == pytest.approx(blk.mean().item(), rel=1e-12)
            assert math.sqrt(s2[1, a, b] / 255) == pytest.approx(blk.std().item(), rel=1e-10)
            assert (s3[1, a, b] / 256) / (s2[1, a, b] / 256) ** 1.5 == pytest.approx(
                ((d ** 3).mean() / m2 ** 1.5).item(), rel=1e-9)
            assert (s4[1, a, b] / 256) / (s2[1, a, b] / 256) ** 2 == pytest.approx(
                ((d ** 4).mean() / m2 ** 2).item(), rel=1e-9)


def test_masking_std_uses_ical_std_neighbours():
    """Min over the 8x8 blocks at offsets {0, 4}^2, the neighbour only where 4a + 5 < L - 15."""
    h = w = 48  # blocks 4..7 reach the crop; neighbour a+1 is used for a = 4, 5, 6 but not 7
    var8 = torch.arange(25, dtype=torch.float64).flip(0).reshape(5, 5)  # decreasing: min = last
    out = mad_blocks.min_neighbour_var(var8, h, w)
    expected = torch.tensor([[var8[min(a + 1, 3) if a < 3 else a, min(b + 1, 3) if b < 3 else b]
                              for b in range(4)] for a in range(4)])
    torch.testing.assert_close(out, expected)


def test_detection_stage_hand_computed():
    """A flat reference plus a low-frequency luminance sinusoid: every term of d_detect by hand.

    ``L_ref = L0`` everywhere, ``L_dst = L0 + A sin(2 pi j / 16)``. Both lie in the CSF's flat
    band (gain 0.9809), so the filtered reference is ``0.9809 L0`` and the filtered error a sinusoid
    of amplitude ``0.9809 A``, whose 16x16 std (n - 1) is ``0.9809 A sqrt(1/2 * 256/255)``. The
    reference has no contrast, so the threshold is ``Cd = -5`` and ``msk = ln(std / m) + 5``; every
    16-wide window holds one period, so ``lmse`` is the mean of ``(I_ref - I_dst)^2`` over a period.
    """
    h = w = 64
    gray0, amp = 128.0, 0.05
    lum0 = M.K_LUMINANCE * gray0 ** M.LUMINANCE_EXPONENT
    lum = lum0 + amp * torch.sin(2 * math.pi * torch.arange(w, dtype=torch.float64) / 16)
    gray_dst = (lum / M.K_LUMINANCE) ** (1 / M.LUMINANCE_EXPONENT)
    ref = torch.full((1, 1, h, w), gray0, dtype=torch.float64)
    dst = gray_dst.expand(1, 1, h, w).clone()

    std = 0.9809 * amp * math.sqrt(0.5 * 256 / 255)
    msk = math.log(std / (0.9809 * lum0)) + 5
    lmse = ((gray0 - gray_dst[:16]) ** 2).mean().item()
    assert msk > 0
    assert M.detection_distortion(ref, dst).item() == pytest.approx(200 * msk * lmse, rel=1e-9)
    # The whole metric on the same pair, in [0, 1] without 8-bit rounding, agrees.
    _, hi, _ = M.mad_components(dst / 255, ref / 255, quantize=False)
    assert hi.item() == pytest.approx(200 * msk * lmse, rel=1e-9)
