"""HAT, SPAN and Omni-SR as trainable generators, and community checkpoints detected from their
keys (randomly initialised state dicts saved in the official key layout; small configurations).
"""
from __future__ import annotations

import pytest
import torch

from optiqa.cli import main
from optiqa.core.checkpoints import CheckpointError
from optiqa.core.errors import ConfigError
from optiqa.nets.generators import create_generator, generator_options
from optiqa.restore.generator import load_generator

pytestmark = pytest.mark.filterwarnings("ignore:torch.meshgrid")

SMALL = {
    "hat": dict(embed_dim=12, depths=[1, 1], num_heads=[2, 2], window_size=4,
                compress_ratio=3, squeeze_factor=4, num_feat=16),
    "span": dict(feature_channels=8),
    "omnisr": dict(num_feat=16, res_num=1, window_size=4),
}


def _spandrel(kind: str, scale: int):
    """The reference network straight from spandrel's classes (the official code's structure)."""
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.SPAN import SPAN

    o = SMALL[kind]
    if kind == "hat":
        return HAT(upscale=scale, mlp_ratio=2.0, **o)
    if kind == "span":
        return SPAN(num_in_ch=3, num_out_ch=3, upscale=scale, feature_channels=8)
    return OmniSR(up_scale=scale, num_feat=16, res_num=1, window_size=4, block_num=1)


@pytest.mark.parametrize("kind", ["hat", "span", "omnisr"])
def test_generators_build_train_and_keep_the_official_keys(kind):
    g = create_generator(kind, scale=2, **SMALL[kind])
    assert g.scale == 2
    x = torch.rand(2, 3, 18, 16)
    g.train()
    out = g(x)
    assert out.shape == (2, 3, 36, 32)
    out.mean().backward()
    trained = [p for p in g.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trained)
    ref = _spandrel(kind, 2)
    assert list(g.state_dict()) == list(ref.state_dict())  # the official parameter names
    # the scale under our name and under every official name of the release's configs
    official = {"hat": {"upscale"}, "span": {"upscale"}, "omnisr": {"upsampling", "up_scale"}}
    assert {"scale"} | official[kind] <= generator_options(kind)
    for name in official[kind]:
        assert create_generator(kind, **{name: 3}, **SMALL[kind]).scale == 3


def test_span_reparameterisation_is_exact_and_eval_conv_is_not_trained():
    g = create_generator("span", scale=2, feature_channels=8)
    trainable = {n for n, p in g.named_parameters() if p.requires_grad}
    assert trainable and not any("eval_conv" in n for n in trainable)
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        train_out = g.train()(x)
        eval_out = g.eval()(x)  # the 1x1-3x3-1x1 branch + skip folded into one 3x3 conv
    assert torch.allclose(train_out, eval_out, atol=1e-5)


def test_presets_and_option_errors():
    assert create_generator("hat_s", scale=2, depths=[1], num_heads=[2], embed_dim=24,
                            window_size=4, num_feat=8).scale == 2
    with pytest.raises(ConfigError, match="unknown option"):
        create_generator("hat", scale=4, embed_dims=12)
    with pytest.raises(ConfigError, match="scale given twice"):
        create_generator("omnisr", scale=4, upsampling=2, **SMALL["omnisr"])
    with pytest.raises(ValueError, match="at least 16x16"):
        create_generator("omnisr", scale=2, **SMALL["omnisr"])(torch.rand(1, 3, 12, 40))
    with pytest.raises(ConfigError, match="divisible"):
        create_generator("hat", scale=2, embed_dim=10, compress_ratio=3, depths=[1],
                         num_heads=[2], window_size=4)


@pytest.mark.parametrize("kind, wrapper", [("hat", "params_ema"), ("span", "params"),
                                           ("omnisr", None)])
