"""The adversarial/fidelity gradient ratio at the start of adversarial training, and the
adversarial weight set relative to it (``train.gan_opt.relative``).

The generator minimises ``L_G = L_ref + lambda * L_adv`` with ``L_ref = w_p L1 + w_f M`` (every
non-adversarial term as the objective weighs it: the fidelity loss, and the pixel term where a
config keeps one). At the generator ``theta_0`` that starts the adversarial stage, on one fixed
batch::

    g_ref = || grad_theta L_ref(theta_0) ||_2      g_adv = || grad_theta L_adv(theta_0) ||_2
    ratio = lambda * g_adv / g_ref

over every trainable parameter of G. Every GAN run measures it once and records it
(:class:`GradientRatio`, ``<run>/gradient_ratio.json`` and every checkpoint's state). With
``gan_opt.relative: true`` the config's ``gan_opt.weight`` is the target ratio ``r`` and
``lambda = r * g_ref / g_adv``, so the ratio is ``r`` by construction, whatever the fidelity loss's
scale (L1 of a bicubic x4 image is 0.064, MAD 87.7: one absolute lambda weighs the adversarial
term three orders of magnitude differently against them). Esser et al., *Taming Transformers
for high-resolution image synthesis*, CVPR 2021, eq. 7, set
``lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta)`` at every step on G's last layer
``G_L``; here lambda is measured once, on all of G, and then fixed, so that a run has one lambda
the report can print and a resume reuses.

Why the generator's parameters and not its output image: the optimizer receives the *sum* of the
two terms' parameter gradients, and each term reaches the parameters through G's Jacobian
transposed, which passes the fidelity term's mostly smooth error and the discriminator's
high-frequency texture signal with different gains; equal norms at the output need not mean equal
shares of the update. (Adam rescales each coordinate of the sum, not each term, so the terms'
shares of each coordinate are still their parameter-gradient sizes.)

How it is measured, so that it is reproducible and changes nothing else: on the training batch
of the first adversarial iteration as rank 0 draws it (a pure function of the run's seed and that
iteration), in float32, with G and D as they start, the global RNGs forked and seeded with
:data:`MEASUREMENT_SEED` (drop-path, dropout) and every buffer of G and D (spectral-norm vectors,
batch-norm statistics) restored afterwards. Rank 0 measures and every rank receives its record,
so all ranks use one lambda. A resume never measures again: the record comes from the
checkpoint's state, or (interrupted before the first checkpoint) from ``gradient_ratio.json`` when
it was measured at the same iteration under the same settings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
from dataclasses import dataclass

import torch

from optiqa.core.errors import ConfigError

log = logging.getLogger("optiqa.train")
MEASUREMENT_SEED = 20211      # the torch RNG seed during the measurement (recorded)
WITH_RESPECT_TO = "generator parameters"


@dataclass(frozen=True)
class GradientRatio:
    """One run's measurement and the adversarial weight it uses (plain types: JSON and state)."""

    iteration: int            # the first adversarial iteration; measured just before it
    seed: int                 # the run's seed: the batch is a pure function of (seed, iteration)
    batch_size: int
    reference_norm: float     # g_ref = ||grad L_ref|| (pixel + fidelity terms, weighted)
    adversarial_norm: float   # g_adv = ||grad L_adv|| (unweighted)
    relative: bool            # train.gan_opt.relative
    weight: float             # train.gan_opt.weight: lambda, or the target ratio when relative
    adversarial_weight: float  # the lambda in use
    ratio: float | None       # lambda * g_adv / g_ref (None without pixel or fidelity term)
    settings: str = ""        # hash of the settings the norms depend on (reuse check)
    measurement_seed: int = MEASUREMENT_SEED
    with_respect_to: str = WITH_RESPECT_TO

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "GradientRatio":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def with_weight(self, weight: float, relative: bool) -> "GradientRatio":
        """The same measurement under another ``gan_opt.weight`` / ``relative`` (a run continued
        under changed settings): lambda follows from the recorded norms, never a new measurement
        at a later model."""
        lam = adversarial_weight_for(weight, relative, self.reference_norm, self.adversarial_norm)
        ratio = lam * self.adversarial_norm / self.reference_norm if self.reference_norm > 0 \
            else None
        return dataclasses.replace(self, weight=float(weight), relative=bool(relative),
                                   adversarial_weight=lam, ratio=ratio)


