"""Properties every classical full-reference metric must have, one parametrized test each.

For each metric: the perfect score (and the matching loss) when ``x == ref``; strictly worse scores
as noise and as blur grow on a real photo; symmetry for the metrics that are symmetric by
definition (and asymmetry for the others); a batch scored at once equals its images scored one at
a time. Metric-specific checks (official-code transliterations, known values, reference
implementations) stay in the per-metric test files; official MATLAB outputs are checked in
test_calibration.py and loss gradients in test_metric_losses.py.

Levels and tolerances are per metric, as data (:data:`CASES`), and are those the per-metric tests
used before they were merged here: a metric that needs other levels to be strictly monotone says
so in its row, not in a branch of a test.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pytest
import torch

import optiqa
from imaging import box_blur, noisy, smooth_random
from optiqa.data.distortions import distort, gaussian_blur
from optiqa.metrics.base import loss_from_scores


@dataclass(frozen=True)
class Case:
    """How one metric is tested.

    ``noise``: standard deviations of one fixed Gaussian noise field; ``blur``: ``("box", widths)``
    or ``("gaussian", sigmas)``; each tuple goes from mild to strong. ``identity_atol``: allowed
    distance from the perfect score at ``x == ref`` (0 = exact). ``perfect``: the score at identity
    where ``info.perfect_score`` is unbounded. ``batch_rtol`` / ``batch_atol``: batch against
    single images. ``symmetry_atol``: ``|m(x, ref) - m(ref, x)|`` for the :data:`SYMMETRIC` ones.
    """

    noise: tuple[float, ...] = (0.01, 0.03, 0.08)
    blur: tuple[str, tuple[float, ...]] = ("box", (3, 5, 9))
    identity_atol: float = 0.0
    perfect: float | None = None
    batch_rtol: float = 1e-6
    batch_atol: float = 1e-7
    symmetry_atol: float = 1e-7


_SSIM = Case(identity_atol=1e-5, batch_rtol=0.0, batch_atol=1e-5, symmetry_atol=1e-6)
# FSIM and VSI: five levels of Gaussian noise and Gaussian blur, as in their original tests.
_PHASE = Case(noise=(0.01, 0.03, 0.06, 0.1, 0.2), blur=("gaussian", (0.5, 1.0, 1.5, 2.5, 4.0)),
              identity_atol=1e-6, batch_rtol=0.0, batch_atol=1e-6, symmetry_atol=1e-6)
_DISTS = Case(identity_atol=1e-6)

CASES: dict[str, Case] = {
    "l1": Case(),
    "mse": Case(),
    "psnr": Case(perfect=100.0),  # the MSE floor of 1e-10 caps identity at 100 dB
    "psnr_y": Case(perfect=100.0),
    "ssim": _SSIM,
    "ssim_y": _SSIM,
    "ms_ssim": _SSIM,
    "cw_ssim": _SSIM,
    "gmsd": Case(),
    "nlpd": Case(),
    "fsim": _PHASE,
    "vsi": _PHASE,
    # information fidelity: the score range is [0, inf) (contrast gain exceeds 1), identity is 1
    "vif": Case(identity_atol=1e-5, perfect=1.0, batch_rtol=1e-5, batch_atol=1e-6),
    # MAD's detection stage ignores near-threshold noise: sigma 0.01 can score exactly 0
    "mad": Case(noise=(0.03, 0.1, 0.3), blur=("gaussian", (1.0, 2.0, 4.0)),
                batch_rtol=1e-5, batch_atol=1e-5),
    # DISTS-style metrics whose backbones need no download (fixed-seed VGG-16-R, timm's packaged
    # EfficientNet-Lite0 weights): the deep family is covered in test_deep_metrics.py
    "dists_effnet_lite0": _DISTS,
    "dists_vgg16_r": _DISTS,
}

# Symmetric by definition: every term of the formula is symmetric in (x, ref).
SYMMETRIC = {
    "l1": "|x - ref|", "mse": "(x - ref)^2", "psnr": "a function of MSE",
    "psnr_y": "a function of MSE on Y",
    "ssim": "luminance, contrast and structure terms", "ssim_y": "SSIM on Y",
    "ms_ssim": "products of SSIM terms", "cw_ssim": "|sum c_x c_ref*| / sum(|c_x|^2 + |c_ref|^2)",
    "gmsd": "GMS = (2 m_x m_r + c) / (m_x^2 + m_r^2 + c)",
    "nlpd": "RMS of the difference of normalised pyramids",
    "fsim": "S_PC, S_G, S_I S_Q and the weight max(PC_x, PC_ref)",
    "vsi": "S_VS, S_G, S_M S_N and the weight max(VS_x, VS_ref)",
    "dists_effnet_lite0": "DISTS' l and s terms", "dists_vgg16_r": "DISTS' l and s terms",
}
# Not symmetric: VIF measures the information of ref that x keeps; MAD masks with the reference.
ASYMMETRIC = sorted(set(CASES) - set(SYMMETRIC))

# A flat image compared with itself: VIF's information ratio is 0 / 0 there, which vifvec.m
# (and ours) returns as 0, so a flat pair does not score the perfect 1.
NO_FLAT_IDENTITY = {"vif"}


@lru_cache(maxsize=None)
def _metric(name):
    return optiqa.create_metric(name)


def _perfect(name):
    metric = _metric(name)
    return CASES[name].perfect if CASES[name].perfect is not None else metric.info.perfect_score


def _worse_and_worse(scores, lower_better):
    """Strictly ordered from the best: increasing where lower is better, decreasing otherwise."""
    steps = torch.tensor(scores).diff()
    return bool((steps > 0).all() if lower_better else (steps < 0).all())


def _blurred(ref, kind, level):
    return box_blur(ref, level) if kind == "box" else gaussian_blur(ref, level, None)


def test_every_classical_metric_is_covered():
    """A new classical metric must get a row (that is, levels and tolerances) here."""
    from optiqa.metrics.registry import REGISTRY

    classical = {n for n, s in REGISTRY.items()
                 if s.info.approach != "deep" and s.info.kind == "fr"}
    assert classical <= set(CASES), classical - set(CASES)
    assert set(SYMMETRIC) <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_perfect_score_at_identity(name, astronaut):
    metric, case = _metric(name), CASES[name]
    g = torch.Generator().manual_seed(0)
    images = [astronaut, torch.rand(astronaut.shape, generator=g)]
    if name not in NO_FLAT_IDENTITY:
        images.append(torch.full_like(astronaut, 0.5))
    ref = torch.cat(images)
    perfect = _perfect(name)
    assert torch.isfinite(torch.tensor(perfect)), "give the identity score as Case(perfect=...)"
    with torch.no_grad():
        scores = metric(ref.clone(), ref)
        loss = metric.loss(ref.clone(), ref)
    torch.testing.assert_close(scores, torch.full_like(scores, perfect),
                               rtol=0, atol=case.identity_atol)
    expected_loss = loss_from_scores(torch.full_like(scores, perfect), metric.info)
    torch.testing.assert_close(loss, expected_loss, rtol=0, atol=case.identity_atol)


@pytest.mark.parametrize("kind", ["noise", "blur"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_more_noise_or_blur_is_worse(name, kind, astronaut):
    metric, case = _metric(name), CASES[name]
    if kind == "noise":
        levels = [noisy(astronaut, sigma) for sigma in case.noise]
    else:
        blur, sizes = case.blur
        levels = [_blurred(astronaut, blur, s) for s in sizes]
    with torch.no_grad():
        scores = metric(torch.cat(levels), astronaut.expand(len(levels), -1, -1, -1)).tolist()
    # the mildest level is already worse than a perfect copy
    assert _worse_and_worse([_perfect(name)] + scores, metric.info.lower_better), scores
    lo, hi = metric.info.score_range
    assert all(lo <= s <= hi for s in scores), scores


@pytest.mark.parametrize("name", sorted(SYMMETRIC))
def test_symmetric(name, astronaut):
    metric = _metric(name)
    x = noisy(astronaut, 0.05)
    with torch.no_grad():
        torch.testing.assert_close(metric(x, astronaut), metric(astronaut, x),
                                   rtol=0, atol=CASES[name].symmetry_atol)


@pytest.mark.parametrize("name", ASYMMETRIC)
def test_asymmetric_metrics_really_are(name, astronaut):
    """Keeps :data:`SYMMETRIC` honest: swapping the arguments of these visibly changes the score."""
    metric = _metric(name)
    x = noisy(astronaut, 0.05)
    with torch.no_grad():
        forward, swapped = metric(x, astronaut).item(), metric(astronaut, x).item()
    assert abs(forward - swapped) > 1e-3 * max(abs(forward), 1.0), (forward, swapped)


@pytest.fixture(scope="module")
def batch(astronaut):
    """Five non-square (200 x 256) pairs: mirrored and transposed photos, a random texture, under
    JPEG, blur, contrast loss and noise, and one identical pair inside the batch."""
    p = astronaut
    refs = torch.cat([p, p.flip(-1), p.transpose(-1, -2), smooth_random(1, 256), p])[..., :200, :]
    dists = torch.cat([distort(refs[0:1], "jpeg", 3), distort(refs[1:2], "gaussian_blur", 3),
                       distort(refs[2:3], "contrast", 3), noisy(refs[3:4], 0.05),
                       refs[4:5].clone()])
    return dists, refs


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_equals_single(name, batch):
    metric, case = _metric(name), CASES[name]
    dists, refs = batch
    with torch.no_grad():
        batched = metric(dists, refs)
        single = torch.cat([metric(d[None], r[None]) for d, r in zip(dists, refs)])
    torch.testing.assert_close(batched, single, rtol=case.batch_rtol, atol=case.batch_atol)
    assert abs(batched[-1].item() - _perfect(name)) <= case.identity_atol, batched
