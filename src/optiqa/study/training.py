"""The train stage: one training run per cell (and the shared pre-training), resumable.

A cell runs under its lock (:mod:`optiqa.study.locks`) in ``<study>/runs/<cell>/`` through
:func:`optiqa.train.run.run_training`, which continues from the newest complete checkpoint of an
interrupted run (exact on the CPU: the same losses and weights as an uninterrupted run). When the
run reaches ``total_iter``, the completion marker ``complete.json`` is written last, recording the
hash of the training config and of the final generator checkpoint. A cell is done only when its
marker matches its current config; a run folder left by another configuration is an error that
says which settings differ, never silently reused or overwritten.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from optiqa.core.errors import ConfigError
from optiqa.core.hashing import file_sha256, stable_hash
from optiqa.study.folder import StudyFolder, read_json, write_json
from optiqa.study.locks import run_locked

log = logging.getLogger("optiqa.study")


# parsed training configs by content hash: the config check before any work, every status
# check and the launch share one parse per cell and study run
_PARSED: dict[str, object] = {}


def parsed_train_config(raw: dict):
    """``raw`` (a cell's training config mapping) as a :class:`~optiqa.train.config.TrainConfig`,
    parsed once per process and content. Callers must not mutate it (path mapping copies)."""
    from optiqa.train.config import load_train_config

    key = stable_hash(raw)
    if key not in _PARSED:
        _PARSED[key] = load_train_config(raw)
    return _PARSED[key]


@dataclass(frozen=True)
class TrainJob:
    """One run to train: a cell or a pre-training, with its raw training config."""

    name: str
    config: dict
    after: tuple = ()        # names of the jobs whose weights it starts from

    @property
    def config_sha(self) -> str:
        return stable_hash(self.config)

    @property
    def train_config(self):
        """The job's :class:`~optiqa.train.config.TrainConfig`, parsed once
        (:func:`parsed_train_config`; paths as written: relative ones are taken from the run
        folder by :func:`stored_config` and the trainer)."""
        return parsed_train_config(self.config)

    @property
    def total_iter(self) -> int:
        """``train.total_iter`` of the job, its default included (the raw config may omit it)."""
        return self.train_config.train.total_iter


def stored_config(folder: StudyFolder, job: TrainJob):
    """The job's training config as its run folder stores it (``config.yaml``): relative paths
    of the job (the pre-training's weights) are taken from the run folder, and paths inside the
    study folder are stored relative to the run folder again."""
    from optiqa.train.paths import resolved_paths, stored_paths

    run = folder.run(job.name)
    return stored_paths(resolved_paths(job.train_config, run.root), run)


def check_existing_run(folder: StudyFolder, job: TrainJob) -> None:
    """Refuse a run folder whose saved config is not this job's (a changed study config)."""
    run = folder.run(job.name)
    diff = config_differences(folder, job)
    if diff:
        raise ConfigError(
            f"cell {job.name}: its run folder {run.root} was trained under another configuration "
            f"({'; '.join(diff[:4])}{' ...' if len(diff) > 4 else ''}); to train it again under "
            "the new one, remove that folder (or study under another --out folder)")


def config_differences(folder: StudyFolder, job: TrainJob) -> list[str]:
    """``key: saved -> wanted`` for every setting in which the run folder's ``config.yaml``
    differs from the job's (empty when there is no run folder yet)."""
    from optiqa.core.config import config_differences as mapping_differences, to_mapping

    run = folder.run(job.name)
    if not run.config_path.is_file():
        return []
    return mapping_differences(run.raw_config(), to_mapping(stored_config(folder, job)))


def train_status(folder: StudyFolder, job: TrainJob) -> dict:
    """Where a run stands and why: ``state`` (trained | partial | pending | other config),
    the newest saved ``iteration``, the ``remaining`` training steps and ``why`` in words."""
    total = job.total_iter
    marker = folder.run_complete(job.name, job.config_sha)
    if marker is not None:
        return {"state": "trained", "iteration": marker["iteration"], "remaining": 0, "why": ""}
    run = folder.run(job.name)
    saved = run.state_iterations()
    done = saved[0] if saved else 0
    diff = config_differences(folder, job)
    if diff:
        return {"state": "other config", "iteration": done, "remaining": total,
                "why": f"its run folder was trained under another configuration "
                       f"({'; '.join(diff[:2])}{' ...' if len(diff) > 2 else ''}): remove "
                       f"runs/{job.name} to train it again"}
    waits = [d for d in job.after if read_json(folder.run_marker(d)) is None]
    after = f"; starts after {', '.join(waits)}" if waits else ""
    if not run.config_path.is_file():
        return {"state": "pending", "iteration": 0, "remaining": total,
                "why": after.removeprefix("; ")}
    if done >= total:
        return {"state": "partial", "iteration": done, "remaining": 0,
                "why": f"all {total} iterations are saved but the run is not marked complete "
                       "(stopped before its completion marker): the next run checks its last "
                       "checkpoint and marks it, without training"}
    if done == 0:
        return {"state": "partial", "iteration": 0, "remaining": total,
                "why": f"started, no checkpoint saved yet: trains from iteration 0{after}"}
    return {"state": "partial", "iteration": done, "remaining": total - done,
            "why": f"interrupted: continues from its checkpoint at iteration {done}, "
                   f"{total - done} of {total} iterations left"}


def is_trained(folder: StudyFolder, job: TrainJob) -> bool:
    return folder.run_complete(job.name, job.config_sha) is not None


def train_job(folder: StudyFolder, job: TrainJob, device: str = "auto",
              progress: bool = False) -> dict:
    """Train (or finish) one run and write its completion marker; returns the marker."""
    from optiqa.train.run import run_training

    done = folder.run_complete(job.name, job.config_sha)
    if done is not None:
        _compact_if_rehearsal(folder, run=folder.run(job.name))
        return done
    for dep in job.after:
        if read_json(folder.run_marker(dep)) is None:
            raise ConfigError(f"cell {job.name} starts from {dep}, which is not trained yet")
    check_existing_run(folder, job)
    run = folder.run(job.name)
    started = time.time()
    resume = bool(run.state_iterations()) or run.config_path.is_file()
    summary = run_training(job.train_config, run_dir=run.root, resume=resume, device=device,
                           progress=progress, console=progress, base_dir=run.root)
    total = job.total_iter
    if summary.get("iteration") != total:
        raise ConfigError(f"cell {job.name}: training stopped at iteration "
                          f"{summary.get('iteration')} of {total}")
    return write_marker(folder, job, started, summary.get("nan_skips"))


def write_marker(folder: StudyFolder, job: TrainJob, started: float | None = None,
                 nan_skips: int | None = None) -> dict:
    """Write ``job``'s completion marker (last: the run is complete from here on) and return it:
    the cell, its config hash, the final iteration, the final generator checkpoint and its
    SHA-256, the skipped non-finite steps and the seconds since ``started`` (None when the
    trainer ran in another process, e.g. under torchrun). Raises when the newest generator
    checkpoint is not the final iteration's."""
    run = folder.run(job.name)
    latest = run.latest("g")
    if latest is None or latest[0] != job.total_iter:
        raise ConfigError(f"cell {job.name}: no generator checkpoint of iteration "
                          f"{job.total_iter} in {run.root / 'models'} (newest: "
                          f"{latest[0] if latest else 'none'}); rerun the same command to "
                          "continue")
    marker = {"cell": job.name, "config_sha": job.config_sha, "iteration": job.total_iter,
              "checkpoint": str(latest[1].relative_to(run.root)),
              "checkpoint_sha256": file_sha256(latest[1]), "nan_skips": nan_skips,
              "seconds": None if started is None else round(time.time() - started, 1),
              "finished": time.time(),
              # the lambda and adversarial/fidelity gradient ratio it trained with (GAN runs)
              "gradient_ratio": run.gradient_ratio_record()}
    write_json(folder.run_marker(job.name), marker)
    _compact_if_rehearsal(folder, run)
    return marker


def _compact_if_rehearsal(folder: StudyFolder, run) -> None:
    """In a rehearsal, a finished run keeps only what later stages read (its resume states
    go, its model files are stored once per content: :mod:`optiqa.study.footprint`)."""
    from optiqa.core import rehearsal

    if rehearsal.substitutes_allowed():
        from optiqa.study.footprint import compact_finished_run

        compact_finished_run(run, folder.rehearsal_models)


def train_locked(folder: StudyFolder, job: TrainJob, device: str = "auto",
                 progress: bool = False, runner=None) -> str:
    """Train ``job`` under its lock: 'done' (already), 'trained', or 'busy' (another runner).
    ``runner(job)`` replaces the training in this process (a ``torchrun`` subprocess for a
    multi-GPU cell); it writes the completion marker itself."""
    def work():
        log.info("training %s", job.name)
        if runner is None:
            train_job(folder, job, device, progress)
        else:
            runner(job)
        return "trained"
    return run_locked(folder.lock("train", job.name), lambda: is_trained(folder, job), work)