def adversarial_weight_for(weight: float, relative: bool, reference_norm: float,
                           adversarial_norm: float) -> float:
    """lambda: ``weight`` itself, or ``weight * g_ref / g_adv`` when ``relative``.

    Raises :class:`ConfigError` naming ``train.gan_opt.relative`` when a norm makes the ratio
    undefined (zero or non-finite)."""
    norms_ok = all(math.isfinite(v) and v > 0 for v in (reference_norm, adversarial_norm))
    if relative:
        if not norms_ok:
            raise ConfigError(
                f"train.gan_opt.relative: the adversarial weight cannot be set relative to the "
                f"fidelity gradient: at the start the gradient norms are {reference_norm:.3g} "
                f"(pixel + fidelity terms) and {adversarial_norm:.3g} (adversarial term); both "
                "must be finite and > 0 (a zero fidelity gradient means the loss is flat on this batch, "
                "e.g. MAD below its visibility threshold on dark crops: use a larger batch or an "
                "absolute gan_opt.weight)")
        return float(weight) * reference_norm / adversarial_norm
    return float(weight)


def gradient_norms(net_g, net_d, objective, lq: torch.Tensor, hr: torch.Tensor,
                   params) -> tuple[float, float]:
    """``(g_ref, g_adv)`` at G's and D's current weights on ``(lq, hr)`` (see module docstring).

    Gradients come from ``torch.autograd.grad`` w.r.t. ``params`` alone: nothing accumulates in
    any ``.grad``, so the optimizers' next step is untouched."""
    from optiqa.train.gan import generator_adversarial_loss

    params = list(params)
    sr = net_g(lq).float()
    reference = objective.reference_loss(sr, hr)
    fake = net_d(sr)
    real = None
    if objective.gan_type == "ragan":
        with torch.no_grad():
            real = net_d(hr)
    adversarial = generator_adversarial_loss(objective.gan_type, fake, real)
    norms = []
    for loss in (reference, adversarial):
        if not loss.requires_grad:     # no pixel or fidelity term (a GAN-only objective)
            norms.append(0.0)
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        sq = sum((g.detach().float().pow(2).sum() for g in grads if g is not None),
                 torch.zeros((), device=sr.device))
        norms.append(float(sq.sqrt()))
    return norms[0], norms[1]


@contextlib.contextmanager
def untouched(*nets, device: torch.device | None = None):
    """Run a measurement that leaves no trace: the torch RNG forked (seeded with
    :data:`MEASUREMENT_SEED` inside), every buffer of ``nets`` restored afterwards."""
    saved = [{k: b.detach().clone() for k, b in net.named_buffers()} for net in nets]
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(MEASUREMENT_SEED)
        with torch.autocast(device.type if device is not None else "cpu", enabled=False):
            try:
                yield
            finally:
                with torch.no_grad():
                    for net, bufs in zip(nets, saved):
                        for k, b in net.named_buffers():
                            b.copy_(bufs[k])


def settings_key(cfg) -> str:
    """A hash of the config settings that decide the norms (everything but the run's name,
    logging, length and the adversarial weight itself), for reusing a record safely."""
    from optiqa.core.config import to_mapping
    from optiqa.core.hashing import stable_hash

    raw = to_mapping(cfg)
    raw.pop("name", None)
    raw.pop("logger", None)
    train = dict(raw.get("train") or {})
    train.pop("total_iter", None)
    train["gan_opt"] = {k: v for k, v in (train.get("gan_opt") or {}).items()
                        if k not in ("weight", "relative")}
    raw["train"] = train
    return stable_hash(raw)


