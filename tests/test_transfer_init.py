"""Initializations: random, imagenet (real effnet_lite0 weights and stand-ins), gan:<checkpoint>."""
import pytest
import torch
import yaml

from optiqa import backbones
from optiqa.core.errors import ConfigError, InputError, WeightsUnavailable
from optiqa.nets import create_discriminator
from optiqa.models.testing import standin_state_dict, standin_weights
from optiqa.transfer.init import (create_backbone, find_discriminator_checkpoint, parse_init)

NET_D = {"type": "backbone", "backbone": "effnet_lite0", "head": "patch", "pretrained": False}


def _trained_d(seed=1):
    """A backbone discriminator whose weights differ from any fresh init (as training does)."""
    torch.manual_seed(seed)
    d = create_discriminator(**NET_D)
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name, b in d.named_buffers():
            if name.endswith("running_mean"):
                b.add_(0.1)
    return d


def _write_run(folder, d, network_d=NET_D, iterations=(5, 20)):
    """The trainer's layout: config.yaml + models/net_d_<iter>.pth = {'params': ...}."""
    (folder / "models").mkdir(parents=True)
    if network_d is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(
            {"name": folder.name, "network_d": network_d, "datasets": {"train": {"gt_size": 48}}}))
    for it in iterations:
        sd = {k: v + (0 if it == max(iterations) else 1) for k, v in d.state_dict().items()}
        torch.save({"params": sd}, folder / "models" / f"net_d_{it}.pth")
    return folder


def test_parse_init():
    assert parse_init("random").kind == "random" and parse_init("imagenet").path is None
    i = parse_init("gan:runs/x")
    assert i.kind == "gan" and str(i.path) == "runs/x" and i.label == "gan:runs/x"
    for bad in ("gan:", "imagenet1k", ""):
        with pytest.raises(ConfigError, match="random, imagenet or gan"):
            parse_init(bad)


def test_random_init_is_seeded_and_not_pretrained():
    a, info = create_backbone("effnet_lite0", "random", seed=3)
    b, _ = create_backbone("effnet_lite0", "random", seed=3)
    c, _ = create_backbone("effnet_lite0", "random", seed=4)
    w = "trunk.conv_stem.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], backbones.create("effnet_lite0").state_dict()[w])
    assert info == {"init": "random", "seed": 3}
    # VGG-16-R's init is its spec's fixed seed, whatever seed is asked for (and says so)
    r, info = create_backbone("vgg16_r", "random", seed=3)
    assert info == {"init": "random", "seed": backbones.VGG16_R_SEED}
    assert torch.equal(r.state_dict()["trunk.features.0.weight"],
                       backbones.create("vgg16_r").state_dict()["trunk.features.0.weight"])


def test_imagenet_init_is_the_pretrained_backbone():
    bb, info = create_backbone("effnet_lite0", "imagenet")
    ref = backbones.create("effnet_lite0", pretrained=True)
    for k, v in ref.state_dict().items():
        assert torch.equal(bb.state_dict()[k], v)
    assert info["init"] == "imagenet" and info["weights"]


def test_imagenet_init_loads_the_weights_file_through_the_real_path():
    with standin_weights("effnet_lite0"):
        bb, info = create_backbone("effnet_lite0", "imagenet")
    expected = standin_state_dict("effnet_lite0")
    for k, v in expected.items():
        assert torch.equal(bb.state_dict()["trunk." + k], v)
    assert info["weights"].endswith(backbones.weights_file_name("effnet_lite0"))


def test_imagenet_init_never_falls_back(tmp_path, monkeypatch):
    if backbones.weights_available("convnext_t"):
        pytest.skip("convnext_t weights are on this machine")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OPTIQA_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsUnavailable, match="convnext_t"):
        create_backbone("convnext_t", "imagenet")
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        create_backbone("vgg16_r", "imagenet")


