"""The schema of one training run (:class:`TrainConfig`) and its validation before training.

BasicSR-style keys (``network_g``, ``train.optim_g``, ``gt_size``, ``total_iter``,
``warmup_iter`` = learning-rate warm-up, ...); loaded by the generic loader of
:mod:`optiqa.core.config` (unknown keys and wrong types name their dotted path, ``key.path=value``
overrides). Each block checks its own numbers (``check``);
:func:`optiqa.train.config_checks.check_train_config` checks across blocks and against the
registries (generator, discriminator, backbone, metric and GAN type names, network options; also
importable from here); :func:`optiqa.train.datasets.build_train_datasets` checks the data
while building the datasets. Relative paths in a config file are taken from
the file's folder (:mod:`optiqa.train.paths`; the study config follows the same rule), those of
command-line overrides from the working directory; errors show the absolute path tried.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Union

from optiqa.core.config import join_path, load_config, need
from optiqa.core.errors import ConfigError
from optiqa.train.config_checks import check_train_config  # noqa: F401 (its import path here)

log = logging.getLogger("optiqa.train")


@dataclass
class TrainDatasetOpts:
    """``datasets.train``: HR folder (or ``builtin:samples``), optional paired LR folder."""

    dataroot_gt: str | None = None
    dataroot_lq: str | None = None
    name: str | None = None
    gt_size: int = 128                # HR crop side (LR crop = gt_size / scale)
    batch_size: int = 16              # per process (per GPU under torchrun)
    use_flip: bool = True
    use_rot: bool = True
    num_worker: int = 0
    degradation: Any = None           # None (bicubic x scale) | name | {type, ...}
    cache: bool = False               # keep decoded images in memory
    degrade_on_device: bool = False   # degrade in the training step on its device (the GPU)

    def check(self, path):
        need(self.dataroot_gt is not None, join_path(path, "dataroot_gt"), "a folder is required",
              None)
        need(self.gt_size > 0, join_path(path, "gt_size"), "must be > 0", self.gt_size)
        need(self.batch_size >= 1, join_path(path, "batch_size"), "must be >= 1", self.batch_size)
        need(self.num_worker >= 0, join_path(path, "num_worker"), "must be >= 0", self.num_worker)


@dataclass
class ValDatasetOpts:
    """``datasets.val``: whole images (a set root with HR/ and LR_bicubic/X<s>, or folders)."""

    dataroot_gt: str | None = None
    dataroot_lq: str | None = None
    name: str | None = None
    degradation: Any = None
    cache: bool = True
    max_images: int | None = None     # validate on the first N images only

    def check(self, path):
        need(self.dataroot_gt is not None, join_path(path, "dataroot_gt"), "a folder is required",
              None)
        if self.max_images is not None:
            need(self.max_images >= 1, join_path(path, "max_images"), "must be >= 1",
                  self.max_images)


@dataclass
class DatasetsOpts:
    train: TrainDatasetOpts = field(default_factory=TrainDatasetOpts)
    val: ValDatasetOpts | None = None


@dataclass
class PathOpts:
    pretrain_network_g: str | None = None   # initialise G (our runs, official SwinIR/ESRGAN)
    param_key_g: str = "auto"               # auto (params_ema, else params) | params | params_ema
    strict_load_g: bool = True
    pretrain_network_d: str | None = None

    def check(self, path):
        need(self.param_key_g in ("auto", "params", "params_ema"), join_path(path, "param_key_g"),
              "must be auto, params or params_ema", self.param_key_g)


OPTIMIZERS = ("Adam", "AdamW")


@dataclass
class OptimOpts:
    type: str = "AdamW"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    eps: float = 1e-8

    def check(self, path):
        if self.type not in OPTIMIZERS:
            raise ConfigError(f"{join_path(path, 'type')}: unknown optimizer {self.type!r}; valid: "
                              f"{', '.join(OPTIMIZERS)}")
        need(math.isfinite(self.lr) and self.lr > 0, join_path(path, "lr"), "must be > 0", self.lr)
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
              join_path(path, "betas"), "must be two numbers in [0, 1)", self.betas)
        need(self.weight_decay >= 0, join_path(path, "weight_decay"), "must be >= 0",
              self.weight_decay)
        need(self.eps > 0, join_path(path, "eps"), "must be > 0", self.eps)


SCHEDULERS = ("constant", "step", "cosine")


@dataclass
class SchedulerOpts:
    """``step``: lr x gamma after each milestone; ``cosine``: from lr down to eta_min at
    total_iter (the linear LR warm-up is ``train.warmup_iter``, as in BasicSR)."""

    type: str = "constant"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    eta_min: float = 1e-7

    def check(self, path):
        if self.type not in SCHEDULERS:
            raise ConfigError(f"{join_path(path, 'type')}: unknown scheduler {self.type!r}; valid: "
                              f"{', '.join(SCHEDULERS)}")
        need(all(m > 0 for m in self.milestones) and self.milestones == sorted(self.milestones),
              join_path(path, "milestones"), "must be increasing positive iterations",
              self.milestones)
        need(self.gamma > 0, join_path(path, "gamma"), "must be > 0", self.gamma)
        need(self.eta_min >= 0, join_path(path, "eta_min"), "must be >= 0", self.eta_min)


@dataclass
class PixelOpts:
    weight: float = 1.0
    type: str = "l1"


@dataclass
class FidelityOpts:
    metric: str | None = None
    weight: float = 1.0


@dataclass
class GanOpts:
    type: str = "vanilla"          # vanilla | hinge | lsgan | ragan
    weight: float = 0.0            # adversarial_weight (with relative: the gradient ratio)
    r1_weight: float = 0.0
    d_steps: int = 1
    # true: weight is the adversarial/fidelity gradient ratio at the start, and lambda is set
    # from it (optiqa.train.gradient_ratio)
    relative: bool = False


@dataclass
class TrainOpts:
    total_iter: int = 1000
    warmup_iter: int = 0           # linear learning-rate warm-up (BasicSR; -1 or 0 = none)
    pixel_only_iter: int = 0       # L1-only iterations before the perceptual objective
    ema_decay: float = 0.999       # 0: no EMA
    ema_warmup: bool = True        # decay_t = min(ema_decay, (1+t)/(10+t)) (optiqa.train.ema)
    optim_g: OptimOpts = field(default_factory=OptimOpts)
    optim_d: OptimOpts = field(default_factory=OptimOpts)
    scheduler: SchedulerOpts = field(default_factory=SchedulerOpts)
    pixel_opt: PixelOpts | None = None
    fidelity_opt: FidelityOpts | None = None
    gan_opt: GanOpts | None = None
    bf16: Union[bool, str] = False  # bf16 autocast (CUDA and CPU); auto: where it is native
    channels_last: bool = False
    compile: bool = False          # torch.compile the generator and discriminator
    max_nan_skips: int = 100       # stop after this many skipped (non-finite) steps
    grad_clip: float = 0.0         # max gradient norm; 0: off

    def check(self, path):
        p = lambda k: join_path(path, k)  # noqa: E731
        need(self.total_iter >= 1, p("total_iter"), "must be >= 1", self.total_iter)
        need(0 <= self.pixel_only_iter <= self.total_iter, p("pixel_only_iter"),
              f"must be in [0, total_iter={self.total_iter}]", self.pixel_only_iter)
        need(-1 <= self.warmup_iter < self.total_iter, p("warmup_iter"),
              f"must be -1 (none) or in [0, total_iter={self.total_iter})", self.warmup_iter)
        need(0 <= self.ema_decay < 1, p("ema_decay"), "must be in [0, 1)", self.ema_decay)
        need(isinstance(self.ema_warmup, bool), p("ema_warmup"), "must be true or false",
             self.ema_warmup)
        need(self.bf16 in (True, False, "auto"), p("bf16"), "must be true, false or auto",
             self.bf16)
        need(self.max_nan_skips >= 0, p("max_nan_skips"), "must be >= 0", self.max_nan_skips)
        need(self.grad_clip >= 0, p("grad_clip"), "must be >= 0", self.grad_clip)
        if self.scheduler.type == "cosine":
            need(self.scheduler.eta_min < self.optim_g.lr, p("scheduler.eta_min"),
                  f"must be below optim_g.lr={self.optim_g.lr}", self.scheduler.eta_min)
        for name, w in (("pixel_opt.weight", self.pixel_opt and self.pixel_opt.weight),
                        ("fidelity_opt.weight", self.fidelity_opt and self.fidelity_opt.weight),
                        ("gan_opt.weight", self.gan_opt and self.gan_opt.weight),
                        ("gan_opt.r1_weight", self.gan_opt and self.gan_opt.r1_weight)):
            if w is not None:
                need(math.isfinite(w) and w >= 0, p(name), "must be a number >= 0", w)
        if self.gan_opt is not None:
            need(self.gan_opt.d_steps >= 1, p("gan_opt.d_steps"), "must be >= 1",
                  self.gan_opt.d_steps)
            if self.gan_opt.relative:
                need(self.gan_opt.weight > 0, p("gan_opt.weight"), "with gan_opt.relative: "
                     "true it is the adversarial/fidelity gradient ratio and must be > 0",
                     self.gan_opt.weight)
                need(self.pixel_weight + self.fidelity_weight > 0, p("gan_opt.relative"),
                     "needs a pixel or fidelity term to be relative to (pixel_opt and "
                     "fidelity_opt weights are 0 or absent)", self.gan_opt.relative)
        if self.fidelity_opt is not None and self.fidelity_opt.weight > 0:
            need(self.fidelity_opt.metric is not None, p("fidelity_opt.metric"),
                  "a metric name is required when fidelity_opt.weight > 0", None)
        if self.pixel_opt is not None and self.pixel_opt.type not in ("l1", "L1Loss"):
            raise ConfigError(f"{p('pixel_opt.type')}: only l1 is supported, got "
                              f"{self.pixel_opt.type!r}")
        if self.pixel_weight + self.fidelity_weight + self.adversarial_weight == 0 \
                and self.pixel_only_iter < self.total_iter:
            raise ConfigError(f"{path}: the objective is empty (pixel_opt, fidelity_opt and "
                              "gan_opt weights are all 0 or absent)")

    @property
    def lr_warmup_iter(self) -> int:
        """Iterations of linear learning-rate warm-up (``warmup_iter``; -1 means none)."""
        return max(0, self.warmup_iter)

    @property
    def pixel_weight(self) -> float:
        return self.pixel_opt.weight if self.pixel_opt else 0.0

    @property
    def fidelity_weight(self) -> float:
        return self.fidelity_opt.weight if self.fidelity_opt and self.fidelity_opt.metric else 0.0

    @property
    def adversarial_weight(self) -> float:
        return self.gan_opt.weight if self.gan_opt else 0.0


@dataclass
class ValOpts:
    val_freq: int = 5000
    metrics: list[str] = field(default_factory=lambda: ["psnr_y", "ssim_y"])
    save_samples: Union[bool, int] = True   # true: 3 images; N: the first N; false: none
    sample_size: int = 128                  # side of the saved HR crops (centre)
    tile: int | None = None                 # restore in LR tiles (large validation images)
    tile_overlap: int = 32

    def check(self, path):
        need(self.val_freq >= 1, join_path(path, "val_freq"), "must be >= 1", self.val_freq)
        need(not isinstance(self.save_samples, int) or isinstance(self.save_samples, bool)
              or self.save_samples >= 0, join_path(path, "save_samples"), "must be >= 0",
              self.save_samples)
        need(self.sample_size > 0, join_path(path, "sample_size"), "must be > 0", self.sample_size)
        if self.tile is not None:
            need(self.tile > self.tile_overlap >= 0, join_path(path, "tile"),
                  f"must exceed tile_overlap={self.tile_overlap}", self.tile)

    @property
    def num_samples(self) -> int:
        if isinstance(self.save_samples, bool):
            return 3 if self.save_samples else 0
        return self.save_samples


@dataclass
class LoggerOpts:
    print_freq: int = 100
    save_checkpoint_freq: int = 5000
    keep_checkpoints: int = 3           # newest K checkpoints kept (models + state)
    use_tb_logger: bool = False         # TensorBoard events under <run>/tb when installed

    def check(self, path):
        for key in ("print_freq", "save_checkpoint_freq", "keep_checkpoints"):
            need(getattr(self, key) >= 1, join_path(path, key), "must be >= 1", getattr(self, key))


@dataclass
class TrainConfig:
    """One training run (BasicSR-style keys)."""

    name: str
    network_g: dict
    scale: int = 4
    seed: int = 0
    datasets: DatasetsOpts = field(default_factory=DatasetsOpts)
    network_d: dict | None = None
    path: PathOpts = field(default_factory=PathOpts)
    train: TrainOpts = field(default_factory=TrainOpts)
    val: ValOpts | None = None
    logger: LoggerOpts = field(default_factory=LoggerOpts)

    def check(self, path):
        need(bool(self.name) and "/" not in self.name and self.name not in (".", ".."), "name",
              "must be a non-empty folder name", self.name)
        need(self.scale >= 1, "scale", "must be >= 1", self.scale)
        need(self.seed >= 0, "seed", "must be >= 0", self.seed)
        for key, net in (("network_g", self.network_g), ("network_d", self.network_d)):
            if net is not None and not isinstance(net.get("type"), str):
                raise ConfigError(f"{key}.type: a network type name is required")

    @property
    def uses_gan(self) -> bool:
        return self.train.adversarial_weight > 0

    @staticmethod
    def migrate(raw: dict) -> dict:
        """Read a config written by optiqa 0.1 (before ``warmup_iter`` took BasicSR's meaning).

        Those configs, and every run folder's saved ``config.yaml`` from then, carry
        ``train.scheduler.lr_warmup_iter`` (the LR warm-up) and use ``train.warmup_iter`` for the
        L1-only stage; both are renamed, with a warning saying so.
        """
        train = raw.get("train") if isinstance(raw, dict) else None
        sched = train.get("scheduler") if isinstance(train, dict) else None
        if not isinstance(sched, dict) or "lr_warmup_iter" not in sched:
            return raw
        if "pixel_only_iter" in train:
            raise ConfigError("train.scheduler.lr_warmup_iter is the old name of "
                              "train.warmup_iter (the LR warm-up); this config mixes old and new "
                              "names: remove scheduler.lr_warmup_iter and set train.warmup_iter")
        train, sched = dict(train), dict(sched)
        lr_warmup = sched.pop("lr_warmup_iter")
        train["pixel_only_iter"] = train.pop("warmup_iter", 0)
        train["warmup_iter"] = lr_warmup
        train["scheduler"] = sched
        log.warning("config written by optiqa 0.1: its train.warmup_iter (the L1-only stage, %s "
                    "iterations) is now train.pixel_only_iter and scheduler.lr_warmup_iter (%s) "
                    "is now train.warmup_iter, BasicSR's learning-rate warm-up",
                    train["pixel_only_iter"], lr_warmup)
        return {**raw, "train": train}


def load_train_config(source, overrides=()) -> TrainConfig:
    return load_config(source, TrainConfig, overrides)


def __getattr__(name: str):
    """``build_train_datasets`` moved to :mod:`optiqa.train.datasets` (the schema does not build
    datasets); the old import path works for one release."""
    if name == "build_train_datasets":
        import warnings

        from optiqa.train import datasets

        warnings.warn(f"optiqa.train.config.{name} is now optiqa.train.datasets.{name}; the "
                      "old path goes in 0.3", DeprecationWarning, stacklevel=2)
        return getattr(datasets, name)
    raise AttributeError(f"module 'optiqa.train.config' has no attribute {name!r}")
