"""The perceptual training objective: pixel + fidelity + adversarial terms, and the D objective.

Generator:      ``L_G = pixel_weight * L1(sr, hr)
                      + fidelity_weight * metric.loss(clamp01(sr), hr)
                      + adversarial_weight * L_adv(D(sr) [, D(hr)])``
Discriminator:  ``L_D = L_disc(D(hr), D(sr.detach())) + r1_weight * R1``

``metric.loss`` is any registered metric's loss (:func:`optiqa.create_metric`), which is always
minimised whatever the metric's orientation (``1 - SSIM``, ``-PSNR``, ``DISTS``). The GAN losses and
R1 are :mod:`optiqa.train.gan`. ``r1_weight`` multiplies ``R1 = E||grad_x D(x)||^2`` directly, so it
equals ``gamma / 2`` in Mescheder et al. (2018). Terms with weight 0 are not computed at all.
Logged terms are the *unweighted* values (comparable across runs with different weights) and
``total`` is their weighted sum; all logged values are detached float32 tensors (no host sync:
call ``.item()`` only when printing).

Why a straight-through clamp before the fidelity term: metrics reject inputs outside [0, 1], and
generator outputs overshoot slightly, especially early in training. A plain ``clamp`` would give
overshooting pixels zero gradient from the fidelity term, so with ``pixel_weight=0`` a pixel that
overshoots where the metric wants it darker would never be pulled back. The straight-through
estimator (Bengio et al., 2013) feeds the metric the clamped image but passes the gradient as if
the clamp were the identity, which keeps those pixels trainable. Saved and evaluated images are
clamped anyway.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

from optiqa.core.errors import ConfigError, InputError
from optiqa.train.gan import (check_gan_type, discriminator_loss, generator_adversarial_loss,
                              r1_penalty)


def straight_through_clamp(x: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """``clamp(x, lo, hi)`` in the forward pass, identity in the backward pass."""
    return x + (x.clamp(lo, hi) - x).detach()


def pixel_l1(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all pixels and channels, in float32 (bf16 means are too coarse)."""
    return (sr.float() - hr.float()).abs().mean()


