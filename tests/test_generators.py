"""Generators: shapes, SwinIR attention paths, official checkpoint key mapping."""
from __future__ import annotations

import re

import pytest
import torch

from optiqa.core.errors import ConfigError, UnknownNameError
from optiqa.nets import create_generator, load_generator_checkpoint
from optiqa.nets.generators import parse_arch
from optiqa.nets.window_attention import relative_position_index, shifted_window_mask

TINY_SWINIR = dict(embed_dim=12, depths=[2, 2], num_heads=[2, 2], window_size=4, num_feat=8)


@pytest.fixture(scope="module")
def classical_swinir():
    return create_generator("swinir").eval()  # the real classical x4 configuration (11.9M)


def test_swinir_classical_shapes(classical_swinir):
    with torch.no_grad():
        for size in ((16, 16), (13, 19)):
            y = classical_swinir(torch.rand(1, 3, *size))
            assert y.shape == (1, 3, 4 * size[0], 4 * size[1]) and torch.isfinite(y).all()


@pytest.mark.parametrize("kind,opts", [
    ("swinir_light", {}),
    ("rrdbnet", {"num_block": 2}),
    ("srresnet", {"num_feat": 16, "num_block": 2}),
    ("bicubic", {}),
])
@pytest.mark.parametrize("size", [(16, 16), (13, 19)])
def test_x4_output_shapes(kind, opts, size):
    g = create_generator(kind, **opts).eval()
    assert g.scale == 4
    with torch.no_grad():
        y = g(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, 4 * size[0], 4 * size[1])
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kind,opts,scale", [
    ("swinir", dict(TINY_SWINIR, scale=2), 2),
    ("swinir", dict(TINY_SWINIR, scale=3), 3),
    ("swinir_light", dict(TINY_SWINIR, scale=3), 3),
    ("swinir", dict(TINY_SWINIR, upsampler="nearest+conv"), 4),
    ("swinir", dict(TINY_SWINIR, upsampler="", resi_connection="3conv"), 1),
    ("rrdbnet", dict(num_block=1, num_feat=8, num_grow_ch=4, scale=2), 2),
    ("rrdbnet", dict(num_block=1, num_feat=8, num_grow_ch=4, scale=1), 1),
    ("srresnet", dict(num_feat=8, num_block=1, upscale=3), 3),
    ("srresnet", dict(num_feat=8, num_block=1, scale=1), 1),
])
def test_other_scales(kind, opts, scale):
    g = create_generator(kind, **opts).eval()
    with torch.no_grad():
        y = g(torch.rand(1, 3, 11, 9))
    assert g.scale == scale and y.shape == (1, 3, 11 * scale, 9 * scale)


def test_srresnet_x1_is_the_input_plus_a_residual():
    """Scale 1 (denoising, deblurring) keeps the global skip: zero last conv -> the input."""
    g = create_generator("srresnet", num_feat=8, num_block=1, scale=1).eval()
    torch.nn.init.zeros_(g.conv_last.weight)
    torch.nn.init.zeros_(g.conv_last.bias)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert torch.equal(g(x), x)


def test_registry_errors():
    with pytest.raises(UnknownNameError, match="swinir"):
        create_generator("edsr")
    with pytest.raises(ConfigError, match="embed_dimm"):
        create_generator("swinir", embed_dimm=3)
    with pytest.raises(ConfigError, match="scales 1, 2 and 4"):
        create_generator("rrdbnet", scale=3)


def test_parse_arch():
    assert parse_arch("srresnet:num_feat=32,num_block=4") == {
        "type": "srresnet", "num_feat": 32, "num_block": 4}
    assert parse_arch("swinir:depths=[6, 6],attn_impl=sdpa") == {
        "type": "swinir", "depths": [6, 6], "attn_impl": "sdpa"}
    with pytest.raises(ConfigError):
        parse_arch("swinir:depths")


# ---------------------------------------------------------------- SwinIR attention
def test_relative_index_and_shift_mask_known_values():
    idx = relative_position_index(2)
    # tokens (0,0),(0,1),(1,0),(1,1); offsets (dy+1)*3 + (dx+1)
    assert idx.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert mask[0].abs().sum() == 0  # the top-left window holds one region only
    assert (mask[3] != 0).any() and set(mask.unique().tolist()) == {0.0, -100.0}


