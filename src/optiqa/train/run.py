"""Running one training job: ``optiqa train CONFIG [key.path=value ...] [--resume] [--study]``.

:func:`run_training` loads and validates the config, builds the :class:`Trainer` (data, networks,
objective, metrics; any error here is a one-line :class:`ConfigError` and nothing has been
written), then creates ``<study>/runs/<name>/``, saves the resolved ``config.yaml`` and trains.

Resume (``resume=True``) continues an existing run from its newest complete checkpoint (see
:mod:`optiqa.train.checkpoint`). The run's ``config.yaml`` describes its weights, so it changes only
when training continues under the new values: resuming a complete run with other values trains
nothing and keeps the saved config (saying so); a ``total_iter`` below the run's current iteration
is refused; values that change while training continues are logged in ``log.txt`` and saved.
Resuming a run that does not exist is an error (:class:`RunNotFound`), not a fresh start.

A first SIGINT/SIGTERM stops after the current iteration with a checkpoint
(:mod:`optiqa.train.interrupt`). Under ``torchrun`` every rank runs this function.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from optiqa.core.config import config_differences, save_config, to_mapping
from optiqa.core.errors import ConfigError
from optiqa.core.runs import RunFolder
from optiqa.train import distributed as du
from optiqa.train.checkpoint import ResumePoint, find_resume_point
from optiqa.train.config import TrainConfig, load_train_config
from optiqa.train.paths import read_train_config, resolved_paths, stored_paths
from optiqa.train.logs import setup_logger
from optiqa.train.trainer import Trainer

log = logging.getLogger("optiqa.train")

DEFAULT_STUDY = "studies/default"


class RunNotFound(ConfigError):
    """``resume`` names a run folder that holds no run (no ``config.yaml``)."""

    def __init__(self, root: Path):
        super().__init__(f"{root}: there is no run to resume (no config.yaml); start it without "
                         "resuming", option="resume")
        self.root = root


def run_training(config, overrides=(), study=DEFAULT_STUDY, resume: bool = False,
                 device: str = "auto", progress: bool = True, run_dir=None,
                 console: bool = True, quiet: bool = False,
                 resume_hint: str | None = None, base_dir=None) -> dict:
    """Load, validate, build, then train (or resume) one run; see the module docstring.

    Nothing is written before the config, data and networks have been checked. The run folder is
    ``run_dir`` or ``<study>/runs/<name>``; an existing one needs ``resume=True``. ``quiet``: the
    console shows warnings only. ``resume_hint``: how the caller resumes, for the log when the
    run is interrupted. Relative paths of a config file are taken from its folder; ``base_dir``:
    the folder those of a config mapping or a parsed :class:`TrainConfig` are taken from
    (default: the working directory); the run's ``config.yaml`` stores paths inside its study
    folder relative to the run folder, any other path absolute.
    """
    if isinstance(config, TrainConfig):  # parsed already (a study cell's, parsed once)
        if overrides:
            raise ConfigError("overrides go with a config file or mapping, not a parsed "
                              "TrainConfig")
        cfg = resolved_paths(config, base_dir or Path.cwd())
    elif isinstance(config, Mapping):
        cfg = resolved_paths(load_train_config(config, overrides), base_dir or Path.cwd())
    else:  # a file: its paths from its folder, the overrides' from the working directory
        cfg = read_train_config(config, overrides)
    run = RunFolder(run_dir) if run_dir else RunFolder.in_study(study, cfg.name)
    stored = stored_paths(cfg, run)
    if not resume and run.root.exists() and any(run.root.iterdir()):
        raise ConfigError(f"{run.root}: run folder already exists; resume it, or give the run "
                          "another name (name=...) or study folder", option="resume")
    point, changes = None, []
    if resume:
        if not run.is_run():
            raise RunNotFound(run.root)
        point = find_resume_point(run)
        changes = config_differences(_saved_config(run), to_mapping(stored))
        if point is not None and cfg.train.total_iter < point.iteration:
            raise ConfigError(f"train.total_iter {cfg.train.total_iter} is below the iteration "
                              f"{point.iteration} that run {run.root} has reached; a run cannot be "
                              "shortened (its checkpoints can be evaluated, or start a new run)")
        if point is not None and point.iteration >= cfg.train.total_iter:
            return _complete(run, cfg, point, changes, console, quiet)
    info, device = du.init_distributed(device)
    try:
        trainer = Trainer(cfg, device, info, progress=progress)
        du.barrier()  # every rank has checked the folder before rank 0 creates it
        if info.is_main:
            run.create()
            run.remove_stale_temp_files()
        trainer.attach(run, console=console, quiet=quiet)
        if point is not None:
            try:
                trainer.load(point)
            except (RuntimeError, KeyError, ValueError) as e:
                lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [""]
                why = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
                raise ConfigError(f"checkpoint {point.iteration} of {run.root} does not fit the "
                                  f"config: {why}") from None
        elif resume:
            log.info("resume: no complete checkpoint in %s, starting from iteration 0",
                     run.root)
        if changes:  # the checkpoint fits: training continues under the new values
            log.warning("continuing run %s under changed settings, now saved in its config.yaml "
                        "(from iteration %d on): %s", run.root, point.iteration if point else 0,
                        "; ".join(changes))
        if info.is_main and (not resume or changes):
            save_config(stored, run.config_path)
        du.barrier()
        result = trainer.fit(resume_hint=resume_hint)
        # every rank finishes its last collective before any rank tears the group down (a
        # rank that destroys the gloo group while a peer is still in a collective can abort it)
        du.barrier()
        return result
    finally:
        du.cleanup()
        for handler in list(log.handlers):  # release log.txt (several runs in one process)
            log.removeHandler(handler)
            handler.close()


def _complete(run: RunFolder, cfg: TrainConfig, point: ResumePoint, changes: list[str],
              console: bool, quiet: bool) -> dict:
    """A resumed run that is already complete: nothing is trained and nothing is written."""
    setup_logger(None, console=console,
                 console_level=logging.WARNING if quiet else logging.INFO)
    try:
        if changes:
            log.warning("run %s is complete (iteration %d): nothing to train, so its config.yaml "
                        "is kept; these given values were not applied: %s", run.root,
                        point.iteration, "; ".join(changes))
        else:
            log.info("run %s is already complete (iteration %d)", cfg.name, point.iteration)
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
    return {"run": str(run.root), "iteration": point.iteration,
            "nan_skips": int(point.state.get("nan_skips", 0)), "val": {}, "complete": True}


def _saved_config(run: RunFolder) -> dict:
    """The run's config.yaml as the loader resolves it (old key names migrated, defaults filled
    in), so that only real differences count; the raw file if it no longer loads."""
    try:
        return to_mapping(run.config(TrainConfig))
    except ConfigError:
        return run.raw_config()
