"""The perceptual objective (optiqa.train.objective): composition, skipped terms, fidelity = the
metric's own loss, the straight-through clamp, the D terms, config construction, bf16."""
import pytest
import torch
from torch import nn

import optiqa
from optiqa.core.errors import ConfigError, InputError, UnknownNameError
from optiqa.nets import create_discriminator
from optiqa.train.gan import discriminator_loss, generator_adversarial_loss
from optiqa.train.objective import PerceptualObjective, straight_through_clamp


def _pair(size=48, n=2):
    g = torch.Generator().manual_seed(size)
    hr = torch.nn.functional.avg_pool2d(torch.rand(n, 3, size, size, generator=g), 3, 1, 1)
    sr = (hr + 0.05 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return sr, hr


class ExplodingMetric(nn.Module):
    """Stands in for a fidelity metric that must never be called."""

    def loss(self, x, ref):
        raise AssertionError("a zero-weight term was computed")


@pytest.mark.parametrize("gan_type", ["vanilla", "hinge", "lsgan", "ragan"])
def test_total_is_weighted_sum_of_logged_terms(gan_type):
    sr, hr = _pair()
    fake, real = torch.randn(2), torch.randn(2)
    obj = PerceptualObjective(pixel_weight=0.5, fidelity_metric="mse", fidelity_weight=2.0,
                              gan_type=gan_type, adversarial_weight=0.01)
    total, terms = obj.generator_terms(sr, hr, fake, real)
    assert set(terms) == {"pixel", "fidelity", "adversarial", "total"}
    assert terms["pixel"].item() == pytest.approx((sr - hr).abs().mean().item(), rel=1e-6)
    assert terms["fidelity"].item() == pytest.approx((sr - hr).pow(2).mean().item(), rel=1e-6)
    adv = generator_adversarial_loss(gan_type, fake, real)
    assert terms["adversarial"].item() == pytest.approx(adv.item(), rel=1e-6)
    weighted = 0.5 * terms["pixel"] + 2.0 * terms["fidelity"] + 0.01 * terms["adversarial"]
    assert total.item() == pytest.approx(weighted.item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(total.item())
    assert not any(v.requires_grad for v in terms.values()), "logged terms must be detached"


def test_zero_weight_terms_are_absent_and_not_computed():
    sr, hr = _pair()
    obj = PerceptualObjective(pixel_weight=1.0, fidelity_metric=ExplodingMetric(),
                              fidelity_weight=0.0, adversarial_weight=0.0)
    assert obj.fidelity_metric is None and not obj.uses_gan
    total, terms = obj.generator_terms(sr, hr)  # no logits needed without a GAN term
    assert set(terms) == {"pixel", "total"}
    assert total.item() == pytest.approx(terms["pixel"].item())
    obj = PerceptualObjective(pixel_weight=0.0, fidelity_metric="l1", fidelity_weight=1.0)
    assert set(obj.generator_terms(sr, hr)[1]) == {"fidelity", "total"}
    obj = PerceptualObjective(pixel_weight=0.0, adversarial_weight=1.0)
    assert set(obj.generator_terms(sr, hr, torch.zeros(2))[1]) == {"adversarial", "total"}
    _, d_terms = obj.discriminator_terms(torch.zeros(2), torch.zeros(2))
    assert set(d_terms) == {"d_loss", "d_real", "d_fake", "total"}  # r1 off


@pytest.mark.parametrize("name", ["psnr", "ssim", "dists_vgg16_r"])
def test_fidelity_term_equals_the_metrics_loss(name):
    sr, hr = _pair(64)
    metric = optiqa.create_metric(name)
    obj = PerceptualObjective(pixel_weight=0.0, fidelity_metric=name, fidelity_weight=1.0)
    total, terms = obj.generator_terms(sr, hr)
    expected = metric.loss(sr, hr)
    assert terms["fidelity"].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    assert total.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-7)
    # a metric module can be passed directly too
    obj2 = PerceptualObjective(pixel_weight=0.0, fidelity_metric=metric, fidelity_weight=3.0)
    assert obj2.generator_terms(sr, hr)[0].item() == pytest.approx(3 * expected.item(), rel=1e-5)


def test_straight_through_clamp_keeps_overshooting_pixels_trainable():
    x = torch.tensor([-0.3, 0.4, 1.2], requires_grad=True)
    y = straight_through_clamp(x)
    assert y.tolist() == pytest.approx([0.0, 0.4, 1.0])
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0]
    # through the objective: an output at 1.2 where the reference is 0.5 is pulled down by the
    # fidelity term alone, and the metric sees a valid [0, 1] image (no InputError)
    hr = torch.full((1, 3, 16, 16), 0.5)
    sr = hr.clone()
    sr[..., 0, 0] = 1.2
    sr.requires_grad_(True)
    obj = PerceptualObjective(pixel_weight=0.0, fidelity_metric="mse", fidelity_weight=1.0)
    total, terms = obj.generator_terms(sr, hr)
    assert terms["fidelity"].item() == pytest.approx(0.25 * 3 / sr.numel())  # (1.0 - 0.5)^2
    total.backward()
    assert (sr.grad[..., 0, 0] > 0).all()