@pytest.mark.parametrize("pad", [False, True])
def test_sdpa_equals_explicit_attention(pad):
    torch.manual_seed(0)
    opts = dict(TINY_SWINIR, num_heads=[3, 3], embed_dim=15)  # head dim 5 (padded to 8)
    a = create_generator("swinir", **opts).eval()
    b = create_generator("swinir", **opts, attn_impl="sdpa", pad_head_dim=pad).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 3, 10, 13, requires_grad=True)
    ya, yb = a(x), b(x)
    assert torch.allclose(ya, yb, atol=1e-5)
    ga = torch.autograd.grad(ya.square().mean(), list(a.parameters()) + [x])
    gb = torch.autograd.grad(yb.square().mean(), list(b.parameters()) + [x])
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, atol=1e-5, rtol=1e-4)


def test_shift_mask_is_cached_per_size():
    g = create_generator("swinir", **TINY_SWINIR).eval()
    with torch.no_grad():
        g(torch.rand(1, 3, 8, 8))
        g(torch.rand(1, 3, 7, 6))  # padded to 8x8: same mask
        g(torch.rand(1, 3, 12, 8))
    assert sorted(k[:2] for k in g._mask_cache) == [(8, 8), (12, 8)]


# ---------------------------------------------------------------- checkpoints
# Key names and shapes of the official classical SwinIR-x4 file (network_swinir.py, upscale=4,
# embed_dim=180, window 8, mlp_ratio 2, num_feat 64).
OFFICIAL_SWINIR_SHAPES = {
    "conv_first.weight": (180, 3, 3, 3),
    "patch_embed.norm.weight": (180,),
    "layers.0.residual_group.blocks.0.attn.relative_position_bias_table": (225, 6),
    "layers.0.residual_group.blocks.1.attn.qkv.weight": (540, 180),
    "layers.5.residual_group.blocks.5.mlp.fc1.weight": (360, 180),
    "layers.5.residual_group.blocks.5.mlp.fc2.weight": (180, 360),
    "layers.5.conv.weight": (180, 180, 3, 3),
    "norm.bias": (180,),
    "conv_after_body.weight": (180, 180, 3, 3),
    "conv_before_upsample.0.weight": (64, 180, 3, 3),
    "upsample.0.weight": (256, 64, 3, 3),
    "upsample.2.weight": (256, 64, 3, 3),
    "conv_last.weight": (3, 64, 3, 3),
}


def _official_swinir_state(model, img_size=64):
    """Our state dict plus the derived buffers the official file carries."""
    sd = dict(model.state_dict())
    for name, mod in model.named_modules():
        if name.endswith(".attn"):
            sd[name + ".relative_position_index"] = relative_position_index(mod.window_size)
            shift = int(name.split(".")[-2]) % 2  # odd blocks are shifted
            if shift:
                ws = mod.window_size
                sd[name.rsplit(".", 1)[0] + ".attn_mask"] = shifted_window_mask(
                    img_size, img_size, ws, ws // 2)
    return sd


def test_swinir_classical_names_follow_official(classical_swinir):
    sd = classical_swinir.state_dict()
    for k, shape in OFFICIAL_SWINIR_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    assert len([k for k in sd if k.endswith("relative_position_bias_table")]) == 36
    light = create_generator("swinir_light").state_dict()
    assert tuple(light["upsample.0.weight"].shape) == (48, 60, 3, 3)  # pixelshuffledirect


def test_swinir_official_checkpoint_roundtrip(tmp_path):
    src = create_generator("swinir_light").eval()
    ema = {k: v + 0.01 for k, v in src.state_dict().items()}
    ckpt = {"params": _official_swinir_state(src), "params_ema": _official_swinir_state(src)}
    ckpt["params_ema"].update(ema)
    path = tmp_path / "001_lightweightSR_x4.pth"
    torch.save(ckpt, path)
    dst = create_generator("swinir_light").eval()
    info = load_generator_checkpoint(dst, path)
    assert info.key == "params_ema" and info.layout == "swinir-official"
    for k, v in dst.state_dict().items():
        assert torch.equal(v, ema[k]), k
    info = load_generator_checkpoint(dst, path, key="params")
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
    bad = _official_swinir_state(src)
    k = next(k for k in bad if k.endswith("relative_position_index"))
    bad[k] = bad[k].flip(0)
    with pytest.raises(ConfigError, match="relative position index"):
        load_generator_checkpoint(dst, {"params": bad})


def _to_esrgan_2018(sd, num_block):
    """Rename BasicSR RRDBNet keys to the original ESRGAN release (test-side inverse mapping)."""
    out = {}
    fixed = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}",
             "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
             "conv_last": "model.10"}
    for k, v in sd.items():
        m = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", k)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
        else:
            layer, leaf = k.rsplit(".", 1)
            out[f"{fixed[layer]}.{leaf}"] = v
    return out


