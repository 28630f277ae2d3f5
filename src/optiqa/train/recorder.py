"""The run recorder: everything a training run writes or restores besides the weights' update.

:class:`RunRecorder` keeps the :class:`~optiqa.train.trainer.Trainer`'s run folder
(:class:`~optiqa.core.runs.RunFolder`; rank 0 writes) and its records:

- checkpoints (:meth:`save`): ``models/net_g_<i>.pth`` / ``net_d_<i>.pth`` as
  ``{'params', 'params_ema'}`` and ``state/<i>.state`` with optimizers, every rank's RNG states
  (:func:`~optiqa.train.checkpoint.capture_rng`, gathered), the NaN-skip count, the EMA's
  progress, the adversarial/fidelity gradient ratio and what the learning rates and batches
  were functions of; under DDP first a check that every rank holds the same weights (SHA-256
  of the parameters);
- resuming (:meth:`load`): all of the above restored, RNG streams reseeded when the number of
  processes changed, and a warning naming each schedule or data setting that differs from the
  checkpoint's (the run stays valid but no longer equals an uninterrupted one);
- logs: ``log.txt`` (:mod:`logging`), one JSON line per logged iteration (``train_log``),
  optional TensorBoard events.

The trainer decides *when* (every ``save_checkpoint_freq`` iterations, on a signal); the recorder
knows *what* and *where*. Exact resume is the promise this module keeps: on the CPU a run killed
at any moment and resumed from its newest complete checkpoint equals an uninterrupted one
(``tests/test_resume*.py``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time

import torch

from optiqa.core.runs import RunFolder
from optiqa.train import distributed as du
from optiqa.train.checkpoint import ResumePoint, capture_rng, restore_rng, save_checkpoint
from optiqa.train.logs import format_terms, setup_logger

log = logging.getLogger("optiqa.train")


def network_g_spec(cfg) -> dict:
    """``network_g`` with the run's scale filled in (unless the options name their own)."""
    net = dict(cfg.network_g)
    if "scale" not in net and "upscale" not in net:
        net["scale"] = cfg.scale
    return net


