"""VSI and its SDSP saliency: MATLAB resizing and Lab, saliency, agreement with piq.

Identity (also of flat images), symmetry, degradation order and batching are checked for every
metric in test_metric_properties.py, official MATLAB values (VSI.m) in test_calibration.py; finite
gradients of the loss on random, identical, flat, 1-channel and anti-correlated inputs in
test_metric_losses.py.
"""
import pytest
import torch

import optiqa
from optiqa.data.distortions import distort
from optiqa.ops.resize import imresize, imresize_matrix
from optiqa.data.samples import load_sample, load_samples
from optiqa.metrics import vsi as V


def test_noisy_score_range(astronaut):
    score = optiqa.create_metric("vsi")(distort(astronaut, "gaussian_noise", 3), astronaut)
    assert 0.8 < score.item() < 0.999


def test_agrees_with_piq():
    """piq.vsi follows the same VSI.m. At 256 x 256 SDSP needs no resizing and F = 1, and the two
    coincide. Elsewhere piq resizes with F.interpolate: up to 256 the same bilinear samples, but
    back down with align_corners=True and no antialiasing, where MATLAB's imresize antialiases
    (here up to 3e-3 on VSI at 128 x 128); from 384 pixels on piq also pads the F x F averaging
    differently (up to about 1e-2).
    """
    piq = pytest.importorskip("piq")
    for size, tolerance in ((256, 1e-5), (128, 5e-3)):
        refs, dists = [], []
        for i, img in enumerate(list(load_samples(size).values())[:3]):
            for kind in ("gaussian_noise", "jpeg", "chromatic_shift"):
                refs.append(img)
                dists.append(distort(img, kind, 2 + i, seed=i))
        ref, dist = torch.stack(refs), torch.stack(dists)
        with torch.no_grad():
            ours = optiqa.create_metric("vsi")(dist, ref)
            theirs = piq.vsi(dist, ref, reduction="none")
        assert (ours - theirs).abs().max() < tolerance, (size, ours - theirs)


def test_imresize_bilinear_matches_matlab():
    """Hand-computed MATLAB values: imresize(1:4, [1 2], 'bilinear') = [1.625 3.375] (antialiased
    triangle of width 4, mirrored border), imresize([1 2], [1 4], 'bilinear') = [1 1.25 1.75 2].
    The weights come from optiqa.ops.resize (shared with MATLAB bicubic)."""
    def bilinear(n_in, n_out):
        return imresize_matrix(n_in, n_out, method="bilinear")

    ramp = torch.arange(1.0, 5.0, dtype=torch.float64)
    torch.testing.assert_close(bilinear(4, 2) @ ramp, torch.tensor([1.625, 3.375],
                                                                   dtype=torch.float64))
    torch.testing.assert_close(imresize(ramp.view(1, 4), size=(1, 2), method="bilinear")[0],
                               torch.tensor([1.625, 3.375], dtype=torch.float64))
    row = torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64)
    expected = torch.tensor([1.0, 1.25, 1.75, 2.0], dtype=torch.float64)
    torch.testing.assert_close(V._resize(row, 1, 4)[0, 0, 0], expected)  # F.interpolate path
    torch.testing.assert_close(bilinear(2, 4) @ torch.tensor([1.0, 2.0], dtype=torch.float64),
                               expected)
    # enlarging: the fast path equals the matrix path, also for odd factors
    x = torch.rand(2, 3, 37, 90, dtype=torch.float64)
    matrix = bilinear(37, 256) @ x @ bilinear(90, 256).t()
    torch.testing.assert_close(V._resize(x, 256, 256), matrix)
    # shrinking one side: the matrix path with the float32 matrices VSI converts once
    x = x.float()
    matrix = (bilinear(37, 20).float() @ x @ bilinear(90, 256).float().t())
    torch.testing.assert_close(V._resize(x, 20, 256), matrix, rtol=0, atol=0)
    with pytest.raises(ValueError, match="bilinear"):
        imresize_matrix(4, 2, method="nearest")


