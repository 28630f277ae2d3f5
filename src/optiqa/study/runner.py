"""``optiqa study CONFIG``: the whole study, stage by stage, resumable and idempotent.

Stages, in order: ``assess`` (the fidelity metrics as IQA models) -> ``train`` (the pre-training,
then every cell) -> ``evaluate`` (every model on the held-out test images, by the evaluator
panel) -> ``transfer`` (discriminator backbones reused for IQA, and zero-shot) -> ``analyze``
(the asymmetry between assessment and optimization) -> ``recovery`` (the recovery test of the
fidelity metrics, when configured) -> ``report``. Every stage skips what is
complete and current (markers and store keys record what produced them), so the same command
continues an interrupted study and redoes nothing that is finished; a half-written artifact is
never trusted. The configuration, its names and data folders are checked before any work starts.

Each stage is one module with a ``run_stage(ctx)`` entry (:mod:`~optiqa.study.assessment`,
:mod:`~optiqa.study.launchers` for training, :mod:`~optiqa.study.evaluation`,
:mod:`~optiqa.study.transfer`, :mod:`~optiqa.study.analysis`, :mod:`~optiqa.study.diagnostics`,
:mod:`~optiqa.study.report`),
called through :data:`STAGE_TABLE`; this module checks, plans and loops.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from optiqa.core.device import device_name
from optiqa.core.errors import ConfigError
from optiqa.study.cells import select_cells
from optiqa.study.checks import check_metric_weights, check_study_config
from optiqa.study.config import StudyConfig
from optiqa.study.folder import StudyFolder, read_json
from optiqa.study.plan import StudyPlan

log = logging.getLogger("optiqa.study")


# ---------------------------------------------------------------------------------------------
# the stages: one module each, called through this table
# ---------------------------------------------------------------------------------------------
@dataclass
class StageContext:
    """What every stage is given: the plan, the selected cells, the options, the results store
    (None in a GPU worker: SQLite has one writer, the runner) and the resolved device."""

    plan: StudyPlan
    cells: list
    opts: StudyOptions
    store: object
    device: str


def _stage(module: str):
    """The stage's ``run_stage(ctx)``, its module imported only when the stage runs (torch, timm
    and matplotlib are heavy, and `optiqa --help` imports this module)."""
    def run(ctx):
        return importlib.import_module(module).run_stage(ctx)
    run.__name__ = f"{module}.run_stage"
    return run


# {stage: (function, runs_in_worker)}, in the order the stages run; a GPU worker process
# (``--worker``) runs only the stages that share cells through their locks
STAGE_TABLE = {
    "assess": (_stage("optiqa.study.assessment"), False),
    "train": (_stage("optiqa.study.launchers"), True),
    "evaluate": (_stage("optiqa.study.evaluation"), True),
    "transfer": (_stage("optiqa.study.transfer"), False),
    "analyze": (_stage("optiqa.study.analysis"), False),
    "recovery": (_stage("optiqa.study.diagnostics"), False),
    "report": (_stage("optiqa.study.report"), False),
}
STAGES = tuple(STAGE_TABLE)


@dataclass
class StudyOptions:
    stages: tuple = STAGES
    cells: str | None = None          # glob over cell names
    launcher: str | None = None       # overrides launcher.type
    device: str = "auto"
    progress: bool = False
    worker: bool = False              # a GPU worker: train/evaluate cells only, no store
    cpu_workers: int | None = None    # CPU: processes for the cells (None: one per core)
    pool: bool = False                # a CPU worker of the pool (optiqa.study.pool)
    step_seconds: float | None = None  # measured seconds per training step (for --dry-run)
    wait: bool = True                 # SLURM: wait for the jobs
    measure_cpu: bool = False         # --dry-run without a step time: time CPU steps here
    notes: list = field(default_factory=list)


def step_seconds_from(path) -> float:
    """Seconds per training step from ``bench/train_step.py --json`` output."""
    data = read_json(Path(path))
    if not data or "trainer_ms_per_iter" not in data:
        raise ConfigError(f"{path}: not the JSON output of bench/train_step.py --json (no "
                          "trainer_ms_per_iter)")
    return float(data["trainer_ms_per_iter"]) / 1000.0


# ---------------------------------------------------------------------------------------------
# status and the dry run
# ---------------------------------------------------------------------------------------------
def status_rows(plan: StudyPlan, cells) -> list[dict]:
    """One row per run: name, trained?, evaluated?, iterations, and why it is not done."""
    from optiqa.study.evaluation import data_identity, evaluation_key
    from optiqa.study.training import train_status

    jobs = plan.train_jobs()
    names = {c.name for c in cells}
    rows = []
    data = None
    for name, job in jobs.items():
        if name not in names and not any(name in jobs[n].after for n in names if n in jobs):
            continue
        st = train_status(plan.folder, job)
        marker = plan.folder.run_complete(name, job.config_sha)
        evaluated = "-"
        if marker and name in names:
            if data is None:
                data = data_identity(plan.cfg)
            cell = plan.cell(name)
            key = evaluation_key(plan.cfg, cell.task, marker["checkpoint_sha256"], data,
                                 cell)
            evaluated = "yes" if plan.folder.evaluation_complete(name, key) else "no"
        rows.append({"run": name, "train": st["state"], "iterations":
                     f"{st['iteration']}/{job.total_iter}",
                     "evaluated": evaluated, "remaining_steps": st["remaining"],
                     "why": st["why"]})
    return rows


def dry_run(plan: StudyPlan, opts: StudyOptions) -> dict:
    cells = select_cells(plan.cells, opts.cells)
    rows = status_rows(plan, cells)
    step = opts.step_seconds or plan.cfg.launcher.step_seconds
    steps = sum(r["remaining_steps"] for r in rows)
    gpus = plan.cfg.launcher.gpus_per_cell
    hours = steps * step * gpus / 3600 if step else None
    notes = []
    try:
        from optiqa.study.checks import check_data_folders

        check_data_folders(plan.cfg)
    except ConfigError as e:
        notes.append(f"{e} (the data is checked again when the study runs)")
    from optiqa.study.design import check_design

    seeds = len(plan.cfg.train.seeds) or 1
    design = check_design(plan.cfg)
    cpu = None
    if not step and steps and opts.measure_cpu:  # no GPU step time: time steps on this CPU
        from optiqa.study.estimate import cpu_estimate

        cpu = cpu_estimate(plan.train_jobs(), rows)
    return {"study": plan.cfg.name, "folder": str(plan.folder.root), "cells": len(cells),
            "seeds": seeds, "settings": len({c.setting_name for c in cells}),
            "design": design.to_json(),
            "runs": rows, "remaining_steps": steps, "step_seconds": step,
            "gpus_per_cell": gpus, "gpu_hours": hours, "cpu_estimate": cpu, "notes": notes}


def run_study(cfg: StudyConfig, out: str | Path, opts: StudyOptions | None = None) -> dict:
    """Run the study's stages into ``out`` (see the module docstring); returns a summary."""
    from optiqa.core.store import ResultsStore

    opts = opts or StudyOptions()
    unknown = [s for s in opts.stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage {unknown[0]!r}; stages: {', '.join(STAGES)}",
                          option="stage")
    device_name(opts.device)       # the one device check (cli and library callers alike)
    check_study_config(cfg)        # every name and folder, before any work
    if not opts.worker:
        check_metric_weights(cfg, opts.stages)  # every weight file, before any training
    plan = StudyPlan(cfg, StudyFolder(Path(out)))
    cells = select_cells(plan.cells, opts.cells)
    if not cells:
        raise ConfigError(f"no cell matches {opts.cells!r}; cells: "
                          f"{', '.join(c.name for c in plan.cells[:6])} ...", option="cells")
    if not opts.worker:
        from optiqa.study.folder import write_json
        from optiqa.study.heldout import check_heldout

        # training images never measure: checked by content before anything is written
        heldout = check_heldout(cfg)
        plan.save()
        write_json(plan.folder.heldout, heldout)
    store = None if opts.worker else ResultsStore(plan.folder.root)
    summary: dict = {"study": cfg.name, "folder": str(plan.folder.root), "stages": {}}
    device = device_name(opts.device)
    ctx = StageContext(plan, cells, opts, store, device)
    if opts.worker and opts.pool:  # a CPU worker: its share of the pool, nothing else
        from optiqa.study.pool import build_tasks, drain, pooled

        t0 = time.time()
        status = drain(build_tasks(plan, cells, pooled(opts.stages), device, opts.progress),
                       journal=plan.folder.pool_log(os.getpid()))
        summary["stages"]["pool"] = {"result": status, "seconds": round(time.time() - t0, 1)}
        return summary
    try:
        with contextlib.ExitStack() as workers:
            pool = _start_pool(ctx, workers)
            for stage in opts.stages:
                run, in_worker = STAGE_TABLE[stage]
                if opts.worker and not in_worker:
                    continue
                if pool is not None and stage in pool.stages:
                    summary["stages"]["pool"] = pool.finish(workers)
                    pool = None
                t0 = time.time()
                log.info("stage %s", stage)
                with _threads_after_pool(ctx, stage):
                    result = run(ctx)
                summary["stages"][stage] = {"result": result,
                                            "seconds": round(time.time() - t0, 1)}
    finally:
        if store is not None:
            store.close()
    if not opts.worker:  # a worker's share is in its runner's summary
        record = plan.folder.study_log(int(time.time()))
        record.parent.mkdir(exist_ok=True)
        record.write_text(json.dumps(summary, indent=1, default=str))
    return summary


