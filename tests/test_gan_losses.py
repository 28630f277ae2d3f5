"""GAN losses (optiqa.train.gan): known values by hand, gradient signs, patch logits, R1."""
import math

import pytest
import torch
import torch.nn.functional as F

from optiqa.core.errors import InputError, UnknownNameError
from optiqa.train.gan import (GAN_TYPES, discriminator_loss, generator_adversarial_loss,
                              r1_forward, r1_penalty)

LOG2 = math.log(2.0)


def sp(t: float) -> float:  # softplus by hand
    return math.log1p(math.exp(t))


def T(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_all_zero_logits():
    zero = torch.zeros(4)
    expected_g = {"vanilla": LOG2, "hinge": 0.0, "lsgan": 1.0, "ragan": LOG2}
    expected_d = {"vanilla": 2 * LOG2, "hinge": 2.0, "lsgan": 1.0, "ragan": LOG2}
    for t in GAN_TYPES:
        assert generator_adversarial_loss(t, zero, zero).item() == pytest.approx(expected_g[t])
        assert discriminator_loss(t, zero, zero).item() == pytest.approx(expected_d[t])


def test_vanilla_known_values():
    # G: -log sigmoid(2) = log(1 + e^-2); D: -log sigmoid(3) - log(1 - sigmoid(-1))
    assert generator_adversarial_loss("vanilla", T(2.0)).item() == pytest.approx(sp(-2))
    assert discriminator_loss("vanilla", T(3.0), T(-1.0)).item() == pytest.approx(sp(-3) + sp(-1))
    # the non-saturating G loss equals BCE(D(G(z)), 1)
    f = torch.randn(16)
    torch.testing.assert_close(generator_adversarial_loss("vanilla", f),
                               F.binary_cross_entropy_with_logits(f, torch.ones(16)))


def test_hinge_known_values():
    real, fake = T(2.0, 0.5), T(-2.0, 0.5)
    # real: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; fake: relu(1-2)=0, relu(1+0.5)=1.5 -> 0.75
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(1.0)
    assert generator_adversarial_loss("hinge", fake).item() == pytest.approx(0.75)


def test_lsgan_known_values():
    # real: ((1-1)^2 + (0-1)^2)/2 = 0.5; fake: (0^2 + 1^2)/2 = 0.5
    assert discriminator_loss("lsgan", T(1.0, 0.0), T(0.0, 1.0)).item() == pytest.approx(1.0)
    assert generator_adversarial_loss("lsgan", T(0.0, 1.0)).item() == pytest.approx(0.5)
    assert generator_adversarial_loss("lsgan", T(3.0)).item() == pytest.approx(4.0)


def test_ragan_known_values_and_esrgan_formula():
    real, fake = T(1.0, 3.0), T(-1.0, 1.0)  # mean real 2, mean fake 0
    # D: (mean softplus(-(r - 0)) + mean softplus(f - 2)) / 2 = (sp(-1) + sp(-3)) / 2
    assert discriminator_loss("ragan", real, fake).item() == pytest.approx((sp(-1) + sp(-3)) / 2)
    # G: (mean softplus(r - 0) + mean softplus(-(f - 2))) / 2 = (sp(1) + sp(3)) / 2
    assert generator_adversarial_loss("ragan", fake, real).item() == pytest.approx(
        (sp(1) + sp(3)) / 2)
    # ESRGAN's code: (BCE(r - mean f, 1) + BCE(f - mean r, 0)) / 2 and the swapped targets for G
    r, f = torch.randn(8), torch.randn(8)
    bce = F.binary_cross_entropy_with_logits
    one, zero = torch.ones(8), torch.zeros(8)
    torch.testing.assert_close(discriminator_loss("ragan", r, f),
                               (bce(r - f.mean(), one) + bce(f - r.mean(), zero)) / 2)
    torch.testing.assert_close(generator_adversarial_loss("ragan", f, r),
                               (bce(r - f.mean(), zero) + bce(f - r.mean(), one)) / 2)


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_gradient_signs(gan_type):
    g = torch.Generator().manual_seed(1)
    # logits in (0.1, 0.9): inside every loss's active region (hinge margins, lsgan targets 0/1)
    real = (torch.rand(6, generator=g) * 0.8 + 0.1).requires_grad_(True)
    fake = (torch.rand(6, generator=g) * 0.8 + 0.1).requires_grad_(True)
    generator_adversarial_loss(gan_type, fake, real).backward()
    assert (fake.grad < 0).all(), "G loss must decrease when fake logits increase"
    assert real.grad is None, "the G loss must not send gradients into D(real)"
    fake.grad = None
    discriminator_loss(gan_type, real, fake).backward()
    assert (fake.grad > 0).all(), "D loss must increase when fake logits increase"
    assert (real.grad < 0).all(), "D loss must decrease when real logits increase"


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_patch_logits_average_over_all_locations(gan_type):
    real, fake = torch.randn(2, 1, 5, 7), torch.randn(2, 1, 5, 7)
    torch.testing.assert_close(discriminator_loss(gan_type, real, fake),
                               discriminator_loss(gan_type, real.flatten(), fake.flatten()))
    torch.testing.assert_close(generator_adversarial_loss(gan_type, fake, real),
                               generator_adversarial_loss(gan_type, fake.flatten(), real.flatten()))
    assert discriminator_loss(gan_type, real, fake).ndim == 0


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_bf16_logits_give_float32_losses(gan_type):
    real, fake = torch.randn(4).bfloat16(), torch.randn(4).bfloat16()
    assert discriminator_loss(gan_type, real, fake).dtype == torch.float32
    assert generator_adversarial_loss(gan_type, fake, real).dtype == torch.float32


def test_errors():
    with pytest.raises(UnknownNameError, match="unknown gan type 'wgan' .*valid names: hinge"):
        generator_adversarial_loss("wgan", torch.zeros(2))
    with pytest.raises(InputError, match="ragan.*real_logits"):
        generator_adversarial_loss("ragan", torch.zeros(2))
    with pytest.raises(InputError, match="requires_grad"):
        x = torch.rand(2, 3, 4, 4)
        r1_penalty(x.sum((1, 2, 3)), x)


def test_r1_linear_discriminator_known_value():
    # D(x) = <w, x>: grad_x D = w for every image, so R1 = ||w||^2
    w = torch.randn(3, 8, 8)
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    r1 = r1_penalty((x * w).sum((1, 2, 3)), x)
    assert r1.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)