def test_sdsp_lab_matches_cie_lab_with_d50_white():
    """VSI.m's RGB2Lab: sRGB (D65) matrix but the D50 white (0.9642, 1, 0.8251); skimage's D50 white
    is (0.96422, 1, 0.82521), hence the 0.02 tolerance. L* comes back without its -16."""
    color = pytest.importorskip("skimage.color")
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 6, 6, generator=g, dtype=torch.float64)
    rgb[0, :, 0, :3] = torch.tensor([[0.0, 1.0, 0.02]])  # black, white, the linear segment
    ours = V._sdsp_lab(rgb)[0].permute(1, 2, 0) - rgb.new_tensor([16.0, 0.0, 0.0])
    theirs = torch.from_numpy(color.rgb2lab(rgb[0].permute(1, 2, 0).numpy(), illuminant="D50"))
    torch.testing.assert_close(ours, theirs, atol=0.02, rtol=0)


def test_sdsp_colour_conversion_gradient_and_saliency_range():
    g = torch.Generator().manual_seed(0)
    rgb = (torch.rand(1, 3, 5, 5, generator=g, dtype=torch.float64) * 0.9 + 0.01)
    rgb[0, 0, 0, 0] = 0.03  # on the linear segment of the sRGB curve
    rgb.requires_grad_(True)
    # the hand-made slopes of _SdspLab against finite differences
    assert torch.autograd.gradcheck(V._sdsp_lab, (rgb,))
    vs = V.sdsp(load_sample("chelsea", 96)[None])
    assert vs.shape == (1, 1, 96, 96) and vs.min() == 0 and vs.max() == 1


def test_hand_written_pieces_match_autograd_and_torch_where():
    """The fast pieces of VSI against what they replace: the 0/1-mask selection equals
    torch.where at and around the thresholds; min-max normalisation's backward equals autograd
    through amin/amax (ties shared evenly, a flat plane included); the similarity's backward
    passes gradcheck."""
    g = torch.Generator().manual_seed(0)
    c = torch.rand(4000, generator=g) * 0.1
    knee = torch.tensor(0.04045)
    c[:3] = torch.stack([torch.nextafter(knee, torch.tensor(0.0)), knee,
                         torch.nextafter(knee, torch.tensor(1.0))])
    value, slope = V._srgb_to_linear(c, True)
    t = (c + 0.055) / 1.055
    assert torch.equal(value, torch.where(c <= 0.04045, c / 12.92, t.pow(2.4)))
    expected = torch.where(c <= 0.04045, 1.0 / 12.92, (2.4 / 1.055) * t.pow(2.4) / t)
    assert torch.equal(slope, expected)
    v = torch.rand(4000, generator=g) * 0.02
    v[:2] = torch.tensor([0.0, V.LAB_EPSILON])
    value, slope = V._lab_f(v.clone(), True)
    root = v.pow(1.0 / 3.0)
    high = v > V.LAB_EPSILON
    assert torch.equal(value, torch.where(high, root, v * (V.LAB_KAPPA / 116.0) + 16.0 / 116.0))
    assert torch.equal(slope, torch.where(high, 1.0 / (3.0 * root * root), V.LAB_KAPPA / 116.0))

    planes = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64).mul(4).round()  # ties
    planes[1, 2] = 3.0  # a flat plane: every pixel is both the minimum and the maximum
    weights = torch.randn(planes.shape, generator=g, dtype=torch.float64)
    a = planes.clone().requires_grad_(True)
    (V._minmax_normalise(a) * weights).sum().backward()
    b = planes.clone().requires_grad_(True)
    lo = b.flatten(-2).amin(-1)[..., None, None]
    hi = b.flatten(-2).amax(-1)[..., None, None]
    (((b - lo) / (hi - lo + V.TINY)) * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)

    x = torch.randn(3, 1, 4, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.randn(3, 1, 4, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, q: V._similarity(p, q, 1.5), (x, y))