def test_official_checkpoints_are_detected_from_their_keys(tmp_path, kind, wrapper):
    torch.manual_seed(1)
    ref = _spandrel(kind, 2).eval()
    state = dict(ref.state_dict())
    if kind == "omnisr":  # the official releases carry thop's profiling counters
        state["input.total_ops"] = torch.zeros(1, dtype=torch.float64)
        state["input.total_params"] = torch.zeros(1, dtype=torch.float64)
    path = tmp_path / f"{kind}.pth"
    torch.save({wrapper: state} if wrapper else state, path)
    loaded = load_generator(path)
    assert loaded.arch["type"] == kind and loaded.scale == 2
    assert loaded.weights_key == wrapper
    assert any("detected" in n for n in loaded.notes)
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), ref(x), atol=1e-5)
    # the detected network_g is a valid --arch / network_g for our registry
    again = load_generator(path, arch=dict(loaded.arch))
    assert again.arch == loaded.arch


def test_official_swinir_becomes_ours_and_matches_it(tmp_path):
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(2)
    ref = SwinIR(upscale=2, in_chans=3, img_size=16, window_size=4, img_range=1.0,
                 depths=[2, 2], embed_dim=12, num_heads=[2, 2], mlp_ratio=2,
                 upsampler="pixelshuffle", resi_connection="1conv").eval()
    state = ref.state_dict()
    assert any(k.endswith("attn_mask") for k in state)  # the official layout's buffers
    torch.save({"params": state}, tmp_path / "swinir.pth")
    loaded = load_generator(tmp_path / "swinir.pth")
    from optiqa.nets.swinir import SwinIR as OurSwinIR

    assert isinstance(loaded.model, OurSwinIR) and loaded.arch["type"] == "swinir"
    x = torch.rand(1, 3, 16, 20)  # a multiple of the window: both pad nothing
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), ref(x), atol=1e-5)


def test_other_families_run_through_spandrel_and_restore(tmp_path, capsys):
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(3)
    ref = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).eval()
    path = tmp_path / "compact.pth"
    torch.save({"params": ref.state_dict()}, path)
    loaded = load_generator(path)
    assert loaded.arch == {"type": "spandrel", "architecture": "Compact"}
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), ref(x).clamp(0, 1), atol=1e-6)
    from optiqa.data.io import write_image

    write_image(tmp_path / "in.png", torch.rand(3, 10, 14))
    assert main(["restore", str(path), str(tmp_path / "in.png"), str(tmp_path / "out.png"),
                 "-q"]) == 0
    from optiqa.data.io import read_image

    assert read_image(tmp_path / "out.png").shape == (3, 20, 28)
    assert "Compact" in capsys.readouterr().err


def test_undetectable_checkpoints_name_their_keys(tmp_path, capsys):
    path = tmp_path / "mystery.pth"
    torch.save({"params": {"trunk.0.weight": torch.zeros(4, 3, 3, 3),
                           "trunk.0.bias": torch.zeros(4)}}, path)
    with pytest.raises(CheckpointError, match="trunk.0.weight, trunk.0.bias.*name the "
                                              "architecture") as err:
        load_generator(path)
    assert err.value.option == "arch"
    assert main(["evaluate", str(path), "--set", "S=builtin:samples/32"]) == 2
    assert "(set with --arch)" in capsys.readouterr().err


def test_train_config_accepts_the_new_generators():
    from pathlib import Path

    from optiqa.train.config import load_train_config
    from optiqa.train.config_checks import check_train_config

    tiny = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"
    cfg = load_train_config(tiny, ["network_g={type: hat, upscale: 4, embed_dim: 12}"])
    check_train_config(cfg)
    bad = load_train_config(tiny, ["network_g={type: hat, upscale: 2}"])
    with pytest.raises(ConfigError, match="upscale is 2 but scale is 4"):
        check_train_config(bad)
    typo = load_train_config(tiny, ["network_g={type: span, feature_channel: 8}"])
    with pytest.raises(ConfigError, match="did you mean feature_channels"):
        check_train_config(typo)
