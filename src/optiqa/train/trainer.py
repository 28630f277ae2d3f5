"""The trainer behind ``optiqa train CONFIG [key.path=value ...] [--resume] [--study DIR]``.

Iteration-based, BasicSR-style (Wang et al., BasicSR; ESRGAN's two stages):

1. iterations ``1 .. pixel_only_iter``: the L1-only stage (weight 1; no discriminator), unless
   the generator starts from ``path.pretrain_network_g`` (then set ``pixel_only_iter: 0``);
2. iterations ``pixel_only_iter + 1 .. total_iter``: the perceptual objective
   (:class:`optiqa.train.objective.PerceptualObjective`): one generator step with D frozen,
   then ``gan_opt.d_steps`` discriminator steps on the same batch (fake logits from
   ``sr.detach()``; R1 through :func:`optiqa.train.gan.r1_forward` when ``r1_weight > 0``).
   Before the first adversarial step the adversarial/fidelity gradient ratio is measured once
   and recorded, and with ``gan_opt.relative`` the adversarial weight set from it
   (:mod:`optiqa.train.gradient_ratio`).

Optimisers are Adam or AdamW over the parameters that require gradients (frozen backbones stay
out); learning rates follow :func:`optiqa.train.optim.lr_at` (constant, step or cosine, with a
linear warm-up over ``warmup_iter`` iterations, BasicSR's meaning). After each successful
generator step the EMA of G is updated (``ema_decay``, warmed up as
``min(ema_decay, (1+t)/(10+t))`` after ``t`` updates unless ``ema_warmup: false``,
:mod:`optiqa.train.ema`); the EMA weights are validated and saved as ``params_ema``, and the log
says so with the decay in use. bf16 autocast covers the generator
and discriminator; the fidelity term runs in bf16 only for deep (backbone) metrics, because the
variance terms of SSIM-like metrics cancel catastrophically in bf16. A non-finite loss or gradient
norm skips the step (the flag is all-reduced, so every rank skips together; a skipped generator
step skips the iteration's discriminator steps too) and too many skips stop the run
(:class:`optiqa.train.guard.TrainingDiverged`).

Reproducibility: batch ``i`` is a pure function of ``(seed, i, rank)``
(:mod:`optiqa.data.task_datasets`), learning rates are pure functions of ``i``, and every RNG
state, optimizer state and counter is saved with the checkpoint; so on the CPU a run killed at
any moment and resumed from its newest complete checkpoint produces the same losses and weights
as an uninterrupted run.

Multi-GPU: under ``torchrun`` G and D are wrapped in DistributedDataParallel (the D call inside
the generator step uses the bare module, since D gets no gradient there:
:mod:`optiqa.train.networks`), each rank draws its own batches, validation is sharded and
all-reduced, and rank 0 writes every file.

This module holds the step and the loop; what a run writes and restores (checkpoints, RNG
states, the DDP weight check, resume warnings, JSONL/TensorBoard logs) is the
:class:`~optiqa.train.recorder.RunRecorder`'s.
"""
from __future__ import annotations

import contextlib
import logging
import random
import time

import numpy as np
import torch

from optiqa.core.errors import ConfigError, Problems
from optiqa.core.runs import RunFolder
from optiqa.train import distributed as du
from optiqa.train.checkpoint import ResumePoint
from optiqa.train.config import TrainConfig
from optiqa.train.config_checks import check_train_config
from optiqa.train.datasets import build_train_datasets
from optiqa.train.ema import EMA
from optiqa.train.guard import NaNGuard
from optiqa.train.logs import format_terms
from optiqa.train.networks import wrap
from optiqa.train.optim import clip_grads, grad_norm, lr_at, make_optimizer, set_lr
from optiqa.train.precision import resolve_bf16
from optiqa.train.recorder import RunRecorder, network_g_spec

log = logging.getLogger("optiqa.train")