# ---------------------------------------------------------------------------------------------
# the CPU pool (optiqa.study.pool): the work of several stages shared by the CPU processes
# ---------------------------------------------------------------------------------------------
def uses_pool(ctx) -> bool:
    """Whether the stages' lockable work goes through the CPU pool: on the CPU, with the local
    launcher and one device per cell, in the runner (not a worker), for a pooled stage."""
    from optiqa.study.pool import pooled

    opts, cfg = ctx.opts, ctx.plan.cfg
    return (ctx.device == "cpu" and not opts.worker
            and (opts.launcher or cfg.launcher.type) == "local"
            and cfg.launcher.gpus_per_cell == 1 and bool(pooled(opts.stages)))


@dataclass
class _Pool:
    tasks: list
    stages: tuple
    started: float
    folder: StudyFolder | None = None   # where the pool's journal goes (logs/pool-<pid>.jsonl)

    def finish(self, workers: contextlib.ExitStack) -> dict:
        """This process's share of the pool on one torch thread, until every task is done;
        then the workers are waited for (a failed one raises). The stage log's entry."""
        from optiqa.study.pool import drain
        from optiqa.study.workers import one_thread

        t0 = time.time()
        log.info("CPU pool: %d tasks of the stages %s", len(self.tasks), ", ".join(self.stages))
        timeline: list = []
        with one_thread():
            status = drain(self.tasks, timeline=timeline, journal=None if self.folder is None
                           else self.folder.pool_log(os.getpid()))
        waited = time.time()
        workers.close()
        # every cell is trained: the ground-truth features they shared are not needed again
        if self.folder is not None:
            shutil.rmtree(self.folder.reference_features, ignore_errors=True)
            with contextlib.suppress(OSError):  # cache/ itself, when nothing else is in it
                self.folder.reference_features.parent.rmdir()
        counts: dict = {}
        for key, st in status.items():
            stage = key.split(":", 1)[0]
            counts.setdefault(stage, {}).setdefault(st, 0)
            counts[stage][st] += 1
        # what this process ran, in seconds from the workers' start (they began before assess)
        ran = [[key, round(start - self.started, 1), round(seconds, 1)]
               for key, start, seconds in timeline]
        return {"result": counts, "seconds": round(time.time() - t0, 1),
                "workers_started_before_it_s": round(t0 - self.started, 1),
                "waited_for_workers_s": round(time.time() - waited, 1), "runner_ran": ran}