class PerceptualObjective(nn.Module):
    """Weighted pixel, fidelity and adversarial terms for G; GAN loss and R1 penalty for D.

    Args:
        pixel_weight: weight of the L1 term.
        fidelity_metric: a registered metric name or an already-created metric module (with a
            ``.loss(x, ref)`` method); needed when ``fidelity_weight > 0``.
        fidelity_weight: weight of ``fidelity_metric.loss``.
        gan_type: ``vanilla`` | ``hinge`` | ``lsgan`` | ``ragan`` (see :mod:`optiqa.train.gan`).
        adversarial_weight: weight of the generator's adversarial loss (0: no GAN).
        r1_weight: weight of the R1 penalty in the discriminator loss (0: off).
        d_steps: discriminator steps per generator step (read by the trainer).
        device: where a metric given by name is created.
    """

    def __init__(self, pixel_weight: float = 1.0, fidelity_metric: str | nn.Module | None = None,
                 fidelity_weight: float = 0.0, gan_type: str = "vanilla",
                 adversarial_weight: float = 0.0, r1_weight: float = 0.0, d_steps: int = 1,
                 device: str | torch.device = "cpu"):
        super().__init__()
        for name, w in (("pixel_weight", pixel_weight), ("fidelity_weight", fidelity_weight),
                        ("adversarial_weight", adversarial_weight), ("r1_weight", r1_weight)):
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not w >= 0:
                raise ConfigError(f"{name} must be a number >= 0, got {w!r}")
        if not isinstance(d_steps, int) or isinstance(d_steps, bool) or d_steps < 1:
            raise ConfigError(f"d_steps must be an integer >= 1, got {d_steps!r}")
        if pixel_weight == 0 and fidelity_weight == 0 and adversarial_weight == 0:
            raise ConfigError("the objective is empty: pixel_weight, fidelity_weight and "
                              "adversarial_weight are all 0")
        self.pixel_weight = float(pixel_weight)
        self.fidelity_weight = float(fidelity_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.r1_weight = float(r1_weight)
        self.gan_type = check_gan_type(gan_type)
        self.d_steps = d_steps
        self.fidelity_metric = None
        self.fidelity_name = None
        if fidelity_weight > 0:
            if fidelity_metric is None:
                raise ConfigError("fidelity_weight > 0 needs a fidelity metric name")
            self.fidelity_metric = _make_metric(fidelity_metric, device)
            info = getattr(self.fidelity_metric, "info", None)
            self.fidelity_name = info.name if info is not None else type(fidelity_metric).__name__

    @property
    def uses_gan(self) -> bool:
        """True when the generator has an adversarial term (the trainer then trains D)."""
        return self.adversarial_weight > 0

    def generator_terms(self, sr: torch.Tensor, hr: torch.Tensor,
                        fake_logits: torch.Tensor | None = None,
                        real_logits: torch.Tensor | None = None):
        """``(total, {"pixel", "fidelity", "adversarial", "total"})`` for one generator step.

        Only terms with a non-zero weight are computed and logged. ``fake_logits = D(sr)`` (with
        graph to G) is needed when ``adversarial_weight > 0``; ``real_logits = D(hr)`` only for
        ``ragan``. A NaN/inf in ``sr`` yields a NaN total (for the trainer's NaN guard) rather than
        the metric's input error.
        """
        weighted, terms = [], {}
        if self.pixel_weight > 0:
            terms["pixel"] = pixel_l1(sr, hr)
            weighted.append(self.pixel_weight * terms["pixel"])
        if self.fidelity_weight > 0:
            terms["fidelity"] = self._fidelity(sr, hr)
            weighted.append(self.fidelity_weight * terms["fidelity"])
        if self.adversarial_weight > 0:
            if fake_logits is None:
                raise InputError("adversarial_weight > 0: generator_terms needs "
                                 "fake_logits = D(sr)")
            terms["adversarial"] = generator_adversarial_loss(self.gan_type, fake_logits,
                                                              real_logits)
            weighted.append(self.adversarial_weight * terms["adversarial"])
        total = torch.stack(weighted).sum()
        logged = {k: v.detach() for k, v in terms.items()}
        logged["total"] = total.detach()
        return total, logged

    def reference_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """``pixel_weight * L1 + fidelity_weight * M``: the generator's non-adversarial terms,
        against which the adversarial term's gradient is measured
        (:mod:`optiqa.train.gradient_ratio`); a constant 0 when both weights are 0."""
        total = sr.new_zeros((), dtype=torch.float32)
        if self.pixel_weight > 0:
            total = total + self.pixel_weight * pixel_l1(sr, hr)
        if self.fidelity_weight > 0:
            total = total + self.fidelity_weight * self._fidelity(sr, hr)
        return total

    def discriminator_terms(self, real_logits: torch.Tensor, fake_logits: torch.Tensor,
                            real_images: torch.Tensor | None = None):
        """``(total, {"d_loss", "r1", "d_real", "d_fake", "total"})`` for one discriminator step.

        ``fake_logits`` must come from detached generator outputs. With ``r1_weight > 0``,
        ``real_images`` (with ``requires_grad=True`` before ``real_logits = D(real_images)``) is
        required. ``d_real``/``d_fake`` are the mean logits, logged to watch the two players.
        """
        d_loss = discriminator_loss(self.gan_type, real_logits, fake_logits)
        total = d_loss
        logged = {"d_loss": d_loss.detach()}
        if self.r1_weight > 0:
            if real_images is None:
                raise InputError("r1_weight > 0: discriminator_terms needs real_images "
                                 "(with requires_grad=True before computing real_logits)")
            r1 = r1_penalty(real_logits, real_images)
            total = total + self.r1_weight * r1
            logged["r1"] = r1.detach()
        logged["d_real"] = real_logits.detach().float().mean()
        logged["d_fake"] = fake_logits.detach().float().mean()
        logged["total"] = total.detach()
        return total, logged

    def _fidelity(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        info = getattr(self.fidelity_metric, "info", None)
        try:
            if info is not None and info.kind == "nr":
                # a no-reference metric (NIQE, BRISQUE) scores the output alone: a naturalness
                # term beside the pixel term that ties the output to the ground truth
                return self.fidelity_metric.loss(straight_through_clamp(sr)).float()
            return self.fidelity_metric.loss(straight_through_clamp(sr), hr).float()
        except InputError:
            # Only a non-finite generator output is turned into NaN; other input errors are real.
            if not torch.isfinite(sr.detach()).all():
                return sr.new_full((), float("nan"), dtype=torch.float32)
            raise

    @classmethod
    def from_config(cls, pixel_opt=None, fidelity_opt=None, gan_opt=None,
                    device: str | torch.device = "cpu") -> PerceptualObjective:
        """Build from BasicSR-style option blocks (mappings or dataclasses; ``None`` = absent).

        ``pixel_opt{weight, type: l1}``, ``fidelity_opt{metric, weight}``,
        ``gan_opt{type, weight, r1_weight, d_steps}``. A missing block means weight 0; a missing
        ``pixel_opt`` too (so a GAN-only objective is expressible). Unknown keys raise
        :class:`ConfigError` naming ``train.<block>.<key>``.
        """
        pixel = _block(pixel_opt, "pixel_opt", {"weight", "type"})
        fidelity = _block(fidelity_opt, "fidelity_opt", {"metric", "weight"})
        # relative: the trainer turns the weight into lambda (optiqa.train.gradient_ratio)
        gan = _block(gan_opt, "gan_opt", {"type", "weight", "r1_weight", "d_steps", "relative"})
        pixel_type = pixel.get("type", "l1")
        if pixel_type not in ("l1", "L1Loss"):
            raise ConfigError(f"train.pixel_opt.type: only 'l1' is supported, got {pixel_type!r}")
        return cls(pixel_weight=pixel.get("weight", 1.0 if pixel else 0.0),
                   fidelity_metric=fidelity.get("metric"),
                   fidelity_weight=fidelity.get("weight", 1.0 if fidelity.get("metric") else 0.0),
                   gan_type=gan.get("type", "vanilla"),
                   adversarial_weight=gan.get("weight", 0.0),
                   r1_weight=gan.get("r1_weight", 0.0),
                   d_steps=gan.get("d_steps", 1),
                   device=device)

    def extra_repr(self) -> str:
        return (f"pixel_weight={self.pixel_weight}, fidelity={self.fidelity_name!r} x "
                f"{self.fidelity_weight}, gan_type={self.gan_type!r}, adversarial_weight="
                f"{self.adversarial_weight}, r1_weight={self.r1_weight}, d_steps={self.d_steps}")


def _block(opt, name: str, valid: set[str]) -> dict:
    if opt is None:
        return {}
    if dataclasses.is_dataclass(opt) and not isinstance(opt, type):
        opt = {k: v for k, v in dataclasses.asdict(opt).items() if v is not None}
    if not isinstance(opt, Mapping):
        raise ConfigError(f"train.{name} must be a mapping, got {type(opt).__name__}")
    unknown = sorted(set(opt) - valid)
    if unknown:
        raise ConfigError(f"unknown key train.{name}.{unknown[0]}; valid keys: "
                          f"{', '.join(sorted(valid))}")
    return dict(opt)


def _make_metric(metric, device):
    if not isinstance(metric, str):
        if not callable(getattr(metric, "loss", None)):
            raise ConfigError("fidelity_metric must be a metric name or a module with .loss()")
        return metric
    from optiqa.metrics import create_metric, list_metrics

    info = list_metrics().get(metric)
    if info is not None and not info.differentiable:
        raise ConfigError(f"metric {metric!r} is not differentiable and cannot be a training loss")
    return create_metric(metric, device=device)  # unknown name -> UnknownNameError
