"""A study configuration checked before any work starts: every name against the registries
(metrics, backbones, discriminators, datasets, degradations), every data folder, and the training
config every cell will run. Each problem is one line naming the study key, and all of them are
reported at once."""
from __future__ import annotations

from pathlib import Path

from optiqa.core.errors import ConfigError, OptiqaError, Problems
from optiqa.study.cells import expand_cells, pretrain_config
from optiqa.study.config import StudyConfig
from optiqa.study.names import pretrain_name


def _named(path: str, check) -> None:
    """Run ``check()``; re-raise an optiqa error as lines naming the study key ``path``."""
    try:
        check()
    except ConfigError as e:
        raise ConfigError(problems=[f"{path}: {p}" for p in e.problems]) from None
    except OptiqaError as e:
        raise ConfigError(f"{path}: {e}") from None


def assessed_metric_keys(cfg: StudyConfig) -> list[tuple[str, str]]:
    """``(key, metric)`` of every assessed metric; without ``assessment.metrics`` the key says
    where the default came from (``assessment.metrics[1] (defaulted from fidelity.metrics[1])``)."""
    if cfg.assessment.metrics:
        return [(f"assessment.metrics[{cfg.assessment.metrics.index(m)}]", m)
                for m in cfg.assessed_metrics]
    return [(f"assessment.metrics[{i}] (defaulted from fidelity.metrics"
             f"[{cfg.fidelity.metrics.index(m)}])", m) for i, m in enumerate(cfg.assessed_metrics)]


def check_study_config(cfg: StudyConfig, check_data: bool = True) -> None:
    """Every name and folder of the study, checked before any work starts; every problem found
    is reported (one line each, naming the study key), and the generated training config of
    every cell is checked too (a problem shared by many cells is reported once)."""
    from optiqa.models import backbones
    from optiqa.data.datasets import dataset_names
    from optiqa.metrics.registry import get_spec

    problems = Problems()
    base_ok = Path(cfg.train.base).is_file()
    if not base_ok:
        problems.add(f"train.base: {cfg.train.base}: training config not found")
    for i, m in enumerate(cfg.fidelity.metrics):
        key = f"fidelity.metrics[{i}]"
        with problems.collect():
            _named(key, lambda m=m: get_spec(m))
            info = get_spec(m).info
            if info.kind == "nr" and info.differentiable:
                problems.add(
                    f"{key}: {m!r} is a no-reference metric: a study compares full-reference "
                    "fidelity losses. Train with it as a no-reference term instead (optiqa train "
                    f"CONFIG train.fidelity_opt.metric={m} train.fidelity_opt.weight=0.01, beside "
                    "pixel_opt; docs/metrics.md), or judge the study's outputs with it "
                    "(evaluators.metrics)")
            elif not info.differentiable or info.kind != "fr":
                problems.add(f"{key}: metric {m!r} cannot be a training loss (it is not a "
                             "differentiable full-reference metric)")
    for i, m in enumerate(cfg.evaluators.metrics):
        with problems.collect():
            _named(f"evaluators.metrics[{i}]", lambda m=m: get_spec(m))
    if cfg.evaluators.protocol not in ("matlab", "basicsr"):
        problems.add(f"evaluators.protocol: {cfg.evaluators.protocol!r}: expected "
                     "'matlab' (the published tables) or 'basicsr'")
    for i, m in enumerate(cfg.assessment.metrics):
        with problems.collect():
            _named(f"assessment.metrics[{i}]", lambda m=m: get_spec(m))
    for i, ds in enumerate(cfg.assessment.datasets):
        if ds.name.lower() not in [n.lower() for n in dataset_names()]:
            from optiqa.core.errors import UnknownNameError

            problems.add(f"assessment.datasets[{i}].name: "
                         f"{UnknownNameError('dataset', ds.name, dataset_names())}")
    if cfg.transfer is not None:
        for i, bb in enumerate(cfg.transfer.backbones):
            with problems.collect():
                _named(f"transfer.backbones[{i}]", lambda bb=bb: backbones.spec(bb))
    for label, net in cfg.adversarial.discriminators.items():
        from optiqa.nets.discriminators import discriminator_options

        with problems.collect():
            _named(f"adversarial.discriminators.{label}.type",
                   lambda net=net: discriminator_options(net["type"]))
        if "backbone" in net:
            with problems.collect():
                _named(f"adversarial.discriminators.{label}.backbone",
                       lambda net=net: backbones.spec(net["backbone"]))
    for name, task in cfg.task_opts.items():
        from optiqa.data.task_degradations import create_degradation

        with problems.collect():
            _named(f"tasks.{name}.degradation",
                   lambda t=task: create_degradation(t.degradation, t.scale))
    if check_data:
        with problems.collect():
            check_data_folders(cfg)
    if base_ok and not problems:  # the cells' configs are made from the names checked above
        _check_cell_configs(cfg, problems)
    problems.raise_any()


def _check_cell_configs(cfg: StudyConfig, problems: Problems) -> None:
    from optiqa.study.training import parsed_train_config
    from optiqa.train.config_checks import check_train_config

    configs = [(c.name, c.train_config) for c in expand_cells(cfg)]
    configs += [(pretrain_name(t), pretrain_config(cfg, t)) for t in cfg.tasks
                if cfg.train.pretrain is not None]
    cells_of: dict[str, list[str]] = {}
    for name, raw in configs:
        try:
            check_train_config(parsed_train_config(raw))
        except ConfigError as e:
            for p in e.problems:
                cells_of.setdefault(p, []).append(name)
        except OptiqaError as e:
            cells_of.setdefault(str(e), []).append(name)
    for problem, names in cells_of.items():
        more = f" (and {len(names) - 2} more)" if len(names) > 2 else ""
        problems.add(f"cell{'s' if len(names) > 1 else ''} {', '.join(names[:2])}{more}: "
                     f"{problem}")


def check_data_folders(cfg: StudyConfig) -> None:
    from optiqa.data.task_datasets import ImageFolder

    problems = Problems()  # every missing folder at once

    def folder(key, root):
        if root is None:
            return
        if not str(root).startswith("builtin:") and not Path(root).exists():
            problems.add(f"{key}: {root}: data folder not found")
            return
        with problems.collect():
            _named(key, lambda: ImageFolder(_hr_folder(root)))
    folder("data.train", cfg.data.train)
    folder("data.train_lq", cfg.data.train_lq)
    for name, path in cfg.data.test.items():
        folder(f"data.test.{name}", path)
    for i, ds in enumerate(cfg.assessment.datasets):
        if ds.root is not None and not Path(ds.root).is_dir():
            problems.add(f"assessment.datasets[{i}].root: {ds.root}: folder not found")
    problems.raise_any()


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

    groups = {"train": [(f"fidelity.metrics[{i}]", m) for i, m in enumerate(cfg.fidelity.metrics)],
              "evaluate": [(f"evaluators.metrics[{i}]", m)
                           for i, m in enumerate(cfg.evaluators.metrics)],
              "assess": assessed_metric_keys(cfg)}
    built = set()
    problems = Problems()
    for stage in stages:
        for key, name in groups.get(stage, []):
            if name not in built:
                with problems.collect():
                    _named(key, lambda name=name: metric_identity(name))
                built.add(name)
    problems.raise_any()