def test_r1_patch_logits_sum_over_locations():
    # logits = channel mean per pixel, (N, 1, H, W): grad of their sum is 1/3 everywhere,
    # so ||grad||^2 = 3 * H * W / 9
    x = torch.rand(2, 3, 5, 6, requires_grad=True)
    r1 = r1_penalty(x.mean(1, keepdim=True), x)
    assert r1.item() == pytest.approx(5 * 6 / 3, rel=1e-5)


def test_r1_is_differentiable_in_discriminator_params():
    # D(x) = a * sum(x^2): grad_x = 2 a x, R1 = 4 a^2 E||x||^2, dR1/da = 8 a E||x||^2
    a = torch.tensor(0.7, requires_grad=True)
    x = torch.rand(3, 3, 4, 4, requires_grad=True)
    r1 = r1_penalty(a * x.pow(2).sum((1, 2, 3)), x)
    sq = x.detach().pow(2).sum((1, 2, 3)).mean()
    assert r1.item() == pytest.approx((4 * 0.49 * sq).item(), rel=1e-5)
    (grad_a,) = torch.autograd.grad(r1, a)
    assert grad_a.item() == pytest.approx((8 * 0.7 * sq).item(), rel=1e-5)


def test_r1_forward_detaches_and_enables_input_gradients():
    x = torch.rand(2, 3, 4, 4)
    logits, xg = r1_forward(lambda t: (t * 2).sum((1, 2, 3)), x)
    assert xg.requires_grad and not x.requires_grad and torch.equal(xg, x)
    assert r1_penalty(logits, xg).item() == pytest.approx(4 * 3 * 4 * 4)  # ||2 * ones||^2