def test_non_finite_output_gives_nan_total_not_an_exception():
    sr, hr = _pair()
    sr[0, 0, 3, 3] = float("nan")
    obj = PerceptualObjective(pixel_weight=0.0, fidelity_metric="ssim", fidelity_weight=1.0)
    total, terms = obj.generator_terms(sr, hr)
    assert torch.isnan(total) and torch.isnan(terms["fidelity"])
    with pytest.raises(InputError, match="shapes differ"):  # other input errors still surface
        obj.generator_terms(sr[..., :40].nan_to_num(0.5), hr)


def test_discriminator_terms_and_r1():
    D = create_discriminator("patchgan", ndf=8).train()
    real = torch.rand(2, 3, 32, 32).requires_grad_(True)
    fake = torch.rand(2, 3, 32, 32)
    real_logits, fake_logits = D(real), D(fake)
    obj = PerceptualObjective(adversarial_weight=0.1, gan_type="hinge", r1_weight=5.0)
    total, terms = obj.discriminator_terms(real_logits, fake_logits, real)
    assert set(terms) == {"d_loss", "r1", "d_real", "d_fake", "total"}
    assert terms["d_loss"].item() == pytest.approx(
        discriminator_loss("hinge", real_logits, fake_logits).item(), rel=1e-6)
    assert terms["d_real"].item() == pytest.approx(real_logits.mean().item(), rel=1e-6)
    assert terms["d_fake"].item() == pytest.approx(fake_logits.mean().item(), rel=1e-6)
    assert terms["r1"].item() > 0
    assert total.item() == pytest.approx((terms["d_loss"] + 5.0 * terms["r1"]).item(), rel=1e-6)
    total.backward()
    assert all(p.grad is not None for p in D.parameters())
    with pytest.raises(InputError, match="real_images"):
        obj.discriminator_terms(D(real), D(fake))


def test_ragan_generator_needs_real_logits():
    sr, hr = _pair()
    obj = PerceptualObjective(adversarial_weight=0.005, gan_type="ragan")
    with pytest.raises(InputError, match="real_logits"):
        obj.generator_terms(sr, hr, torch.zeros(2))
    with pytest.raises(InputError, match="fake_logits"):
        obj.generator_terms(sr, hr)


def test_from_config_basicsr_style():
    obj = PerceptualObjective.from_config(
        pixel_opt={"weight": 0.01}, fidelity_opt={"metric": "ssim", "weight": 1.0},
        gan_opt={"type": "ragan", "weight": 0.005, "r1_weight": 0.0, "d_steps": 2})
    assert (obj.pixel_weight, obj.fidelity_weight, obj.adversarial_weight) == (0.01, 1.0, 0.005)
    assert obj.gan_type == "ragan" and obj.d_steps == 2 and obj.fidelity_name == "ssim"
    assert obj.uses_gan
    pixel_only = PerceptualObjective.from_config(pixel_opt={"weight": 1.0})
    assert pixel_only.fidelity_metric is None and not pixel_only.uses_gan
    with pytest.raises(ConfigError, match="unknown key train.gan_opt.gamma"):
        PerceptualObjective.from_config(pixel_opt={"weight": 1}, gan_opt={"gamma": 1})
    with pytest.raises(UnknownNameError, match="unknown metric 'ssim2'"):
        PerceptualObjective.from_config(fidelity_opt={"metric": "ssim2", "weight": 1})
    with pytest.raises(UnknownNameError, match="unknown gan type 'wgan'"):
        PerceptualObjective.from_config(pixel_opt={"weight": 1}, gan_opt={"type": "wgan"})
    with pytest.raises(ConfigError, match="empty"):
        PerceptualObjective.from_config(pixel_opt={"weight": 0})
    with pytest.raises(ConfigError, match="d_steps"):
        PerceptualObjective(d_steps=0)
    with pytest.raises(ConfigError, match="adversarial_weight must be"):
        PerceptualObjective(adversarial_weight=-1.0)


def test_bf16_autocast_gives_finite_values_and_gradients():
    g_net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    D = create_discriminator("patchgan", ndf=8).train()
    _, hr = _pair(48)
    obj = PerceptualObjective(pixel_weight=1.0, fidelity_metric="ssim", fidelity_weight=1.0,
                              gan_type="vanilla", adversarial_weight=0.1, r1_weight=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sr = hr + g_net(hr)  # overshoots [0, 1] a little: the clamp handles it
        g_total, g_terms = obj.generator_terms(sr, hr, D(sr))
    g_total.backward()
    assert all(torch.isfinite(v) for v in g_terms.values())
    assert all(torch.isfinite(p.grad).all() for p in g_net.parameters())
    real = hr.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d_total, d_terms = obj.discriminator_terms(D(real), D(sr.detach()), real)
    d_total.backward()
    assert set(d_terms) == {"d_loss", "r1", "d_real", "d_fake", "total"}
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in d_terms.values())
