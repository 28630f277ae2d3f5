"""Running one training job: ``optiqa train CONFIG [key.path=value ...] [--resume] [--study]``.

:func:`run_training` loads and validates the config, builds the :class:`Trainer` (data, networks,
objective, metrics; any error here is a one-line :class:`ConfigError` and nothing has been
written), then creates ``<study>/runs/<name>/``, saves the resolved ``config.yaml`` and trains;
with ``resume`` it first loads the newest complete checkpoint (see
:mod:`optiqa.train.checkpoint`). Under ``torchrun`` every rank runs this function.
"""
from __future__ import annotations

import logging
from pathlib import Path

from optiqa.core.errors import ConfigError
from optiqa.core.config import save_config, to_mapping
from optiqa.train.config import TrainConfig, load_train_config
from optiqa.train import distributed as du
from optiqa.core.runs import RunFolder
from optiqa.train.checkpoint import find_resume_point
from optiqa.train.trainer import Trainer

log = logging.getLogger("optiqa.train")

DEFAULT_STUDY = "studies/default"


def run_training(config, overrides=(), study=DEFAULT_STUDY, resume: bool = False,
                 device: str = "auto", progress: bool = True, run_dir=None,
                 console: bool = True) -> dict:
    """Load, validate, build, then train (or resume) one run; see the module docstring.

    Nothing is written before the config, data and networks have been checked. The run folder is
    ``run_dir`` or ``<study>/runs/<name>``; an existing one needs ``resume=True``.
    """
    cfg = load_train_config(config, overrides)
    run = RunFolder(Path(run_dir) if run_dir else Path(study) / "runs" / cfg.name)
    if not resume and run.root.exists() and any(run.root.iterdir()):
        raise ConfigError(f"{run.root}: run folder already exists; resume it, or give the run "
                          "another name (name=...) or study folder", option="resume")
    info, device = du.init_distributed(device)
    try:
        trainer = Trainer(cfg, device, info, progress=progress)
        point = find_resume_point(run) if resume else None
        du.barrier()  # every rank has checked the folder before rank 0 creates it
        if info.is_main:
            run.create()
            run.remove_stale_temp_files()
        trainer.attach(run, console=console)
        if info.is_main:
            _check_saved_config(run, cfg)
            save_config(cfg, run.config_path)
        du.barrier()
        if point is not None:
            trainer.load(point)
        elif resume:
            log.info("resume: no complete checkpoint in %s, starting from iteration 0",
                     run.root)
        if trainer.iteration >= cfg.train.total_iter:
            log.info("run %s is already complete (iteration %d)", cfg.name, trainer.iteration)
            return {"run": str(run.root), "iteration": trainer.iteration,
                    "nan_skips": trainer.guard.skips, "val": {}}
        return trainer.fit()
    finally:
        du.cleanup()
        for handler in list(log.handlers):  # release log.txt (several runs in one process)
            log.removeHandler(handler)
            handler.close()


def _check_saved_config(run: RunFolder, cfg: TrainConfig) -> None:
    """On resume, say which settings differ from the run's saved config (they take effect)."""
    if not run.config_path.is_file():
        return
    import yaml

    try:
        old = yaml.safe_load(run.config_path.read_text()) or {}
    except yaml.YAMLError:
        return
    new = to_mapping(cfg)
    changed = []

    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        elif a != b:
            changed.append(f"{path}: {a!r} -> {b!r}")
    walk(old, new, "")
    if changed:
        log.warning("config differs from the saved one (the new values apply): %s",
                    "; ".join(changed))
