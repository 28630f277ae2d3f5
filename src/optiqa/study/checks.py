"""A study configuration checked before any work starts: every name against the registries
(metrics, backbones, discriminators, datasets, degradations), every data folder, and the training
config every cell will run. Each failure is one line naming the study key."""
from __future__ import annotations

from pathlib import Path

from optiqa.core.errors import ConfigError, OptiqaError
from optiqa.study.cells import expand_cells, pretrain_config
from optiqa.study.config import StudyConfig


def _named(path: str, check) -> None:
    """Run ``check()``; re-raise an optiqa error as one line naming the study key ``path``."""
    try:
        check()
    except OptiqaError as e:
        raise ConfigError(f"{path}: {e}") from None


def check_study_config(cfg: StudyConfig, check_data: bool = True) -> None:
    """Every name and folder of the study, checked before any work starts (one-line errors that
    name the study key). The generated training config of every cell is checked too."""
    from optiqa import backbones
    from optiqa.data.datasets import dataset_names
    from optiqa.metrics.registry import get_spec

    if not Path(cfg.train.base).is_file():
        raise ConfigError(f"train.base: {cfg.train.base}: training config not found")
    for i, m in enumerate(cfg.fidelity.metrics):
        key = f"fidelity.metrics[{i}]"
        _named(key, lambda m=m: get_spec(m))
        if not get_spec(m).info.differentiable or get_spec(m).info.kind != "fr":
            raise ConfigError(f"{key}: metric {m!r} cannot be a training loss (it is not a "
                              "differentiable full-reference metric)")
    for i, m in enumerate(cfg.evaluators.metrics):
        _named(f"evaluators.metrics[{i}]", lambda m=m: get_spec(m))
    if cfg.evaluators.protocol not in ("matlab", "basicsr"):
        raise ConfigError(f"evaluators.protocol: {cfg.evaluators.protocol!r}: expected "
                          "'matlab' (the published tables) or 'basicsr'")
    for i, m in enumerate(cfg.assessment.metrics):
        _named(f"assessment.metrics[{i}]", lambda m=m: get_spec(m))
    for i, ds in enumerate(cfg.assessment.datasets):
        if ds.name.lower() not in [n.lower() for n in dataset_names()]:
            from optiqa.core.errors import UnknownNameError

            raise ConfigError(f"assessment.datasets[{i}].name: "
                              f"{UnknownNameError('dataset', ds.name, dataset_names())}")
    if cfg.transfer is not None:
        for i, bb in enumerate(cfg.transfer.backbones):
            _named(f"transfer.backbones[{i}]", lambda bb=bb: backbones.spec(bb))
    for label, net in cfg.adversarial.discriminators.items():
        from optiqa.nets.discriminators import discriminator_options

        _named(f"adversarial.discriminators.{label}.type",
               lambda net=net: discriminator_options(net["type"]))
        if "backbone" in net:
            _named(f"adversarial.discriminators.{label}.backbone",
                   lambda net=net: backbones.spec(net["backbone"]))
    for name, task in cfg.task_opts.items():
        from optiqa.data.sr_degradations import create_degradation

        _named(f"tasks.{name}.degradation",
               lambda t=task: create_degradation(t.degradation, t.scale))
    if check_data:
        check_data_folders(cfg)
    from optiqa.train.config import check_train_config, load_train_config

    configs = [(c.name, c.train_config) for c in expand_cells(cfg)]
    configs += [(f"pretrain__{t}", pretrain_config(cfg, t)) for t in cfg.tasks
                if cfg.train.pretrain is not None]
    for name, raw in configs:
        try:
            check_train_config(load_train_config(raw))
        except OptiqaError as e:
            raise ConfigError(f"cell {name}: {e}") from None


def check_data_folders(cfg: StudyConfig) -> None:
    from optiqa.data.sr import ImageFolder

    def folder(key, root):
        if root is None:
            return
        if not str(root).startswith("builtin:") and not Path(root).exists():
            raise ConfigError(f"{key}: {root}: data folder not found")
        _named(key, lambda: ImageFolder(_hr_folder(root)))
    folder("data.train", cfg.data.train)
    folder("data.train_lq", cfg.data.train_lq)
    for name, path in cfg.data.test.items():
        folder(f"data.test.{name}", path)
    for i, ds in enumerate(cfg.assessment.datasets):
        if ds.root is not None and not Path(ds.root).is_dir():
            raise ConfigError(f"assessment.datasets[{i}].root: {ds.root}: folder not found")


def _hr_folder(root: str) -> str:
    """A test set root with ``HR/`` holds its ground truth there (the SR benchmark layout)."""
    p = Path(root)
    return str(p / "HR") if not str(root).startswith("builtin:") and (p / "HR").is_dir() \
        else root


def check_metric_weights(cfg: StudyConfig, stages) -> None:
    """Build every metric the given stages will use (fidelity losses for ``train``, evaluators
    for ``evaluate``, assessed metrics for ``assess``) once on the CPU, so that a missing weight
    or model file (``optiqa[nr]`` not installed, pretrained VGG offline) fails in one line naming
    the study key before any training, not after it. The fingerprints computed on the way are
    cached for the evaluations' keys. Not part of ``--dry-run``, which may plan for another
    machine."""
    from optiqa.study.evaluation import metric_identity

    groups = {"train": ("fidelity.metrics", cfg.fidelity.metrics),
              "evaluate": ("evaluators.metrics", cfg.evaluators.metrics),
              "assess": ("assessment.metrics", cfg.assessed_metrics)}
    built = set()
    for stage in stages:
        if stage not in groups:
            continue
        key, names = groups[stage]
        for i, name in enumerate(names):
            if name not in built:
                _named(f"{key}[{i}]", lambda name=name: metric_identity(name))
                built.add(name)