def _to_esrgan_2019(sd):
    ren = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2",
           "conv_hr": "HRconv"}
    out = {}
    for k, v in sd.items():
        m = re.match(r"body\.(\d+)\.rdb(\d)\.(.*)$", k)
        if m:
            out[f"RRDB_trunk.{m[1]}.RDB{m[2]}.{m[3]}"] = v
        else:
            layer, leaf = k.rsplit(".", 1)
            out[f"{ren.get(layer, layer)}.{leaf}"] = v
    return out


def test_rrdbnet_checkpoint_layouts(tmp_path):
    from optiqa.nets.rrdbnet import RRDBNet

    full = create_generator("rrdbnet").state_dict()  # the real ESRGAN configuration: 23 blocks
    assert "body.22.rdb3.conv5.weight" in full and "conv_up2.weight" in full
    old = _to_esrgan_2018(full, 23)
    assert "model.1.sub.23.weight" in old and "model.1.sub.0.RDB1.conv1.0.weight" in old
    converted, layout = RRDBNet.convert_state_dict(old)
    assert layout.startswith("esrgan-2018") and converted.keys() == full.keys()
    assert all(converted[k] is full[k] for k in full)

    opts = dict(num_block=3, num_feat=16, num_grow_ch=8)  # loads on a small one (fast)
    sd = create_generator("rrdbnet", **opts).state_dict()
    for state, layout in ((_to_esrgan_2018(sd, 3), "esrgan-2018"),
                          (_to_esrgan_2019(sd), "esrgan-2019"),
                          ({"params": {"module." + k: v for k, v in sd.items()}}, "basicsr")):
        dst = create_generator("rrdbnet", **opts)
        info = load_generator_checkpoint(dst, state)
        assert info.layout.startswith(layout)
        for k, v in dst.state_dict().items():
            assert torch.equal(v, sd[k]), (layout, k)
    path = tmp_path / "RRDB_ESRGAN_x4.pth"
    torch.save(_to_esrgan_2018(sd, 3), path)
    dst = create_generator("rrdbnet", **opts)
    assert load_generator_checkpoint(dst, path).key is None
    assert torch.equal(dst.state_dict()["conv_body.weight"], sd["conv_body.weight"])


def test_mismatched_checkpoint_errors(tmp_path):
    small = create_generator("srresnet", num_feat=8, num_block=2)
    big = create_generator("srresnet", num_feat=16, num_block=3)
    with pytest.raises(ConfigError, match=r"unexpected: body\.2\..*shape mismatch"):
        load_generator_checkpoint(small, {"params": big.state_dict()})
    with pytest.raises(ConfigError, match="no 'params_ema'"):
        load_generator_checkpoint(small, {"params": small.state_dict()}, key="params_ema")
    trunc = tmp_path / "cut.pth"
    torch.save({"params": small.state_dict()}, tmp_path / "ok.pth")
    trunc.write_bytes((tmp_path / "ok.pth").read_bytes()[:500])
    with pytest.raises(ConfigError, match="cut.pth: cannot read checkpoint"):
        load_generator_checkpoint(small, trunc)
