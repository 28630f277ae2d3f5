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

Reproducibility: batch ``i`` is a pure function of ``(seed, i, rank)`` (:mod:`optiqa.data.task_datasets`),
learning rates are pure functions of ``i``, and every RNG state, optimizer state and counter is
saved with the checkpoint; so on the CPU a run killed at any moment and resumed from its newest
complete checkpoint produces the same losses and weights as an uninterrupted run.

Multi-GPU: under ``torchrun`` G and D are wrapped in DistributedDataParallel (the D call inside
the generator step uses the bare module, since D gets no gradient there), each rank draws its
own batches, validation is sharded and all-reduced, and rank 0 writes every file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import time

import numpy as np
import torch

from optiqa.core.errors import ConfigError
from optiqa.train.config import TrainConfig, check_and_build_datasets
from optiqa.train import distributed as du
from optiqa.core.runs import RunFolder
from optiqa.train.checkpoint import ResumePoint, capture_rng, restore_rng, save_checkpoint
from optiqa.train.distributed import no_buffer_sync_kwargs
from optiqa.train.ema import EMA
from optiqa.train.guard import NaNGuard
from optiqa.train.logs import format_terms, setup_logger
from optiqa.train.optim import clip_grads, grad_norm, lr_at, make_optimizer, set_lr
from optiqa.train.precision import resolve_bf16

log = logging.getLogger("optiqa.train")


def network_g_spec(cfg) -> dict:
    """``network_g`` with the run's scale filled in (unless the options name their own)."""
    net = dict(cfg.network_g)
    if "scale" not in net and "upscale" not in net:
        net["scale"] = cfg.scale
    return net