def test_gan_init_takes_the_newest_discriminator_backbone(tmp_path):
    d = _trained_d()
    run = _write_run(tmp_path / "run_a", d)
    bb, info = create_backbone("effnet_lite0", f"gan:{run}")
    for k, v in d.backbone.state_dict().items():
        assert torch.equal(bb.state_dict()[k], v), k
    assert info["iteration"] == 20 and info["run"] == "run_a"
    assert info["network_d"]["backbone"] == "effnet_lite0"
    # a checkpoint file works too, and the older one differs
    old, info_old = create_backbone("effnet_lite0", f"gan:{run / 'models' / 'net_d_5.pth'}")
    assert info_old["iteration"] == 5
    w = "trunk.conv_stem.weight"
    assert torch.equal(old.state_dict()[w], d.backbone.state_dict()[w] + 1)
    assert find_discriminator_checkpoint(run / "models").run_dir == run


def test_gan_init_mismatches_are_clear_errors(tmp_path):
    d = _trained_d()
    run = _write_run(tmp_path / "eff", d)
    with pytest.raises(ConfigError, match="backbone 'effnet_lite0', but the IQA model's backbone is 'vgg16_r'"):
        create_backbone("vgg16_r", f"gan:{run}")
    # without config.yaml the keys and shapes decide; both architectures are named
    bare = _write_run(tmp_path / "bare", d, network_d=None)
    with pytest.raises(ConfigError) as err:
        create_backbone("vgg16_r", f"gan:{bare}")
    msg = str(err.value)
    assert "does not fit backbone 'vgg16_r' (VGG-16-R)" in msg
    assert "missing: trunk.features.0.weight" in msg
    assert "unexpected: trunk.conv_stem.weight" in msg
    # one tensor of the wrong shape
    sd = d.state_dict()
    sd["backbone.trunk.conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save({"params": sd}, tmp_path / "net_d_1.pth")
    with pytest.raises(ConfigError, match=r"shape mismatch.*conv_stem.weight \(8, 3, 3, 3\) vs "
                                          r"\(32, 3, 3, 3\)"):
        create_backbone("effnet_lite0", f"gan:{tmp_path / 'net_d_1.pth'}")


def test_gan_init_refuses_discriminators_without_a_backbone(tmp_path):
    patch = create_discriminator("patchgan", ndf=8, n_layers=2)
    run = _write_run(tmp_path / "pg", patch, network_d={"type": "patchgan", "ndf": 8,
                                                         "n_layers": 2})
    with pytest.raises(ConfigError, match="has no optiqa backbone"):
        create_backbone("effnet_lite0", f"gan:{run}")
    bare = _write_run(tmp_path / "pg_bare", patch, network_d=None)
    with pytest.raises(ConfigError, match="no 'backbone.\\*' parameters"):
        create_backbone("effnet_lite0", f"gan:{bare}")
    with pytest.raises(InputError, match="no such run folder"):
        create_backbone("effnet_lite0", f"gan:{tmp_path / 'nothing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no discriminator checkpoint"):
        create_backbone("effnet_lite0", f"gan:{tmp_path / 'empty'}")


def test_gan_init_uses_only_the_stages_the_discriminator_trained(tmp_path):
    from optiqa.transfer.init import trained_maps

    staged = {**NET_D, "stage": 2}
    d = _trained_d()
    run = _write_run(tmp_path / "run_s", d, network_d=staged)
    full = backbones.create("effnet_lite0", pretrained=False)
    bb, info = create_backbone("effnet_lite0", f"gan:{run}")
    # maps 0 (the image), 1 and 2 were trained by the head on stage 2; the deeper stages are
    # the backbone's own weights, which a "gan" initialisation must not pass off as trained
    assert info["trained_maps"] == 3 and info["maps"] == len(full.channels)
    assert bb.channels == full.channels[:3]
    feats = bb(torch.rand(1, 3, 64, 64))
    assert len(feats) == 3 and [f.shape[1] for f in feats] == bb.channels
    assert trained_maps({**NET_D, "stage": -1}, 6) == 6
    assert trained_maps({**NET_D, "freeze_backbone": True}, 6) == 0
