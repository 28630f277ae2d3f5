"""``optiqa study CONFIG``: the whole study, stage by stage, resumable and idempotent.

Stages, in order: ``assess`` (the fidelity metrics as IQA models) -> ``train`` (the pre-training,
then every cell) -> ``evaluate`` (every model on the held-out test images, by the evaluator
panel) -> ``transfer`` (discriminator backbones reused for IQA, and zero-shot) -> ``analyze``
(the asymmetry between assessment and optimization) -> ``report``. Every stage skips what is
complete and current (markers and store keys record what produced them), so the same command
continues an interrupted study and redoes nothing that is finished; a half-written artifact is
never trusted. The configuration, its names and data folders are checked before any work starts.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from optiqa.core.device import device_name
from optiqa.core.errors import ConfigError
from optiqa.study.cells import select_cells
from optiqa.study.checks import check_metric_weights, check_study_config
from optiqa.study.config import StudyConfig
from optiqa.study.folder import StudyFolder, read_json
from optiqa.study.locks import POLL_SECONDS, poll_until_done
from optiqa.study.plan import StudyPlan

log = logging.getLogger("optiqa.study")
STAGES = ("assess", "train", "evaluate", "transfer", "analyze", "report")


@dataclass
class StudyOptions:
    stages: tuple = STAGES
    cells: str | None = None          # glob over cell names
    launcher: str | None = None       # overrides launcher.type
    device: str = "auto"
    progress: bool = False
    worker: bool = False              # a GPU worker: train/evaluate cells only, no store
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
            key = evaluation_key(plan.cfg, cell.task, marker["checkpoint_sha256"], data)
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


# ---------------------------------------------------------------------------------------------
# the stages
# ---------------------------------------------------------------------------------------------
def _index_runs(store, plan: StudyPlan) -> None:
    """The runner (and only it) records the runs in the SQLite index, from the run folders."""
    for name, job in plan.train_jobs().items():
        marker = plan.folder.run_complete(name, job.config_sha)
        existing = store.get_run(f"train/{name}")
        if marker and (existing is None or existing["status"] != "complete"):
            store.start_run(f"train/{name}", "train", {"config_sha": job.config_sha})
            store.finish_run(f"train/{name}", "complete")


def stage_train(plan: StudyPlan, cells, opts: StudyOptions, store) -> dict:
    from optiqa.study import launchers

    jobs = plan.train_jobs()
    wanted = {c.name for c in cells}
    needed = [j for n, j in jobs.items()
              if n in wanted or any(n in jobs[w].after for w in wanted)]
    launcher = opts.launcher or plan.cfg.launcher.type
    gpus_per_cell = plan.cfg.launcher.gpus_per_cell
    device = device_name(opts.device)
    if launcher == "slurm" and not opts.worker:
        status = launchers.train_slurm(plan, needed, wait=opts.wait)
    elif gpus_per_cell > 1:
        status = launchers.train_local(plan, needed, device, opts.progress,
                                       runner=lambda j: launchers.train_torchrun(
                                           plan, j, gpus_per_cell))
    else:
        n_gpus = _visible_gpus() if device.startswith("cuda") and not opts.worker else 0
        if n_gpus > 1:
            # pre-trainings first (every cell starts from them), then one worker per GPU
            launchers.train_local(plan, [j for j in needed if not j.after], device,
                                  opts.progress)
            launchers.spawn_gpu_workers(plan.folder.root, n_gpus, "train", opts.cells)
            status = {j.name: "done" for j in needed}
        else:
            status = launchers.train_local(plan, needed, device, opts.progress)
    if store is not None:
        _index_runs(store, plan)
    return status


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def stage_evaluate(plan: StudyPlan, cells, opts: StudyOptions) -> dict:
    from optiqa.study.evaluation import (data_identity, evaluate_baselines,
                                         evaluate_cell_locked, write_manifest, write_references)

    device = device_name(opts.device)
    cfg, folder = plan.cfg, plan.folder
    missing = [c.name for c in cells if read_json(folder.run_marker(c.name)) is None]
    if missing:
        raise ConfigError(f"{len(missing)} cell(s) are not trained yet (e.g. {missing[0]}); run "
                          "the train stage first")
    data = data_identity(cfg)
    for task in cfg.tasks:
        write_references(folder, cfg, task)
    status = {}
    if not opts.worker:
        for name in evaluate_baselines(folder, cfg, device, opts.progress, data):
            status[name] = "done"
    status.update(poll_until_done(
        cells, lambda c: evaluate_cell_locked(folder, cfg, c, device, opts.progress, data),
        POLL_SECONDS))
    labels = {name: name for name in status}
    labels.update({c.name: c.describe() for c in plan.cells})
    write_manifest(folder, cfg, labels)
    return status


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
    try:
        for stage in opts.stages:
            t0 = time.time()
            log.info("stage %s", stage)
            if stage == "assess" and not opts.worker:
                from optiqa.study.assessment import run_assessment

                result = {k: len(v["items"]) for k, v in run_assessment(
                    plan.folder, cfg, store, device, opts.progress).items()}
            elif stage == "train":
                result = stage_train(plan, cells, opts, store)
            elif stage == "evaluate":
                result = stage_evaluate(plan, cells, opts)
            elif stage == "transfer" and not opts.worker:
                from optiqa.study.assessment import run_transfer_stage

                result = sorted(run_transfer_stage(plan.folder, cfg, cells, store, device,
                                                   opts.progress))
            elif stage == "analyze" and not opts.worker:
                from optiqa.study.analysis import run_analysis
                from optiqa.study.diagnostics import run_recovery_for_study

                result = run_analysis(plan)["summary"]
                run_recovery_for_study(plan, device, opts.progress)
            elif stage == "report" and not opts.worker:
                from optiqa.study.report import write_report

                result = {k: str(v) for k, v in write_report(plan).items()}
            else:
                continue
            summary["stages"][stage] = {"result": result, "seconds": round(time.time() - t0, 1)}
    finally:
        if store is not None:
            store.close()
    record = plan.folder.study_log(int(time.time()))
    record.parent.mkdir(exist_ok=True)
    record.write_text(json.dumps(summary, indent=1, default=str))
    return summary