class Trainer:
    """Builds everything a run needs from a validated config; writes nothing until
    :meth:`attach` names the run folder. ``train_step`` is one iteration (used by the bench)."""

    def __init__(self, cfg: TrainConfig, device="auto", info: du.DistInfo | None = None,
                 datasets: dict | None = None, progress: bool = True):
        from optiqa.nets import create_discriminator, create_generator
        from optiqa.train.objective import PerceptualObjective

        self.cfg, t = cfg, cfg.train
        self.info = info or du.DistInfo()
        self.device = du.resolve_device(device, self.info)
        self.progress = progress and self.info.is_main
        self.run: RunFolder | None = None
        self.tb = None
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
        self.pixel_only_objective = PerceptualObjective(pixel_weight=1.0) if t.pixel_only_iter else None
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
        self._wrap()
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

    def _wrap(self) -> None:
        """DDP wrappers (multi-process) and torch.compile (optional) of the forward callables."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        g, d = self.net_g, self.net_d
        if self.info.enabled:
            # generators have no batch-norm: nothing to broadcast per forward
            g = DDP(self.net_g, device_ids=ids, **no_buffer_sync_kwargs())
            if self.net_d is not None:
                d = DDP(self.net_d, device_ids=ids)
        self.d_step_net = d        # D with gradient sync, for the discriminator steps
        self.g_fwd, self.d_fwd, self.d_fwd_g = g, d, self.net_d
        if self.cfg.train.compile:
            self.g_fwd = torch.compile(g)
            if self.net_d is not None:
                self.d_fwd = torch.compile(d)
                self.d_fwd_g = torch.compile(self.net_d)

    def autocast(self, enabled: bool | None = None):
        on = self.bf16 if enabled is None else enabled
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    # ----------------------------------------------------------------------------------------
    def train_step(self, iteration: int, batch: dict) -> dict:
        """One iteration (1-based): G step, then D steps in the perceptual stage. Returns the
        logged values as detached tensors (no host sync beyond the NaN guard's)."""
        from optiqa.train.gan import r1_forward

        t, dev = self.cfg.train, self.device
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        hr = batch["gt"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        if "lq" in batch:
            lq = batch["lq"].to(dev, non_blocking=True).contiguous(memory_format=fmt)
        else:  # datasets.train.degrade_on_device: the degradation runs here, on the device
            with torch.no_grad():
                lq = self.train_set.degrade_batch(hr, batch["seed"]).contiguous(
                    memory_format=fmt)
        perceptual = iteration > t.pixel_only_iter
        objective = self.objective if perceptual else self.pixel_only_objective
        use_gan = perceptual and self.net_d is not None
        if use_gan and self.gradient_ratio is None:  # lambda (relative) and the ratio, once
            from optiqa.train.gradient_ratio import start_record

            self.gradient_ratio = start_record(self, iteration, lq, hr)
        sched = t.scheduler
        lr_g = lr_at(iteration, t.optim_g.lr, t.total_iter, sched.type, sched.milestones,
                     sched.gamma, sched.eta_min, t.lr_warmup_iter)
        set_lr(self.opt_g, lr_g)

        # generator step (D frozen: it must not accumulate gradients from the G loss)
        if use_gan:
            for p in self.d_params:
                p.requires_grad_(False)
        with self.autocast():
            sr = self.g_fwd(lq)
            fake = real = None
            if use_gan:
                fake = self.d_fwd_g(sr)
                if objective.gan_type == "ragan":
                    with torch.no_grad():
                        real = self.d_fwd_g(hr)
        with self.autocast(self.bf16_fidelity):
            g_total, terms = objective.generator_terms(sr.float(), hr, fake, real)
        self.opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        for p in self.d_params if use_gan else ():
            p.requires_grad_(True)
        g_ok = self._apply(self.opt_g, self.g_params, g_total, iteration, "generator")
        if g_ok and self.ema is not None:
            self.ema.update(self.net_g)
        logs = {"lr": torch.tensor(lr_g)}
        logs.update({("g_total" if k == "total" else k): v for k, v in terms.items()})

        # a skipped generator step discards the iteration: its fakes may be non-finite too
        if use_gan and g_ok:
            set_lr(self.opt_d, lr_at(iteration, t.optim_d.lr, t.total_iter, sched.type,
                                     sched.milestones, sched.gamma, sched.eta_min,
                                     t.lr_warmup_iter))
            fake_in = sr.detach()
            for _ in range(objective.d_steps):
                with self.autocast():
                    if objective.r1_weight > 0:  # double backward: never through compile
                        real_logits, real_in = r1_forward(self.d_step_net, hr)
                    else:
                        real_logits, real_in = self.d_fwd(hr), None
                    fake_logits = self.d_fwd(fake_in)
                d_total, d_terms = objective.discriminator_terms(real_logits, fake_logits,
                                                                 real_in)
                self.opt_d.zero_grad(set_to_none=True)
                d_total.backward()
                self._apply(self.opt_d, self.d_params, d_total, iteration, "discriminator")
            logs.update({("d_total" if k == "total" else k): v for k, v in d_terms.items()})
        return logs

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

    # ----------------------------------------------------------------------------------------
    def attach(self, run: RunFolder, console: bool = True, quiet: bool = False) -> None:
        """Use ``run`` for logs, checkpoints and samples (rank 0 writes). ``quiet``: the console
        shows warnings only (``log.txt`` keeps everything)."""
        self.run = run
        if self.info.is_main:
            setup_logger(run.log, console=console,
                         console_level=logging.WARNING if quiet else logging.INFO)
            if self.cfg.logger.use_tb_logger:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(run.root / "tb"))
                except ImportError:
                    log.warning("logger.use_tb_logger: tensorboard is not installed; no events")
        else:
            setup_logger(None, console=False)

    def load(self, point: ResumePoint) -> None:
        s = point.state
        g = point.models["g"]
        self.net_g.load_state_dict(g["params"])
        if self.ema is not None:
            self.ema.load_state_dict(g.get("params_ema", g["params"]))
            # checkpoints from before the EMA warm-up: one update per iteration
            self.ema.updates = int((s.get("ema") or {}).get("updates", point.iteration))
        if self.net_d is not None:
            if "d" in point.models:
                self.net_d.load_state_dict(point.models["d"]["params"])
                if "d" in s["optimizers"]:
                    self.opt_d.load_state_dict(s["optimizers"]["d"])
            else:
                log.warning("checkpoint %d has no discriminator; D starts fresh", point.iteration)
        if self.net_d is not None:  # the lambda measured at the start, never measured again
            from optiqa.train.gradient_ratio import resumed_record

            self.gradient_ratio = resumed_record(self, s)
        self.opt_g.load_state_dict(s["optimizers"]["g"])
        self.guard.skips = int(s.get("nan_skips", 0))
        rngs = s.get("rng", [])
        if len(rngs) == self.info.world_size:
            restore_rng(rngs[self.info.rank])
        else:
            self._seed_rngs(point.iteration)
            log.warning("checkpoint saved by %d process(es), resumed by %d: RNG streams are "
                        "reseeded (the run stays valid but is no longer bit-identical)",
                        len(rngs), self.info.world_size)
        self._check_resumed_settings(s, point.iteration)
        self.iteration = point.iteration
        log.info("resumed from iteration %d (%s)", point.iteration, self.run.state_path(
            point.iteration) if self.run else "state")

    def _check_resumed_settings(self, state: dict, iteration: int) -> None:
        """Say when the schedule or the data stream differs from the one the checkpoint was
        trained under: the run stays valid but no longer equals an uninterrupted one."""
        t = self.cfg.train
        sampler = state.get("sampler") or {}
        now = {"seed": self.cfg.seed, "batch_size": self.cfg.datasets.train.batch_size}
        changed = [f"{k} {sampler[k]} -> {v}" for k, v in now.items()
                   if k in sampler and sampler[k] != v]
        for net, saved in (state.get("schedulers") or {}).items():
            current = dict(dataclasses.asdict(t.scheduler), base_lr=getattr(t, f"optim_{net}").lr,
                           warmup_iter=t.lr_warmup_iter, total_iter=t.total_iter)
            changed += [f"{net} {k} {saved[k]} -> {v}" for k, v in current.items()
                        if k in saved and saved[k] != v]
        if changed:
            log.warning("resuming at iteration %d under other settings than the checkpoint's "
                        "(%s): the result will differ from an uninterrupted run", iteration,
                        "; ".join(changed))

    def weights_fingerprint(self) -> str:
        """SHA-256 of every parameter of G, its EMA and D (buffers such as batch-norm running
        statistics legitimately differ between ranks and are left out)."""
        h = hashlib.sha256()
        for net in (self.net_g, self.ema.model if self.ema else None, self.net_d):
            for p in (net.parameters() if net is not None else ()):
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self, iteration: int) -> None:
        rngs = du.gather_objects(capture_rng())  # collective: every rank takes part
        if self.info.enabled:  # DDP must keep every rank's weights identical: check it
            prints = du.gather_objects(self.weights_fingerprint())
            if len(set(prints)) == 1:
                log.info("weights identical on all %d ranks (sha256 %s)", len(prints),
                         prints[0][:16])
            else:
                log.error("ranks hold different weights at iteration %d: %s", iteration,
                          ", ".join(p[:16] for p in prints))
        if self.info.is_main:
            t = self.cfg.train
            g = {"params": self.net_g.state_dict()}
            if self.ema is not None:
                g["params_ema"] = self.ema.state_dict()
                g["ema"] = self.ema_record()
            g.update(network_g=network_g_spec(self.cfg), scale=self.cfg.scale)
            models = {"g": g}
            optimizers = {"g": self.opt_g.state_dict()}
            if self.net_d is not None:
                models["d"] = {"params": self.net_d.state_dict()}
                optimizers["d"] = self.opt_d.state_dict()
            sched = dataclasses.asdict(t.scheduler)
            # learning rates and batches are pure functions of the iteration: "schedulers" and
            # "sampler" record what they were functions of, so that a resume under other
            # settings is detected (load() warns)
            state = {
                "optimizers": optimizers, "nan_skips": self.guard.skips, "rng": rngs,
                "ema": self.ema_record(),
                "gradient_ratio": self.gradient_ratio.to_json() if self.gradient_ratio else None,
                "schedulers": {k: dict(sched, base_lr=getattr(t, f"optim_{k}").lr,
                                       warmup_iter=t.lr_warmup_iter, total_iter=t.total_iter)
                               for k in optimizers},
                "sampler": {"seed": self.cfg.seed, "next_iteration": iteration + 1,
                            "batch_size": self.cfg.datasets.train.batch_size},
            }
            save_checkpoint(self.run, iteration, models, state, self.cfg.logger.keep_checkpoints)
            log.info("saved checkpoint %d", iteration)
        du.barrier()

    def ema_record(self) -> dict | None:
        """The EMA's settings and progress, saved with each checkpoint (plain types)."""
        if self.ema is None:
            return None
        return {"decay": self.ema.decay, "warmup": self.ema.warmup, "updates": self.ema.updates,
                "last_decay": self.ema.last_decay}

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
        if self.tb is not None:
            for k, val in means.items():
                self.tb.add_scalar(f"val/{k}", val, iteration)
        self.last_val = means
        return means

    # ----------------------------------------------------------------------------------------
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
        self._log_header(start)
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
                        self._log_iteration(it, logs, per_it)
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
            if self.tb is not None:
                self.tb.close()
        self.iteration = it
        log.info("finished at iteration %d (%d skipped steps)", it, self.guard.skips)
        return {"run": str(self.run.root) if self.run and self.info.is_main else None,
                "iteration": it,
                "nan_skips": self.guard.skips, "val": self.last_val}

    def _log_header(self, start: int) -> None:
        cfg = self.cfg
        n_g = sum(p.numel() for p in self.g_params)
        n_d = sum(p.numel() for p in self.d_params)
        log.info("run %s: %s on %s x%d process(es); G %s (%.2fM trainable), D %s (%.2fM "
                 "trainable)", cfg.name, "resuming" if start else "starting", self.device,
                 self.info.world_size, cfg.network_g["type"], n_g / 1e6,
                 cfg.network_d["type"] if self.net_d is not None else "none", n_d / 1e6)
        log.info("objective: %s; L1 only until iteration %d (train.pixel_only_iter) of %d; "
                 "learning-rate warm-up over %d iterations (train.warmup_iter)",
                 self.objective.extra_repr() if self.objective else "L1 only",
                 cfg.train.pixel_only_iter, cfg.train.total_iter, cfg.train.lr_warmup_iter)
        t = cfg.train
        log.info("precision: %s%s%s", "bf16 autocast" if self.bf16 else "fp32",
                 " (train.bf16: auto)" if t.bf16 == "auto" else "",
                 "".join(f", {k}" for k, on in (("channels_last", t.channels_last),
                                                ("torch.compile", t.compile)) if on))
        log.info("data: %d training images, batch %d per process, HR crop %d; %s",
                 len(self.train_set), cfg.datasets.train.batch_size, cfg.datasets.train.gt_size,
                 self.train_set.lq_source)
        log.info("validation: %s", f"{self._n_val()} images; {self.val_set.lq_source}"
                 if self.val_set is not None else "none")
        if self.ema is not None:
            log.info("EMA of G: decay %g%s; validation and params_ema use it (`optiqa evaluate "
                     "--weights params` scores G itself)", self.ema.decay,
                     ", warmed up as min(decay, (1+t)/(10+t)) after t updates (train.ema_warmup)"
                     if self.ema.warmup else " from the first update (train.ema_warmup: false)")

    def _n_val(self) -> int:
        cap = self.cfg.datasets.val.max_images
        return len(self.val_set) if cap is None else min(cap, len(self.val_set))

    def stage_of(self, iteration: int) -> str:
        """The log's stage label: ``pixel_only`` when the iteration's objective is the pixel
        term alone (the L1-only stage, or an L1-only run), else ``perceptual``."""
        o = self.objective
        if iteration <= self.cfg.train.pixel_only_iter or o is None or (
                o.fidelity_weight == 0 and (self.net_d is None or o.adversarial_weight == 0)):
            return "pixel_only"
        return "perceptual"

    def _log_iteration(self, it: int, logs: dict, per_it: float) -> None:
        logs = dict(logs)
        lr = float(logs.pop("lr"))
        keys = list(logs)
        vec = torch.stack([logs[k].detach().float().reshape(()) for k in keys])
        if self.info.enabled:  # the mean over ranks = the value for the whole global batch
            vec = du.all_reduce_sum(vec) / self.info.world_size
        values = dict(zip(keys, vec.tolist()))
        stage = self.stage_of(it)
        eta = per_it * (self.cfg.train.total_iter - it)
        log.info("iter %d/%d [%s] lr %.3e | %s | %.3f s/it, eta %s", it,
                 self.cfg.train.total_iter, stage, lr, format_terms(values), per_it,
                 time.strftime("%H:%M:%S", time.gmtime(eta)))
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, it)
            self.tb.add_scalar("train/lr", lr, it)
        if self.run is not None and self.info.is_main:
            # machine-readable curves (one JSON line per logged iteration; a resumed run may
            # log an iteration twice, with the same values on the CPU: readers keep the last)
            with open(self.run.train_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"iteration": it, "stage": stage, "lr": lr,
                                    "seconds_per_iteration": round(per_it, 4), **values}) + "\n")
