"""Evaluation and restoration: the SR convention, tiling, run folders, the CLI."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from conftest import shared_path
from optiqa.cli import main
from optiqa.data.io import read_image, write_image
from optiqa.core.errors import ConfigError
from optiqa.nets import create_generator
from optiqa.cli.evaluate import parse_set_args
from optiqa.restore.generator import load_generator, restore, tile_starts

TINY = {"type": "srresnet", "num_feat": 8, "num_block": 1}


def _make_run(tmp_path, iterations=(10,), ema=True):
    """A run folder as the trainer writes it: config.yaml + models/net_g_<iter>.pth."""
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "tiny", "scale": 4,
                                                     "network_g": dict(TINY)}))
    nets = {}
    for it in iterations:
        torch.manual_seed(it)
        g = create_generator(**TINY)
        ckpt = {"params": g.state_dict()}
        if ema:
            ema_net = create_generator(**TINY)
            ckpt["params_ema"] = ema_net.state_dict()
            nets[it] = ema_net
        else:
            nets[it] = g
        torch.save(ckpt, run / "models" / f"net_g_{it}.pth")
    return run, nets


def test_tile_starts_cover_and_end_flush():
    assert tile_starts(10, 16, 4) == [0]
    assert tile_starts(40, 16, 4) == [0, 12, 24]
    assert tile_starts(41, 16, 4) == [0, 12, 24, 25]


def test_tiled_equals_untiled_for_a_conv_net():
    torch.manual_seed(0)
    g = create_generator(**TINY).eval()
    with torch.no_grad():  # strong weights, so that missing context shows (fresh init is ~identity)
        for m in g.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.normal_(0, 0.15)
    lr = torch.rand(1, 3, 45, 38)
    with torch.no_grad():
        full = restore(g, lr)
        # receptive field radius of this net: 5 LR pixels <= overlap / 4
        exact = restore(g, lr, tile=28, overlap=20)
        seams = restore(g, lr, tile=16, overlap=8)
    assert full.std() > 0.1
    assert exact.shape == full.shape == (1, 3, 180, 152)
    assert (exact - full).abs().max() < 1e-5
    assert 1e-3 < (seams - full).abs().mean() < 0.02  # overlap too small: blended, not exact
    with pytest.raises(ConfigError, match="overlap"):
        restore(g, lr, tile=16, overlap=16)


def test_swinir_runs_tiled():
    g = create_generator("swinir", embed_dim=12, depths=[2], num_heads=[2], window_size=4,
                         num_feat=8).eval()
    lr = torch.rand(1, 3, 20, 18)
    with torch.no_grad():
        full, tiled = restore(g, lr), restore(g, lr, tile=12, overlap=8)
    assert tiled.shape == full.shape and (tiled - full).abs().mean() < 0.05


def test_run_folder_resolution(tmp_path, caplog):
    run, nets = _make_run(tmp_path, iterations=(10, 20))
    (run / "models" / "net_g_30.pth").write_bytes(b"truncated")  # a broken newest file
    loaded = load_generator(run)
    assert loaded.iteration == 20 and loaded.weights_key == "params_ema"
    assert "net_g_30.pth" in caplog.text
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, nets[20].state_dict()[k])
    # a checkpoint file inside a run folder finds the run's config
    again = load_generator(run / "models" / "net_g_10.pth", key="params")
    assert again.iteration == 10 and again.weights_key == "params"


def test_checkpoint_file_needs_an_architecture(tmp_path):
    g = create_generator(**TINY)
    bare = tmp_path / "bare.pth"
    torch.save({"params": g.state_dict()}, bare)
    with pytest.raises(ConfigError, match="name the architecture") as err:
        load_generator(bare)
    assert err.value.option == "arch"  # the command line names its flag (--arch)
    assert load_generator(bare, arch=dict(TINY)).weights_key == "params"
    embedded = tmp_path / "embedded.pth"
    torch.save({"params": g.state_dict(), "network_g": dict(TINY), "scale": 4}, embedded)
    assert load_generator(embedded).arch["type"] == "srresnet"
    with pytest.raises(ConfigError, match="no such run folder"):
        load_generator(tmp_path / "nothing")


def test_parse_set_args():
    assert parse_set_args(["A=/x/y", "/p/Set14"]) == {"A": "/x/y", "Set14": "/p/Set14"}
    with pytest.raises(ConfigError, match="twice"):
        parse_set_args(["A=/x", "A=/y"])


def test_cli_evaluate_on_set5(tmp_path, capsys):
    root = shared_path("sr", "Set5")
    run, _ = _make_run(tmp_path)
    out_json, images = tmp_path / "res.json", tmp_path / "images"
    rc = main(["evaluate", str(run), "--set", f"Set5={root}", "-m", "psnr", "--json",
               str(out_json), "--save-images", str(images), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "border crop 4 px" in text and "PSNR-Y dB (matlab, crop 4)" in text
    assert "mean (5)" in text
    res = json.loads(out_json.read_text())
    set5 = res["sets"]["Set5"]
    assert set5["images"] == 5 and len(set5["per_image"]) == 5
    assert set(set5["mean"]) == {"psnr_y", "ssim_y", "psnr"}
    assert 5 < set5["mean"]["psnr_y"] < 40
    for item in set5["per_image"]:
        sr = read_image(images / "Set5" / f"{item['image']}.png")
        hr = read_image(root / "HR" / f"{item['image']}.png")
        assert sr.shape == hr.shape


def test_cli_errors_exit_2(tmp_path, capsys):
    run, _ = _make_run(tmp_path)
    assert main(["evaluate", str(run), "--set", f"X={tmp_path / 'none'}"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--set", "S=builtin:samples/32", "-m", "nope"]) == 2
    assert "unknown metric" in capsys.readouterr().err


def test_cli_restore_file_and_folder(tmp_path):
    run, nets = _make_run(tmp_path, ema=False)
    src = tmp_path / "in"
    write_image(src / "a.png", torch.rand(3, 12, 10))
    write_image(src / "sub" / "b.jpg", torch.rand(3, 8, 8))
    assert main(["restore", str(run), str(src / "a.png"), str(tmp_path / "a_x4.png"), "-q"]) == 0
    out = read_image(tmp_path / "a_x4.png")
    assert out.shape == (3, 48, 40)
    with torch.no_grad():
        expected = restore(nets[10].eval(), read_image(src / "a.png")[None])[0]
    assert (out - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert main(["restore", str(run), str(src), str(tmp_path / "out"), "--tile", "6",
                 "--tile-overlap", "4", "-q"]) == 0
    assert read_image(tmp_path / "out" / "sub" / "b.png").shape == (3, 32, 32)