def _start_pool(ctx, workers: contextlib.ExitStack):
    """On the CPU (:func:`uses_pool`): the pool's tasks, and its worker processes started now
    (before the assess stage, which this process runs meanwhile) inside ``workers``."""
    if not uses_pool(ctx):
        return None
    from optiqa.study.pool import build_tasks, pooled, threads_env
    from optiqa.study.schedule import order_env
    from optiqa.study.workers import cpu_workers, worker_count

    stages = tuple(pooled(ctx.opts.stages))
    tasks = build_tasks(ctx.plan, ctx.cells, ctx.opts.stages, ctx.device, ctx.opts.progress,
                        runner=ctx)
    pending = sum(not t.done() for t in tasks if not t.runner_only)
    extra = worker_count(ctx.opts.cpu_workers, pending) - 1 if pending else 0
    # the pre-training keeps this process's thread count wherever it runs
    workers.enter_context(cpu_workers(ctx.plan.folder.root, ",".join(stages), ctx.opts.cells,
                                      extra, pool=True,
                                      env={**threads_env(), **order_env(ctx.cells)}))
    return _Pool(tasks, stages, time.time(), ctx.plan.folder)


def _threads_after_pool(ctx, stage: str):
    """Transfer and recovery on one torch thread on the CPU, where the pool runs them: what
    the pool left to the stage is computed as the pool computes it."""
    if stage in ("transfer", "recovery") and uses_pool(ctx):
        from optiqa.study.workers import one_thread

        return one_thread()
    return contextlib.nullcontext()
