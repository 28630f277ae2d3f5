"""Adversarial losses as pure functions of discriminator logits.

Logits may be image-level ``(N,)`` or patch-level ``(N, 1, h, w)``: every expectation below is a
mean over *all* elements, i.e. each patch of a patch discriminator counts as one sample. Losses are
computed in float32 whatever the logits' dtype (bf16 logits from autocast lose too much precision in
``log(1 + exp(.))``), and the returned scalars are always *minimised*.

``softplus(t) = log(1 + exp(t))``, so ``-log(sigmoid(t)) = softplus(-t)`` and
``-log(1 - sigmoid(t)) = softplus(t)``; these are the numerically stable forms of binary cross
entropy with logits.

=========  ================================================  =====================================
type       discriminator loss                                generator loss
=========  ================================================  =====================================
vanilla    E[softplus(-D(x))] + E[softplus(D(G(z)))]         E[softplus(-D(G(z)))] (non-saturating)
hinge      E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]          -E[D(G(z))]
lsgan      E[(D(x) - 1)^2] + E[D(G(z))^2]                    E[(D(G(z)) - 1)^2]
ragan      (E[softplus(-(D(x) - m_f))] +                     (E[softplus(D(x) - m_f)] +
            E[softplus(D(G(z)) - m_r)]) / 2                   E[softplus(-(D(G(z)) - m_r))]) / 2
=========  ================================================  =====================================

with ``m_r = E[D(x)]`` and ``m_f = E[D(G(z))]`` (batch means of the logits).

References: Goodfellow et al., Generative adversarial nets, NeurIPS 2014 (vanilla and its
non-saturating generator loss); Lim & Ye, Geometric GAN, 2017 and Miyato et al., Spectral
normalization for GANs, ICLR 2018 (hinge); Mao et al., Least squares GANs, ICCV 2017 (lsgan, with
the 0-1 coding and without the paper's factor 1/2, as in pix2pix/BasicSR: the weight absorbs it);
Jolicoeur-Martineau, The relativistic discriminator, ICLR 2019 and Wang et al., ESRGAN, ECCVW 2018
(ragan; halved as in the official ESRGAN code so that its published weight 5e-3 carries over);
Mescheder et al., Which training methods for GANs do actually converge?, ICML 2018 (R1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from optiqa.core.errors import InputError, UnknownNameError

GAN_TYPES = ("vanilla", "hinge", "lsgan", "ragan")


def check_gan_type(gan_type: str) -> str:
    """Return ``gan_type`` if it is known, else raise :class:`UnknownNameError`."""
    if gan_type not in GAN_TYPES:
        raise UnknownNameError("gan type", gan_type, GAN_TYPES)
    return gan_type


def _f32(logits: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise InputError(f"{what}: expected a floating-point tensor of discriminator logits")
    if logits.numel() == 0:
        raise InputError(f"{what}: empty tensor of logits")
    return logits.float()


def generator_adversarial_loss(gan_type: str, fake_logits: torch.Tensor,
                               real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The generator's adversarial loss (scalar, minimised) for ``gan_type`` (see module table).

    ``fake_logits = D(G(z))`` must carry the graph back to the generator. ``real_logits = D(x)`` is
    needed only by ``ragan``; it is detached here, because the generator step must not send
    gradients into the discriminator.
    """
    check_gan_type(gan_type)
    fake = _f32(fake_logits, "fake_logits")
    if gan_type == "vanilla":
        return F.softplus(-fake).mean()
    if gan_type == "hinge":
        return -fake.mean()
    if gan_type == "lsgan":
        return (fake - 1).pow(2).mean()
    if real_logits is None:
        raise InputError("the 'ragan' generator loss needs real_logits (D of the real images)")
    real = _f32(real_logits, "real_logits").detach()
    # Generator's view: real data should look *less* real than the average fake, and fakes more
    # real than the average real; it receives gradients from both terms (via m_f in the first).
    return 0.5 * (F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean())


def discriminator_loss(gan_type: str, real_logits: torch.Tensor,
                       fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss (scalar, minimised) for ``gan_type`` (see module table).

    ``fake_logits`` should come from detached generator outputs. For ``ragan`` both branches keep
    their full gradient (the relativistic means ``m_r``, ``m_f`` are not detached), which is the
    paper's objective; BasicSR detaches them only because it back-propagates the two halves
    separately.
    """
    check_gan_type(gan_type)
    real = _f32(real_logits, "real_logits")
    fake = _f32(fake_logits, "fake_logits")
    if gan_type == "vanilla":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if gan_type == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if gan_type == "lsgan":
        return (real - 1).pow(2).mean() + fake.pow(2).mean()
    return 0.5 * (F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean())


def r1_forward(discriminator, real_images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D(x), x)`` ready for :func:`r1_penalty`: ``x`` is a detached copy with ``requires_grad``.

    The forward runs with ``scaled_dot_product_attention`` restricted to its math backend: the fused
    kernels (flash / memory-efficient, on CPU and CUDA) have no double backward, which R1 needs
    through transformer backbones (dinov2_s14, clip_vit_b16, swin_t). Use it only on steps that
    compute R1; plain D forwards keep the fast kernels.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x = real_images.detach().requires_grad_(True)
    with sdpa_kernel([SDPBackend.MATH]):
        return discriminator(x), x


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty on real data: ``E_x[ ||grad_x D(x)||^2 ]`` (Mescheder et al. 2018).

    The caller scales it (the paper adds ``gamma / 2 * R1`` to the discriminator loss).
    ``real_images`` must have ``requires_grad=True`` *before* ``real_logits = D(real_images)`` is
    computed; :func:`r1_forward` does both (and makes attention twice differentiable). For
    patch-level logits, ``D(x)`` is the sum over locations (as in StyleGAN2's code), so the penalty
    is on the gradient of the summed logit map. The graph is kept (``create_graph=True``) so that
    the penalty itself can be back-propagated into D.
    """
    if not real_images.requires_grad:
        raise InputError("r1_penalty: real_images must have requires_grad=True before the "
                         "discriminator's forward pass")
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()
