"""FSIM / FSIMc: the log-Gabor bank, phase congruency, MATLAB details, agreement with piq.

Identity, symmetry, degradation order and batching are checked for every metric in
test_metric_properties.py, official MATLAB values (FeatureSIM.m) in test_calibration.py; finite
gradients of the loss on random, identical, flat, 1-channel and anti-correlated inputs in
test_metric_losses.py.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optiqa
from optiqa.data.distortions import distort
from optiqa.data.samples import load_samples
from optiqa.metrics import fsim as FS
from optiqa.ops.loggabor import (average_downsample, downsample_factor, frequency_grid,
                                     log_gabor_radial, phase_congruency_filters, scharr_magnitude)


@pytest.fixture(scope="module")
def metric():
    return optiqa.create_metric("fsim")


def test_noisy_score_range(metric, astronaut):
    score = metric(distort(astronaut, "gaussian_noise", 3), astronaut)
    assert 0.5 < score.item() < 0.999


def test_orientation_blocks_change_nothing(metric, astronaut, monkeypatch):
    """One orientation at a time (what large batches get) gives the numbers of the joint pass."""
    refs = torch.cat([astronaut, astronaut.flip(-1), astronaut.transpose(-1, -2)])
    dists = torch.cat([distort(r[None], k, 3) for r, k in zip(refs, ["jpeg", "gaussian_blur",
                                                                      "contrast"])])
    joint = metric(dists, refs)
    monkeypatch.setattr(FS, "BLOCK_BYTES", 1)
    torch.testing.assert_close(metric(dists, refs), joint, atol=1e-6, rtol=0)


def test_agrees_with_piq():
    """piq.fsim implements the same FeatureSIM.m; for images under 384 pixels it downsamples the
    same way (F = 1, or F = 2 with even sides). Remaining differences: piq's noise threshold takes
    the lower middle value as median (MATLAB averages the two) and 2.2e-16 instead of 1e-4 in the
    mean phase vector (< 2e-5 on FSIM), and for FSIMc piq raises |S_I S_Q| to lambda where MATLAB
    takes real((S_I S_Q)^lambda) = cos(lambda pi) |.|^lambda for negative products (strong chroma
    shifts only: up to 1e-3). piq also rounds F with Python's round (half to even), so sides of
    640 or 1152 pixels give F = 2 / 4 there but 3 / 5 in FeatureSIM.m; not exercised here.
    """
    piq = pytest.importorskip("piq")
    refs, dists = [], []
    for i, img in enumerate(list(load_samples(128).values())[:4]):
        for kind in ("gaussian_noise", "gaussian_blur", "jpeg", "chromatic_shift"):
            refs.append(img)
            dists.append(distort(img, kind, 2 + i % 3, seed=i))
    ref, dist = torch.stack(refs), torch.stack(dists)
    with torch.no_grad():
        luminance = FS.fsim(dist, ref, chromatic=False)
        torch.testing.assert_close(luminance, piq.fsim(dist, ref, reduction="none",
                                                       chromatic=False), atol=5e-5, rtol=0)
        full = optiqa.create_metric("fsim")(dist, ref)
        theirs = piq.fsim(dist, ref, reduction="none")
    assert (full - theirs).abs().max() < 2e-3
    assert (full - theirs).abs().mean() < 3e-4


def test_log_gabor_radial_profile():
    """exp(-log(r/f0)^2 / (2 sigma^2)): 1 at the centre frequency, exp(-1/2) one log-width away."""
    f0, sigma = 1 / 6, math.log(0.55)
    r = torch.tensor([[0.0, f0, f0 * math.exp(abs(sigma)), f0 * math.exp(-abs(sigma))]],
                     dtype=torch.float64)
    got = log_gabor_radial(r, f0, sigma)[0]
    torch.testing.assert_close(got, torch.tensor([0.0, 1.0, math.exp(-0.5), math.exp(-0.5)],
                                                 dtype=torch.float64))


def test_phase_congruency_bank_peaks_and_orientation_spread():
    n = 256
    bank = phase_congruency_filters(n, n)  # (orientation, scale, H, W)
    u, v = frequency_grid(n, n)
    assert bank[..., 0, 0].abs().max() == 0  # no response to the mean
    for o in range(4):
        for s in range(4):
            i, j = np.unravel_index(bank[o, s].argmax().item(), (n, n))
            radius, angle = math.hypot(u[i, j], v[i, j]), math.atan2(-v[i, j], u[i, j])
            assert abs(radius - 1 / (6 * 2 ** s)) <= math.sqrt(2) / n  # within one grid step
            assert abs(math.remainder(angle - o * math.pi / 4, math.pi)) < 1e-9
    # Angular Gaussian exp(-dtheta^2 / (2 thetaSigma^2)), thetaSigma = (pi / 4) / 1.2: at a
    # frequency on the u axis (angle 0) the 45-degree filter passes exp(-1.2^2 / 2) = 0.487 of
    # what the 0-degree one (same radial part) passes, the 90- and 135-degree ones exp(-4 * 0.72)
    # and exp(-9 * 0.72): angles are not folded modulo pi, each filter covers one half-plane
    # (the quadrature pair E + iO comes from that one-sidedness).
    j = round(n / 12)  # u = 1/12 cycles per pixel, v = 0
    ratio = bank[:, 1, 0, j] / bank[0, 1, 0, j]
    torch.testing.assert_close(ratio, torch.tensor([1.0, math.exp(-0.72), math.exp(-2.88),
                                                    math.exp(-6.48)], dtype=torch.float64))


def test_phase_congruency_peaks_on_a_line_and_is_zero_on_flat_images():
    img = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    img[..., 32] = 200.0  # a bright vertical line: every scale in phase at column 32
    pc = FS.phase_congruency(img)[0, 0, 32]
    assert pc[32] > 0.95 and pc[28] < 0.1 and pc[36] < 0.1, pc[28:37]
    assert FS.phase_congruency(torch.full((2, 1, 40, 40), 77.0)).abs().max() == 0


def test_orientation_energy_gradient():
    """The hand-written backward of the per-orientation sums against finite differences."""
    g = torch.Generator().manual_seed(0)
    eo = torch.randn(2, 2, 3, 5, 4, dtype=torch.complex128, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: FS._OrientationEnergy.apply(z)[:2], (eo,))


def test_matlab_median_rounding_downsampling_and_scharr():
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 5, 6, 1001, 1000):
        v = torch.rand(3, n, generator=g)
        torch.testing.assert_close(FS._median(v), torch.from_numpy(np.median(v.numpy(), -1)))
        ties = torch.randint(0, 3, (3, n), generator=g).float()
        torch.testing.assert_close(FS._median(ties), torch.from_numpy(np.median(ties.numpy(), -1)))
    # MATLAB's round goes half away from zero: 640 / 256 = 2.5 -> 3 (Python's round gives 2)
    assert [downsample_factor(s, 999) for s in (128, 383, 384, 512, 640)] == [1, 1, 2, 2, 3]
    # conv2(X, ones(F)/F^2, 'same') then X(1:F:end, 1:F:end); F = 3 averages rows/cols -1..1
    x = torch.arange(25.0).view(1, 1, 5, 5)
    padded = F.pad(x, (1, 1, 1, 1))
    expected = torch.stack([torch.stack([padded[0, 0, i:i + 3, j:j + 3].mean() for j in (0, 3)])
                            for i in (0, 3)])
    torch.testing.assert_close(average_downsample(x, 3)[0, 0], expected)
    # a horizontal ramp of slope 1: [3 10 3]/16 times a central difference over 2 pixels = 2
    ramp = torch.arange(12.0).expand(1, 1, 12, 12)
    grad = scharr_magnitude(ramp)[0, 0]
    torch.testing.assert_close(grad[1:-1, 1:-1], torch.full((10, 10), 2.0), atol=1e-5, rtol=0)