def check_and_build_datasets(cfg: TrainConfig) -> dict:
    """:func:`check_train_config` and :func:`build_train_datasets` with their problems reported
    together (a wrong name and a missing folder in one message, not one per run)."""
    problems = Problems()
    with problems.collect():
        check_train_config(cfg)
    try:
        datasets = build_train_datasets(cfg)
    except ConfigError as e:
        problems.add(e)
    except Exception:
        if not problems:
            raise
    problems.raise_any()
    return datasets


@contextlib.contextmanager
def frozen(params):
    """``params`` take no gradient inside the block (D during the generator step), and take
    gradients again after it."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Trainer:
    """Builds everything a run needs from a validated config; writes nothing until
    :meth:`attach` names the run folder. ``train_step`` is one iteration (used by the bench).
    ``net_g`` / ``net_d`` are the bare networks; ``g`` / ``d`` the same networks with the ways
    the step calls them (:class:`optiqa.train.networks.TrainedNet`)."""

    def __init__(self, cfg: TrainConfig, device="auto", info: du.DistInfo | None = None,
                 datasets: dict | None = None, progress: bool = True):
        from optiqa.nets import create_discriminator, create_generator
        from optiqa.train.objective import PerceptualObjective

        self.cfg, t = cfg, cfg.train
        self.info = info or du.DistInfo()
        self.device = du.resolve_device(device, self.info)
        self.progress = progress and self.info.is_main
        self.run: RunFolder | None = None
        self.recorder = RunRecorder(self)
        if datasets is None:
            datasets = check_and_build_datasets(cfg)  # every problem at once
        data = datasets
        self.train_set, self.val_set = data.get("train"), data.get("val")
        dev = self.device

        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop sizes: pick the fastest kernels
        torch.manual_seed(cfg.seed)  # same initial weights on every rank and every resume
        self.net_g = create_generator(**network_g_spec(cfg)).to(dev)
        if getattr(self.net_g, "scale", cfg.scale) != cfg.scale:
            raise ConfigError(f"network_g builds a x{self.net_g.scale} generator but scale is "
                              f"{cfg.scale}")
        self.g_params = [p for p in self.net_g.parameters() if p.requires_grad]
        if not self.g_params:
            raise ConfigError(f"generator {cfg.network_g['type']!r} has no trainable parameters")
        self.net_d = None
        if cfg.uses_gan and t.pixel_only_iter < t.total_iter:
            torch.manual_seed(cfg.seed + 1)
            self.net_d = create_discriminator(**cfg.network_d).to(dev)
            need = getattr(self.net_d, "min_size", 0)
            if cfg.datasets.train.gt_size < need:
                raise ConfigError(f"datasets.train.gt_size {cfg.datasets.train.gt_size} is "
                                  f"smaller than the {need}x{need} that discriminator "
                                  f"{cfg.network_d['type']!r} needs")
        elif cfg.network_d is not None:
            log.warning("network_d is not used: train.gan_opt.weight is 0 or every iteration "
                        "is warm-up")
        if t.channels_last:
            for net in (self.net_g, self.net_d):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        self._load_pretrained()
        self.ema = EMA(self.net_g, t.ema_decay, t.ema_warmup) if t.ema_decay > 0 else None

        self.bf16 = resolve_bf16(t.bf16, dev)
        self.pixel_only_objective = (PerceptualObjective(pixel_weight=1.0) if t.pixel_only_iter
                                     else None)
        self.objective = None
        if t.pixel_only_iter < t.total_iter:
            self.objective = PerceptualObjective.from_config(t.pixel_opt, t.fidelity_opt,
                                                             t.gan_opt, device=dev)
        fid = self.objective.fidelity_metric if self.objective else None
        info_ = getattr(fid, "info", None)
        self.bf16_fidelity = self.bf16 and info_ is not None and info_.approach == "deep"

        self.opt_g = make_optimizer(t.optim_g, self.g_params, dev)
        self.d_params, self.opt_d = [], None
        if self.net_d is not None:
            self.d_params = [p for p in self.net_d.parameters() if p.requires_grad]
            self.opt_d = make_optimizer(t.optim_d, self.d_params, dev)
        self.val_metrics = {}
        if cfg.val is not None and self.val_set is not None:
            from optiqa.restore.scoring import create_metrics

            self.val_metrics = create_metrics(cfg.val.metrics, dev)
        distributed, compile_ = self.info.enabled, t.compile
        # one object per network: the bare module and the ways the step calls it
        self.g = wrap(self.net_g, self.g_params, dev, distributed, compile_, sync_buffers=False)
        self.d = None if self.net_d is None else wrap(self.net_d, self.d_params, dev,
                                                      distributed, compile_)
        self.guard = NaNGuard(t.max_nan_skips, log)
        self.iteration = 0
        self.last_val: dict = {}
        self.gradient_ratio = None   # measured before the first GAN step (train.gradient_ratio)
        self._seed_rngs(0)

    def _seed_rngs(self, iteration: int) -> None:
        """Seed the global RNGs (dropout / drop-path masks) differently per rank."""
        value = (self.cfg.seed * 1000003 + self.info.rank + 1) * 7919 + iteration
        torch.manual_seed(value)
        random.seed(value)
        np.random.seed(value % 2**32)

    # ----------------------------------------------------------------------------------------
    def _load_pretrained(self) -> None:
        from optiqa.nets import load_discriminator_checkpoint, load_generator_checkpoint

        p = self.cfg.path
        if p.pretrain_network_g:
            info = load_generator_checkpoint(self.net_g, p.pretrain_network_g, key=p.param_key_g,
                                             strict=p.strict_load_g)
            log.info("G initialised from %s (%s, %s layout)", p.pretrain_network_g, info.key,
                     info.layout)
        if p.pretrain_network_d and self.net_d is not None:
            try:
                load_discriminator_checkpoint(self.net_d, p.pretrain_network_d)
            except (RuntimeError, OSError, KeyError, ValueError) as e:
                raise ConfigError(f"path.pretrain_network_d: {p.pretrain_network_d}: "
                                  f"{str(e).splitlines()[0]}") from None
            log.info("D initialised from %s", p.pretrain_network_d)

    def autocast(self, enabled: bool | None = None):
        on = self.bf16 if enabled is None else enabled
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    # ------------------------------------------------------------------------------ the step
    def train_step(self, iteration: int, batch: dict) -> dict:
        """One iteration (1-based): G step, then D steps in the perceptual stage. Returns the
        logged values as detached tensors (no host sync beyond the NaN guard's)."""
        t = self.cfg.train
        hr, lq = self._inputs(batch)
        perceptual = iteration > t.pixel_only_iter
        objective = self.objective if perceptual else self.pixel_only_objective
        use_gan = perceptual and self.d is not None
        if use_gan and self.gradient_ratio is None:  # lambda (relative) and the ratio, once
            from optiqa.train.gradient_ratio import start_record

            self.gradient_ratio = start_record(self, iteration, lq, hr)
        lr_g = self._set_lr(self.opt_g, t.optim_g.lr, iteration)

        # generator step (D frozen: it must not accumulate gradients from the G loss)
        with frozen(self.d.params if use_gan else ()):
            with self.autocast():
                sr = self.g.forward(lq)
                fake = real = None
                if use_gan:
                    fake = self.d.frozen_forward(sr)
                    if objective.gan_type == "ragan":
                        with torch.no_grad():
                            real = self.d.frozen_forward(hr)
            with self.autocast(self.bf16_fidelity):
                g_total, terms = objective.generator_terms(sr.float(), hr, fake, real)
            self.opt_g.zero_grad(set_to_none=True)
            g_total.backward()
        g_ok = self._apply(self.opt_g, self.g.params, g_total, iteration, "generator")
        if g_ok and self.ema is not None:
            self.ema.update(self.net_g)
        logs = {"lr": torch.tensor(lr_g)}
        logs.update({("g_total" if k == "total" else k): v for k, v in terms.items()})

        # a skipped generator step discards the iteration: its fakes may be non-finite too
        if use_gan and g_ok:
            self._set_lr(self.opt_d, t.optim_d.lr, iteration)
            d_terms = self._discriminator_steps(objective, hr, sr.detach(), iteration)
            logs.update({("d_total" if k == "total" else k): v for k, v in d_terms.items()})
        return logs

    def _discriminator_steps(self, objective, hr, fake_in, iteration: int) -> dict:
        """``gan_opt.d_steps`` discriminator updates on the same batch (fakes detached)."""
        from optiqa.train.gan import r1_forward

        for _ in range(objective.d_steps):
            with self.autocast():
                if objective.r1_weight > 0:  # double backward: never through compile
                    real_logits, real_in = r1_forward(self.d.synced, hr)
                else:
                    real_logits, real_in = self.d.forward(hr), None
                fake_logits = self.d.forward(fake_in)
            d_total, d_terms = objective.discriminator_terms(real_logits, fake_logits, real_in)
            self.opt_d.zero_grad(set_to_none=True)
            d_total.backward()
            self._apply(self.opt_d, self.d.params, d_total, iteration, "discriminator")
        return d_terms

    def _inputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hr, lq)`` on the device in the configured memory format."""
        t, dev = self.cfg.train, self.device
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        hr = batch["gt"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        if "lq" in batch:
            lq = batch["lq"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        else:  # datasets.train.degrade_on_device: the degradation runs here, on the device
            with torch.no_grad():
                lq = self.train_set.degrade_batch(hr, batch["seed"]).contiguous(
                    memory_format=fmt)
        return hr, lq

    def _set_lr(self, opt, base_lr: float, iteration: int) -> float:
        """Set and return the learning rate of ``iteration`` (:func:`lr_at`, a pure function of
        the iteration, so a resumed run needs no scheduler state)."""
        t = self.cfg.train
        sched = t.scheduler
        lr = lr_at(iteration, base_lr, t.total_iter, sched.type, sched.milestones, sched.gamma,
                   sched.eta_min, t.lr_warmup_iter)
        set_lr(opt, lr)
        return lr

    def _apply(self, opt, params, loss, iteration: int, what: str) -> bool:
        norm = grad_norm(params)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(norm).to(loss.device)
        if not du.all_true(finite):  # the step's one host sync
            opt.zero_grad(set_to_none=True)
            self.guard.skip(iteration, f"{what} loss or gradient")
            return False
        if self.cfg.train.grad_clip > 0:
            clip_grads(params, self.cfg.train.grad_clip, norm)
        opt.step()
        return True

    # ---------------------------------------------------------------------------- the records
    def attach(self, run: RunFolder, console: bool = True, quiet: bool = False) -> None:
        """Use ``run`` for logs, checkpoints and samples (:meth:`RunRecorder.attach`)."""
        self.run = run
        self.recorder.attach(run, console, quiet)

    def load(self, point: ResumePoint) -> None:
        """Continue from checkpoint ``point`` (:meth:`RunRecorder.load`)."""
        self.recorder.load(point)

    def save(self, iteration: int) -> None:
        """Checkpoint ``iteration`` (:meth:`RunRecorder.save`; every rank calls it)."""
        self.recorder.save(iteration)

    def weights_in_use(self) -> str:
        """Which weights validation (and ``optiqa evaluate``'s default) uses, in words."""
        if self.ema is None:
            return "G (train.ema_decay 0: no EMA)"
        return self.ema.describe()

    def validate(self, iteration: int) -> dict:
        from optiqa.train.validation import validate

        v = self.cfg.val
        model = self.ema.model if self.ema is not None else self.net_g
        means = validate(model, self.val_set, self.val_metrics, self.cfg.scale, self.device,
                         iteration, self.info, self.cfg.datasets.val.max_images, v.tile,
                         v.tile_overlap, self.run.samples if self.run else None,
                         v.num_samples, v.sample_size)
        log.info("val iter %d (%s; border %d): %s", iteration, self.weights_in_use(),
                 self.cfg.scale, format_terms(means))
        self.recorder.log_validation(iteration, means)
        self.last_val = means
        return means

    # ------------------------------------------------------------------------------ the loop
    def fit(self, resume_hint: str | None = None) -> dict:
        """Train from :attr:`iteration` to ``total_iter``. A first SIGINT/SIGTERM stops after the
        current iteration with a checkpoint and raises :class:`~optiqa.train.interrupt.
        TrainingInterrupted` (:mod:`optiqa.train.interrupt`); ``resume_hint`` says in the log
        how to resume (the caller knows its own command)."""
        from tqdm import tqdm

        from optiqa.data.task_datasets import create_train_loader
        from optiqa.train.interrupt import StopOnSignal, TrainingInterrupted

        cfg, t = self.cfg, self.cfg.train
        start = self.iteration
        ds = cfg.datasets.train
        loader = create_train_loader(self.train_set, ds.batch_size, start, t.total_iter,
                                     ds.num_worker, self.info.rank, self.info.world_size,
                                     pin_memory=self.device.type == "cuda")
        self.recorder.log_header(start)
        bar = tqdm(total=t.total_iter, initial=start, unit="it", desc=cfg.name,
                   disable=not self.progress, dynamic_ncols=True)
        tick, done, it = time.perf_counter(), 0, start
        try:
            with StopOnSignal() as stop:
                for it, batch in zip(range(start + 1, t.total_iter + 1), loader):
                    logs = self.train_step(it, batch)
                    bar.update(1)
                    done += 1
                    if it % cfg.logger.print_freq == 0 or it == t.total_iter:
                        per_it = (time.perf_counter() - tick) / max(1, done)
                        self.recorder.log_iteration(it, logs, per_it)
                        tick, done = time.perf_counter(), 0
                    if cfg.val is not None and self.val_set is not None and (
                            it % cfg.val.val_freq == 0 or it == t.total_iter):
                        self.validate(it)
                    saved = self.run is not None and (it % cfg.logger.save_checkpoint_freq == 0
                                                      or it == t.total_iter)
                    if saved:
                        self.save(it)
                    # every rank asks, so all stop at the same iteration (torchrun)
                    if du.any_true(stop.requested, self.device) and it < t.total_iter:
                        self.iteration = it
                        if self.run is not None and not saved:
                            self.save(it)
                        log.warning("interrupted at %d (%s); checkpoint %d saved; %s", it,
                                    stop.signal_name or "signal on another rank", it,
                                    resume_hint or "resume the run to continue")
                        raise TrainingInterrupted(it, self.run.root if self.run else None,
                                                  stop.signal_name or "signal on another rank")
        finally:
            bar.close()
            self.recorder.close()
        self.iteration = it
        log.info("finished at iteration %d (%d skipped steps)", it, self.guard.skips)
        return {"run": str(self.run.root) if self.run and self.info.is_main else None,
                "iteration": it,
                "nan_skips": self.guard.skips, "val": self.last_val}

    def stage_of(self, iteration: int) -> str:
        """The log's stage label: ``pixel_only`` when the iteration's objective is the pixel
        term alone (the L1-only stage, or an L1-only run), else ``perceptual``."""
        o = self.objective
        if iteration <= self.cfg.train.pixel_only_iter or o is None or (
                o.fidelity_weight == 0 and (self.net_d is None or o.adversarial_weight == 0)):
            return "pixel_only"
        return "perceptual"
