"""The study configuration: one YAML file describes the whole study (``configs/study/*.yaml``).

Typed like the training config (:mod:`optiqa.core.config`: unknown keys are errors with a
did-you-mean, wrong types name their dotted path, ``key.path=value`` overrides). A study is

- a base training config (``train.base``, a ``configs/train`` YAML) with overrides for every cell,
  and optionally a shared L1 pre-training of the generator that every cell starts from (as the
  published study fine-tunes a PSNR-oriented SwinIR);
- the grid: ``tasks`` x ``fidelity.metrics`` x (no discriminator + ``adversarial.discriminators``
  x ``adversarial.weights``), with per-cell overrides by glob (``cells``);
- the training and test data (held out: the test images must not be the training ones);
- the evaluator panel (FR and NR metrics; a model is never judged by its own training loss or,
  with ``exclude_family``, by a metric of its family);
- the IQA databases on which the fidelity metrics are assessed, and the transfer settings;
- how cells run (``launcher``: local or SLURM) and what the report shows.

:func:`load_study_config` resolves paths relative to the study file;
:func:`optiqa.study.checks.check_study_config` checks names against the registries and the data
folders before any work starts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from optiqa.core.config import apply_overrides, join_path, load_config, need
from optiqa.study import names as run_names

DEFAULT_TASKS = {"sr_x4": {"scale": 4, "degradation": None}}
LAUNCHERS = ("local", "slurm")


@dataclass
class PretrainOpts:
    """A shared L1-only pre-training of the generator; every cell starts from its weights."""

    total_iter: int = 1000
    overrides: dict = field(default_factory=dict)

    def check(self, path):
        need(self.total_iter >= 1, join_path(path, "total_iter"), "must be >= 1",
             self.total_iter)


@dataclass
class TrainBlock:
    base: str                                     # a configs/train YAML (relative to this file)
    overrides: dict = field(default_factory=dict)  # key.path: value, for every cell
    pretrain: PretrainOpts | None = None
    # training seeds: every cell is trained once per seed (replicates, run names __s<seed>);
    # the analysis averages over them and resamples them. Empty: one run with the study seed.
    seeds: list[int] = field(default_factory=list)

    def check(self, path):
        key = join_path(path, "seeds")
        need(all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds),
             key, "must be integers >= 0", self.seeds)
        need(len(set(self.seeds)) == len(self.seeds), key, "lists a seed twice", self.seeds)


@dataclass
class TaskOpts:
    """One restoration task: the scale and the degradation that makes its inputs."""

    scale: int = 4
    degradation: Any = None     # None: bicubic x scale; a name or {type: ..., **options}

    def check(self, path):
        need(self.scale >= 1, join_path(path, "scale"), "must be >= 1", self.scale)


@dataclass
class FidelityGrid:
    """The study's fidelity axis: every metric trained as a loss, at one weight (not
    :class:`optiqa.train.config.FidelityOpts`, the one fidelity term of a single run)."""

    metrics: list[str] = field(default_factory=list)
    weight: float = 1.0

    def check(self, path):
        need(len(self.metrics) >= 1, join_path(path, "metrics"), "needs at least one metric",
             self.metrics)
        need(len(set(self.metrics)) == len(self.metrics), join_path(path, "metrics"),
             "lists a metric twice", self.metrics)
        need(math.isfinite(self.weight) and self.weight > 0, join_path(path, "weight"),
             "must be a number > 0", self.weight)


@dataclass
class AdversarialOpts:
    discriminators: dict = field(default_factory=dict)  # label -> network_d mapping
    weights: list[float] = field(default_factory=list)
    include_none: bool = True   # also the cells without a discriminator
    # true: each weight is the adversarial/fidelity gradient ratio at the start of a cell, and
    # its lambda is set from it (train.gan_opt.relative); the cells are named __r<ratio>
    relative: bool = False

    def check(self, path):
        for i, w in enumerate(self.weights):
            need(math.isfinite(w) and w > 0, f"{join_path(path, 'weights')}[{i}]",
                 "must be a number > 0", w)
        need(len(set(self.weights)) == len(self.weights), join_path(path, "weights"),
             "lists a weight twice", self.weights)
        for label, net in self.discriminators.items():
            key = join_path(join_path(path, "discriminators"), label)
            need(label != run_names.NONE and run_names.valid_part(label), key,
                 "label must not be 'none' nor contain '__' or '/'", label)
            need(isinstance(net, dict) and isinstance(net.get("type"), str), key,
                 "must be a network_d mapping with a type", net)
        need(bool(self.discriminators) == bool(self.weights), join_path(path, "weights"),
             "discriminators and weights go together (give both or neither)", self.weights)


@dataclass
class GridOpts:
    """A part of the grid: these fidelity metrics x these settings (empty: all of them).

    A study lists several (``grids``) when the full cross product would be too large: e.g. every
    loss with one discriminator, and one loss with every discriminator and weight."""

    name: str = ""
    fidelity: list[str] = field(default_factory=list)
    discriminators: list[str] = field(default_factory=list)   # labels; "none" = no D
    weights: list[float] = field(default_factory=list)


@dataclass
class DataOpts:
    train: str = "builtin:train"                 # HR images the generators train on
    train_lq: str | None = None                  # paired LR folder (else made by the task)
    test: dict = field(default_factory=lambda: {"photos": "builtin:test/192"})  # name -> HR


@dataclass
class EvaluatorOpts:
    metrics: list[str] = field(default_factory=lambda: ["psnr_y", "ssim_y"])
    exclude_family: bool = True
    tile: int | None = None
    protocol: str = "matlab"    # psnr_y/ssim_y as optiqa evaluate --protocol (matlab | basicsr)


@dataclass
class IQADataOpts:
    """An IQA dataset: a database (``root``, optional ``meta``) or ``synthetic`` (built in)."""

    name: str = "synthetic"
    root: str | None = None
    meta: str | None = None
    size: int | None = None                 # synthetic: picture size
    # synthetic: photo names or a split; by default the held-out "test" split (the six classic
    # photos, the old default, include coffee and motorcycle, two training photos)
    photos: Union[str, list, None] = "test"
    distortions: list | None = None         # synthetic: distortion kinds (default: all)


@dataclass
class AssessmentOpts:
    metrics: list[str] = field(default_factory=list)   # default: the fidelity metrics
    datasets: list[IQADataOpts] = field(default_factory=lambda: [IQADataOpts()])
    bootstrap: int = 2000        # replicates of every interval and permutation test
    batch_size: int = 8
    workers: int = 2

    def check(self, path):
        need(self.bootstrap >= 0, join_path(path, "bootstrap"), "must be >= 0", self.bootstrap)


@dataclass
class TransferOpts:
    backbones: list[str] = field(default_factory=list)
    inits: list[str] = field(default_factory=lambda: ["random", "imagenet", "gan"])
    kind: str = "nr"
    mode: str = "frozen"
    dataset: IQADataOpts = field(default_factory=IQADataOpts)
    repeats: int = 10
    epochs: int = 30
    zero_shot: bool = True       # also score with every trained discriminator itself

    def check(self, path):
        for i, init in enumerate(self.inits):
            need(init in ("random", "imagenet", "gan"), f"{join_path(path, 'inits')}[{i}]",
                 "must be random, imagenet or gan", init)
        need(self.kind in ("nr", "fr"), join_path(path, "kind"), "must be nr or fr", self.kind)
        need(self.mode in ("frozen", "finetune"), join_path(path, "mode"),
             "must be frozen or finetune", self.mode)
        need(self.repeats >= 1, join_path(path, "repeats"), "must be >= 1", self.repeats)


@dataclass
class SlurmOpts:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 720          # per cell
    cpus_per_task: int = 8
    mem_gb: int = 64
    array_parallelism: int = 32
    extra: dict = field(default_factory=dict)   # passed to submitit as slurm_additional_parameters


@dataclass
class LauncherOpts:
    type: str = "local"
    gpus_per_cell: int = 1
    step_seconds: float | None = None   # measured seconds per training step on the target GPU
    slurm: SlurmOpts = field(default_factory=SlurmOpts)

    def check(self, path):
        need(self.type in LAUNCHERS, join_path(path, "type"),
             f"must be one of {', '.join(LAUNCHERS)}", self.type)
        need(self.gpus_per_cell >= 1, join_path(path, "gpus_per_cell"), "must be >= 1",
             self.gpus_per_cell)
        if self.step_seconds is not None:
            need(self.step_seconds > 0, join_path(path, "step_seconds"), "must be > 0",
                 self.step_seconds)


@dataclass
class RecoveryOpts:
    """The recovery test (:mod:`optiqa.diagnose.recovery`) of the study's fidelity metrics on one
    held-out image: can each loss, minimised over the pixels, bring the image back?"""

    image: str = "astronaut"      # a built-in image (of the test split)
    size: int = 96
    steps: int = 100
    starts: list[str] = field(default_factory=lambda: ["noise", "blur"])

    def check(self, path):
        need(self.size >= 32, join_path(path, "size"), "must be >= 32", self.size)
        need(self.steps >= 1, join_path(path, "steps"), "must be >= 1", self.steps)


@dataclass
class ReportOpts:
    crop_size: int = 64          # side of the HR crops in the visual comparison
    crop_images: int = 3         # test images shown in the visual comparison
    comparisons: list = field(default_factory=list)  # [cell glob A, cell glob B] pairs to test
    note: str = ""               # a paragraph at the top (e.g. what a small example lacks)
    # deprecated spelling of the top-level `recovery` (moved there when the config is checked;
    # accepted for one release)
    recovery: RecoveryOpts | None = None


@dataclass
class RehearsalInfo:
    """Set by ``--rehearse`` only: the config rehearsed and every substitution made."""

    source: str = ""
    substitutions: list[str] = field(default_factory=list)


@dataclass
class StudyConfig:
    name: str
    train: TrainBlock
    fidelity: FidelityGrid
    description: str = ""
    seed: int = 0
    adversarial: AdversarialOpts = field(default_factory=AdversarialOpts)
    tasks: dict = field(default_factory=lambda: dict(DEFAULT_TASKS))
    grids: list[GridOpts] = field(default_factory=list)  # parts of the grid (default: all)
    cells: dict = field(default_factory=dict)        # cell-name glob -> {key.path: value}
    data: DataOpts = field(default_factory=DataOpts)
    evaluators: EvaluatorOpts = field(default_factory=EvaluatorOpts)
    assessment: AssessmentOpts = field(default_factory=AssessmentOpts)
    transfer: TransferOpts | None = None
    launcher: LauncherOpts = field(default_factory=LauncherOpts)
    recovery: RecoveryOpts | None = None     # the recovery stage: the fidelity metrics as losses
    report: ReportOpts = field(default_factory=ReportOpts)
    source: str | None = None   # the study file (filled in by load_study_config)
    rehearsal: RehearsalInfo | None = None   # a CPU rehearsal of another config (--rehearse)

    def check(self, path):
        need(bool(self.name) and "/" not in self.name and self.name not in (".", ".."), "name",
             "must be a non-empty folder name", self.name)
        need(bool(self.tasks), "tasks", "needs at least one task", self.tasks)
        for key, task in self.tasks.items():
            need(run_names.valid_part(key), f"tasks.{key}",
                 "a task name must not contain '__' or '/'", key)
        names = [g.name for g in self.grids if g.name]
        need(len(set(names)) == len(names), "grids", "two grids share a name", names)
        if self.report.recovery is not None:   # the old place, configured where it did not run
            need(self.recovery is None, "report.recovery",
                 "is the old spelling of recovery; give only one of them", self.report.recovery)
            import logging

            logging.getLogger("optiqa.study").warning(
                "report.recovery is deprecated: write it as the top-level key recovery")
            self.recovery, self.report.recovery = self.report.recovery, None
        for i, g in enumerate(self.grids):
            for j, m in enumerate(g.fidelity):
                need(m in self.fidelity.metrics, f"grids[{i}].fidelity[{j}]",
                     "must be one of fidelity.metrics", m)
            labels = ["none", *self.adversarial.discriminators]
            for j, d in enumerate(g.discriminators):
                need(d in labels, f"grids[{i}].discriminators[{j}]",
                     f"must be one of {', '.join(labels)}", d)
            for j, w in enumerate(g.weights):
                need(w in self.adversarial.weights, f"grids[{i}].weights[{j}]",
                     "must be one of adversarial.weights", w)

    @property
    def task_opts(self) -> dict[str, TaskOpts]:
        from optiqa.core.config import from_mapping

        return {name: from_mapping(TaskOpts, task_defaults(name, opts), f"tasks.{name}")
                for name, opts in self.tasks.items()}

    @property
    def assessed_metrics(self) -> list[str]:
        return list(dict.fromkeys(self.assessment.metrics or self.fidelity.metrics))


def task_defaults(name: str, opts: dict | None) -> dict:
    """A task's options with the preset of the same name (:data:`optiqa.data.tasks.TASKS`:
    ``denoise_sigma25: {}`` is scale 1 with its noise) under what the study gives. A bicubic
    preset leaves the degradation unset: the test sets' own LR files are then used when they
    have them (the benchmark protocol), else the same MATLAB bicubic makes them."""
    from optiqa.data.tasks import TASKS

    opts = dict(opts or {})
    if name in TASKS.names():
        spec = TASKS.get(name)
        opts.setdefault("scale", spec.scale)
        if spec.degradation.get("type") != "bicubic":
            opts.setdefault("degradation", dict(spec.degradation))
    return opts


PATH_KEYS = ("dataroot_gt", "dataroot_lq", "pretrain_network_g", "pretrain_network_d")


def _resolve(path: str | None, base: Path) -> str | None:
    """A relative path is taken from the study file's folder (the rule of every config file; the
    errors then show the absolute path tried); ``builtin:...`` and absolute paths are kept."""
    from optiqa.core.config import resolve_path

    return resolve_path(path, base)


def map_paths(cfg: StudyConfig, fn) -> StudyConfig:
    """``cfg`` with ``fn`` applied to every path it names (the base training config, path keys of
    ``train.overrides``, the training and test data, the IQA databases), in place."""
    cfg.train.base = fn(cfg.train.base)
    cfg.train.overrides = {k: fn(v) if str(k).rsplit(".", 1)[-1] in PATH_KEYS
                           and isinstance(v, str) else v for k, v in cfg.train.overrides.items()}
    cfg.data.train = fn(cfg.data.train)
    cfg.data.train_lq = fn(cfg.data.train_lq)
    cfg.data.test = {k: fn(v) for k, v in cfg.data.test.items()}
    for ds in [*cfg.assessment.datasets, *([cfg.transfer.dataset] if cfg.transfer else [])]:
        ds.root, ds.meta = fn(ds.root), fn(ds.meta)
    return cfg


def load_study_config(path, overrides=()) -> StudyConfig:
    """Load a study YAML (plus ``key.path=value`` overrides); relative paths in the file are taken
    from its folder, those of overrides from the working directory. A study folder's
    ``study.yaml`` stores paths inside the folder relative to it, so it loads wherever the folder
    lies."""
    from optiqa.core.config import read_yaml

    base = Path(path).resolve().parent
    raw = _map_raw_paths(read_yaml(path), lambda p: _resolve(p, base))
    # then the overrides; relative paths they give are taken from the working directory
    raw = _map_raw_paths(apply_overrides(raw, overrides), lambda p: _resolve(p, Path.cwd()))
    cfg = load_config(raw, StudyConfig)
    cfg.source = str(Path(path).resolve())
    return cfg


def _map_raw_paths(raw: dict, fn) -> dict:
    """:func:`map_paths` on the raw (YAML) mapping, before it is typed (values of the wrong type
    are left to the typed loader's errors)."""
    def at(node, *keys):
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        return node

    def fix(node, key):
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = fn(node[key])

    fix(at(raw, "train"), "base")
    over = at(raw, "train", "overrides")
    if isinstance(over, dict):
        for k in list(over):
            if str(k).rsplit(".", 1)[-1] in PATH_KEYS:
                fix(over, k)
    fix(at(raw, "data"), "train")
    fix(at(raw, "data"), "train_lq")
    test = at(raw, "data", "test")
    if isinstance(test, dict):
        for k in list(test):
            fix(test, k)
    datasets = at(raw, "assessment", "datasets")
    for ds in [*(datasets if isinstance(datasets, list) else []), at(raw, "transfer", "dataset")]:
        fix(ds, "root")
        fix(ds, "meta")
    return raw