def start_record(trainer, iteration: int, lq: torch.Tensor, hr: torch.Tensor) -> GradientRatio:
    """The record for the adversarial stage that starts at ``iteration``: reused from the run
    folder when measured there at this iteration under the same settings, else measured on rank
    0 and shared with every rank. Sets the objective's lambda; rank 0 writes the record."""
    from optiqa.train import distributed as du

    cfg = trainer.cfg
    gan = cfg.train.gan_opt
    key = settings_key(cfg)
    record, error = None, None
    if trainer.info.is_main:
        try:
            record = _reusable(trainer.run, iteration, key)
            if record is not None:
                record = record.with_weight(gan.weight, gan.relative)
            else:
                with untouched(trainer.net_g, trainer.net_d, device=trainer.device):
                    g_ref, g_adv = gradient_norms(trainer.net_g, trainer.net_d,
                                                  trainer.objective, lq, hr, trainer.g_params)
                lam = adversarial_weight_for(gan.weight, gan.relative, g_ref, g_adv)
                record = GradientRatio(iteration, cfg.seed, int(hr.shape[0]), g_ref, g_adv,
                                       bool(gan.relative), float(gan.weight), lam,
                                       lam * g_adv / g_ref if g_ref > 0 else None, key)
        except Exception as e:  # noqa: BLE001 - re-raised on every rank below
            error = e
    # every rank takes part (a rank-0 error is raised everywhere, never a hang)
    record, shared_error = du.gather_objects((record, error))[0]
    if shared_error is not None:
        raise error if error is not None else shared_error
    apply(trainer, record)
    if trainer.info.is_main and trainer.run is not None:
        from optiqa.core.atomic import atomic_write_text

        atomic_write_text(trainer.run.gradient_ratio,
                          json.dumps(record.to_json(), indent=1) + "\n")
    return record


def resumed_record(trainer, state: dict) -> GradientRatio | None:
    """The record saved with a checkpoint (None when it was saved before the adversarial
    stage started), under the config's current weight; sets the objective's lambda."""
    data = state.get("gradient_ratio")
    if not data:
        return None
    gan = trainer.cfg.train.gan_opt
    record = GradientRatio.from_json(data)
    if gan is not None and (record.weight, record.relative) != (gan.weight, gan.relative):
        record = record.with_weight(gan.weight, gan.relative)
        log.warning("train.gan_opt weight %g (relative: %s) differs from the checkpoint's; "
                    "lambda %.4g from the norms measured at iteration %d", gan.weight,
                    gan.relative, record.adversarial_weight, record.iteration)
    apply(trainer, record)
    return record


def apply(trainer, record: GradientRatio) -> None:
    """Use the record's lambda in the objective, and say so in the log."""
    trainer.objective.adversarial_weight = record.adversarial_weight
    log.info("adversarial weight %.4g (%s); gradient norms at iteration %d (%s): pixel + "
             "fidelity %.4g, adversarial %.4g; adversarial/fidelity gradient ratio %s",
             record.adversarial_weight,
             f"relative: ratio {record.weight:g}" if record.relative else "absolute",
             record.iteration, record.with_respect_to, record.reference_norm,
             record.adversarial_norm,
             "undefined" if record.ratio is None else f"{record.ratio:.4g}")


def _reusable(run, iteration: int, key: str) -> GradientRatio | None:
    """A record this run measured before at ``iteration`` under the same settings (a run
    interrupted between the measurement and its first checkpoint), else None."""
    if run is None or not run.gradient_ratio.is_file():
        return None
    try:
        record = GradientRatio.from_json(json.loads(run.gradient_ratio.read_text()))
    except (ValueError, TypeError):
        return None
    return record if (record.iteration, record.settings) == (iteration, key) else None