class RunRecorder:
    """The records of ``trainer``'s run; writes nothing until :meth:`attach` names the folder
    (without one, iterations are logged to the console only)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.run: RunFolder | None = None
        self.tb = None

    def attach(self, run: RunFolder, console: bool = True, quiet: bool = False) -> None:
        """Use ``run`` for logs, checkpoints and samples (rank 0 writes). ``quiet``: the console
        shows warnings only (``log.txt`` keeps everything)."""
        self.run = run
        if self.trainer.info.is_main:
            setup_logger(run.log, console=console,
                         console_level=logging.WARNING if quiet else logging.INFO)
            if self.trainer.cfg.logger.use_tb_logger:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(run.root / "tb"))
                except ImportError:
                    log.warning("logger.use_tb_logger: tensorboard is not installed; no events")
        else:
            setup_logger(None, console=False)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

    def log_validation(self, iteration: int, means: dict) -> None:
        if self.tb is not None:
            for k, val in means.items():
                self.tb.add_scalar(f"val/{k}", val, iteration)

    def load(self, point: ResumePoint) -> None:
        """Restore the trainer to checkpoint ``point``: weights, EMA, optimizers, NaN-skip
        count, gradient ratio, this rank's RNG states and the iteration."""
        tr = self.trainer
        s = point.state
        g = point.models["g"]
        tr.net_g.load_state_dict(g["params"])
        if tr.ema is not None:
            tr.ema.load_state_dict(g.get("params_ema", g["params"]))
            # checkpoints from before the EMA warm-up: one update per iteration
            tr.ema.updates = int((s.get("ema") or {}).get("updates", point.iteration))
        if tr.net_d is not None:
            if "d" in point.models:
                tr.net_d.load_state_dict(point.models["d"]["params"])
                if "d" in s["optimizers"]:
                    tr.opt_d.load_state_dict(s["optimizers"]["d"])
            else:
                log.warning("checkpoint %d has no discriminator; D starts fresh", point.iteration)
        if tr.net_d is not None:  # the lambda measured at the start, never measured again
            from optiqa.train.gradient_ratio import resumed_record

            tr.gradient_ratio = resumed_record(tr, s)
        tr.opt_g.load_state_dict(s["optimizers"]["g"])
        tr.guard.skips = int(s.get("nan_skips", 0))
        rngs = s.get("rng", [])
        if len(rngs) == tr.info.world_size:
            restore_rng(rngs[tr.info.rank])
        else:
            tr._seed_rngs(point.iteration)
            log.warning("checkpoint saved by %d process(es), resumed by %d: RNG streams are "
                        "reseeded (the run stays valid but is no longer bit-identical)",
                        len(rngs), tr.info.world_size)
        self._check_resumed_settings(s, point.iteration)
        tr.iteration = point.iteration
        log.info("resumed from iteration %d (%s)", point.iteration, self.run.state_path(
            point.iteration) if self.run else "state")

    def _check_resumed_settings(self, state: dict, iteration: int) -> None:
        """Say when the schedule or the data stream differs from the one the checkpoint was
        trained under: the run stays valid but no longer equals an uninterrupted one."""
        tr = self.trainer
        t = tr.cfg.train
        sampler = state.get("sampler") or {}
        now = {"seed": tr.cfg.seed, "batch_size": tr.cfg.datasets.train.batch_size}
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
        tr = self.trainer
        h = hashlib.sha256()
        for net in (tr.net_g, tr.ema.model if tr.ema else None, tr.net_d):
            for p in (net.parameters() if net is not None else ()):
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self, iteration: int) -> None:
        """Checkpoint ``iteration`` (a collective: every rank calls it; rank 0 writes)."""
        tr = self.trainer
        rngs = du.gather_objects(capture_rng())  # collective: every rank takes part
        if tr.info.enabled:  # DDP must keep every rank's weights identical: check it
            prints = du.gather_objects(self.weights_fingerprint())
            if len(set(prints)) == 1:
                log.info("weights identical on all %d ranks (sha256 %s)", len(prints),
                         prints[0][:16])
            else:
                log.error("ranks hold different weights at iteration %d: %s", iteration,
                          ", ".join(p[:16] for p in prints))
        if tr.info.is_main:
            t = tr.cfg.train
            g = {"params": tr.net_g.state_dict()}
            if tr.ema is not None:
                g["params_ema"] = tr.ema.state_dict()
                g["ema"] = self.ema_record()
            g.update(network_g=network_g_spec(tr.cfg), scale=tr.cfg.scale)
            models = {"g": g}
            optimizers = {"g": tr.opt_g.state_dict()}
            if tr.net_d is not None:
                models["d"] = {"params": tr.net_d.state_dict()}
                optimizers["d"] = tr.opt_d.state_dict()
            sched = dataclasses.asdict(t.scheduler)
            # learning rates and batches are pure functions of the iteration: "schedulers" and
            # "sampler" record what they were functions of, so that a resume under other
            # settings is detected (load() warns)
            state = {
                "optimizers": optimizers, "nan_skips": tr.guard.skips, "rng": rngs,
                "ema": self.ema_record(),
                "gradient_ratio": tr.gradient_ratio.to_json() if tr.gradient_ratio else None,
                "schedulers": {k: dict(sched, base_lr=getattr(t, f"optim_{k}").lr,
                                       warmup_iter=t.lr_warmup_iter, total_iter=t.total_iter)
                               for k in optimizers},
                "sampler": {"seed": tr.cfg.seed, "next_iteration": iteration + 1,
                            "batch_size": tr.cfg.datasets.train.batch_size},
            }
            save_checkpoint(self.run, iteration, models, state, tr.cfg.logger.keep_checkpoints)
            log.info("saved checkpoint %d", iteration)
        du.barrier()

    def ema_record(self) -> dict | None:
        """The EMA's settings and progress, saved with each checkpoint (plain types)."""
        tr = self.trainer
        if tr.ema is None:
            return None
        return {"decay": tr.ema.decay, "warmup": tr.ema.warmup, "updates": tr.ema.updates,
                "last_decay": tr.ema.last_decay}

    def log_header(self, start: int) -> None:
        """What the run is about to do, in the log: networks, objective, precision, data."""
        tr = self.trainer
        cfg = tr.cfg
        n_g = sum(p.numel() for p in tr.g_params)
        n_d = sum(p.numel() for p in tr.d_params)
        log.info("run %s: %s on %s x%d process(es); G %s (%.2fM trainable), D %s (%.2fM "
                 "trainable)", cfg.name, "resuming" if start else "starting", tr.device,
                 tr.info.world_size, cfg.network_g["type"], n_g / 1e6,
                 cfg.network_d["type"] if tr.net_d is not None else "none", n_d / 1e6)
        log.info("objective: %s; L1 only until iteration %d (train.pixel_only_iter) of %d; "
                 "learning-rate warm-up over %d iterations (train.warmup_iter)",
                 tr.objective.extra_repr() if tr.objective else "L1 only",
                 cfg.train.pixel_only_iter, cfg.train.total_iter, cfg.train.lr_warmup_iter)
        t = cfg.train
        log.info("precision: %s%s%s", "bf16 autocast" if tr.bf16 else "fp32",
                 " (train.bf16: auto)" if t.bf16 == "auto" else "",
                 "".join(f", {k}" for k, on in (("channels_last", t.channels_last),
                                                ("torch.compile", t.compile)) if on))
        log.info("data: %d training images, batch %d per process, HR crop %d; %s",
                 len(tr.train_set), cfg.datasets.train.batch_size, cfg.datasets.train.gt_size,
                 tr.train_set.lq_source)
        log.info("validation: %s", f"{self._n_val()} images; {tr.val_set.lq_source}"
                 if tr.val_set is not None else "none")
        if tr.ema is not None:
            log.info("EMA of G: decay %g%s; validation and params_ema use it (`optiqa evaluate "
                     "--weights params` scores G itself)", tr.ema.decay,
                     ", warmed up as min(decay, (1+t)/(10+t)) after t updates (train.ema_warmup)"
                     if tr.ema.warmup else " from the first update (train.ema_warmup: false)")

    def _n_val(self) -> int:
        tr = self.trainer
        cap = tr.cfg.datasets.val.max_images
        return len(tr.val_set) if cap is None else min(cap, len(tr.val_set))

    def log_iteration(self, it: int, logs: dict, per_it: float) -> None:
        """One logged iteration: the mean over ranks of each term, to the log, TensorBoard and
        the JSONL curves."""
        tr = self.trainer
        logs = dict(logs)
        lr = float(logs.pop("lr"))
        keys = list(logs)
        vec = torch.stack([logs[k].detach().float().reshape(()) for k in keys])
        if tr.info.enabled:  # the mean over ranks = the value for the whole global batch
            vec = du.all_reduce_sum(vec) / tr.info.world_size
        values = dict(zip(keys, vec.tolist()))
        stage = tr.stage_of(it)
        eta = per_it * (tr.cfg.train.total_iter - it)
        log.info("iter %d/%d [%s] lr %.3e | %s | %.3f s/it, eta %s", it,
                 tr.cfg.train.total_iter, stage, lr, format_terms(values), per_it,
                 time.strftime("%H:%M:%S", time.gmtime(eta)))
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", v, it)
            self.tb.add_scalar("train/lr", lr, it)
        if self.run is not None and tr.info.is_main:
            # machine-readable curves (one JSON line per logged iteration; a resumed run may
            # log an iteration twice, with the same values on the CPU: readers keep the last)
            with open(self.run.train_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"iteration": it, "stage": stage, "lr": lr,
                                    "seconds_per_iteration": round(per_it, 4), **values}) + "\n")
