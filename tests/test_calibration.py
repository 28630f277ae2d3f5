"""Our metrics against the official (mostly MATLAB) outputs on five TID2013 pairs.

Bounds are those of issue 2; a metric that cannot meet its bound must say why in its docstring and
here, never by loosening the number silently.
"""
import pytest
import torch

import optiqa

BOUNDS = {
    "psnr": 0.01,
    "ssim": 0.001,
    "ms_ssim": 0.005,
    "cw_ssim": 0.005,
    "fsim": 0.001,
    "vif": 0.001,
    "gmsd": 0.001,
    "nlpd": 0.01,
    "vsi": 0.015,
    "mad": 1.0,
}

# Rows of official_scores.csv that are not the official code's output, with the evidence.
KNOWN_DEVIATIONS = {
    "mad": "the CSV's mad row is IQA-PyTorch's MAD (it reproduces pyiqa 0.1.16 to 4 decimals), "
           "which departs from the official MAD_index.m (per-RGB-channel scoring, scrambled CSF "
           "on non-square images, scale weights applied per orientation). Ours follows "
           "MAD_index.m and matches that code run in Octave to 4e-4 on all five pairs "
           "(tests/test_mad.py); against this row it is off by up to 88.",
}


def _params():
    for name in sorted(BOUNDS):
        marks = ([pytest.mark.xfail(strict=True, reason=KNOWN_DEVIATIONS[name])]
                 if name in KNOWN_DEVIATIONS else [])
        yield pytest.param(name, marks=marks)


@pytest.mark.parametrize("name", _params())
def test_matches_official_outputs(name, calibration):
    names, dist, ref, official = calibration
    metric = optiqa.create_metric(name)
    with torch.no_grad():
        ours = torch.cat([metric(dist[i:i + 1], ref[i:i + 1]) for i in range(len(names))])
    expected = torch.tensor(official[name], dtype=ours.dtype)
    diff = (ours - expected).abs()
    report = ", ".join(f"{n}: ours {o:.5f} official {e:.5f}"
                       for n, o, e in zip(names, ours.tolist(), expected.tolist()))
    assert diff.max().item() <= BOUNDS[name], f"{name} off by {diff.max().item():.5f}: {report}"


def test_batched_equals_single(calibration):
    """Scoring a batch gives the same per-image scores as one image at a time."""
    names, dist, ref, _ = calibration
    for name in ("ssim", "gmsd", "psnr"):
        metric = optiqa.create_metric(name)
        with torch.no_grad():
            batched = metric(dist, ref)
            single = torch.cat([metric(dist[i:i + 1], ref[i:i + 1]) for i in range(len(names))])
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
