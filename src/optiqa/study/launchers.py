"""Where the training runs of a study execute: this process, one worker per GPU, or SLURM.

- ``local``: cells run one after another in this process; with several GPUs visible and one GPU
  per cell, one worker process per GPU (``CUDA_VISIBLE_DEVICES`` set for each) takes cells in
  turn; with ``gpus_per_cell > 1`` each cell runs under ``torchrun`` (PyTorch DDP). On the CPU,
  the cells run on one torch thread each in this process and one worker per further core
  (:mod:`optiqa.study.workers`).
- ``slurm``: every pending cell is submitted as a SLURM job through ``submitit`` (optional extra
  ``optiqa[slurm]``) with the partition, GPUs, time and array parallelism of
  ``launcher.slurm``; the runner waits for them. A job writes only into its cell's run folder;
  the runner alone indexes the run folders into the SQLite store (SQLite must not be written from
  many nodes over a network file system).

In every case a cell runs under its lock file, so a second runner on the same study (or a
worker) never trains a cell twice, and a crashed owner's lock is detected as stale.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from optiqa.core.errors import ConfigError, WorkerError
from optiqa.study.folder import read_json, write_json
from optiqa.study.locks import POLL_SECONDS, poll_until_done
from optiqa.study.training import TrainJob, is_trained, train_locked, write_marker
from optiqa.study.workers import exit_words, worker_command

log = logging.getLogger("optiqa.study")


def _ready(plan, job: TrainJob) -> bool:
    jobs = plan.train_jobs()
    return all(is_trained(plan.folder, jobs[d]) for d in job.after if d in jobs)


def train_local(plan, jobs: list[TrainJob], device: str = "auto", progress: bool = False,
                poll: float = POLL_SECONDS, runner=None) -> dict[str, str]:
    """Train every job in this process; jobs held by another runner are waited for.

    Returns ``{name: 'trained' | 'done'}``. ``runner(job)`` replaces the in-process training
    (e.g. a ``torchrun`` subprocess for multi-GPU cells).
    """
    def attempt(job):
        if not _ready(plan, job):
            return None  # waits for the run it starts from
        return train_locked(plan.folder, job, device, progress, runner)
    return poll_until_done(jobs, attempt, poll)


# ---------------------------------------------------------------------------------------------
# several GPUs on one machine
# ---------------------------------------------------------------------------------------------
def spawn_gpu_workers(study_dir: Path, n_gpus: int, stage: str, cells: str | None) -> None:
    """One worker process per GPU (``CUDA_VISIBLE_DEVICES=i``); they share the cells through
    the lock files. Raises when a worker fails."""
    procs = []
    for gpu in range(n_gpus):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)}
        procs.append(subprocess.Popen(worker_command(study_dir, stage, cells), env=env))
    codes = [p.wait() for p in procs]
    if any(codes):  # their output went to this process's terminal
        raise WorkerError(f"{sum(1 for c in codes if c)} of {n_gpus} GPU workers failed ("
                          f"{', '.join(exit_words(c) for c in codes)}); rerun the same command "
                          "to continue")


def torchrun_command(plan, job: TrainJob, gpus: int) -> list[str]:
    """``torchrun`` training one cell on ``gpus`` GPUs (DDP) from a config file in the study."""
    from optiqa.core.config import save_config
    from optiqa.train.paths import resolved_paths

    cfg_file = plan.folder.launch_config(job.name)
    run = plan.folder.run(job.name)
    # paths absolute in this launch file (the run's own config.yaml stores them relative)
    save_config(resolved_paths(job.train_config, run.root), cfg_file)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={gpus}", "-m", "optiqa", "train", str(cfg_file),
           "--run-dir", str(run.root), "-q"]
    return cmd + (["--resume"] if run.config_path.is_file() else [])


def train_torchrun(plan, job: TrainJob, gpus: int) -> None:
    started = time.time()
    code = subprocess.call(torchrun_command(plan, job, gpus))
    if code:
        raise ConfigError(f"cell {job.name}: torchrun exited with {code} before iteration "
                          f"{job.total_iter}; rerun the same command to continue")
    write_marker(plan.folder, job, started)  # the same marker as a run in this process


# ---------------------------------------------------------------------------------------------
# SLURM through submitit
# ---------------------------------------------------------------------------------------------
def slurm_executor(plan, cluster: str | None = None):
    """A submitit executor configured from ``launcher.slurm`` (``cluster='local'`` or
    ``'debug'`` runs the jobs on this machine: how the launcher is tested without SLURM)."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("the slurm launcher needs submitit: pip install 'optiqa[slurm]'"
                          ) from None
    if cluster is None and shutil.which("sbatch") is None:
        raise ConfigError("no SLURM on this machine (sbatch not found); run with the local "
                          "launcher, or set launcher.slurm.extra.cluster: local to try the "
                          "SLURM launcher on this machine")
    s = plan.cfg.launcher.slurm
    ex = submitit.AutoExecutor(folder=str(plan.folder.slurm / "%j"), cluster=cluster)
    # one job = one cell, on launcher.gpus_per_cell GPUs of one node
    params = {"timeout_min": s.time_min, "gpus_per_node": plan.cfg.launcher.gpus_per_cell,
              "cpus_per_task": s.cpus_per_task,
              "mem_gb": s.mem_gb, "name": f"optiqa-{plan.cfg.name}",
              "slurm_array_parallelism": s.array_parallelism}
    for key in ("partition", "account", "qos"):
        if getattr(s, key):
            params[f"slurm_{key}"] = getattr(s, key)
    extra = {k: v for k, v in s.extra.items() if k != "cluster"}
    if extra:
        params["slurm_additional_parameters"] = extra
    if ex.cluster != "slurm":  # local / debug executors take the generic parameters only
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    ex.update_parameters(**params)
    return ex


def run_cell_job(study_dir: str, name: str) -> str:
    """Entry point of a SLURM (submitit) job: train one cell of the study saved in
    ``study_dir`` (under ``torchrun`` when a cell takes several GPUs); it writes only into the
    cell's run folder, never the SQLite index."""
    from optiqa.study.plan import load_plan

    plan = load_plan(study_dir)
    job = plan.train_jobs()[name]
    gpus = plan.cfg.launcher.gpus_per_cell
    if gpus > 1:
        return train_locked(plan.folder, job, runner=lambda j: train_torchrun(plan, j, gpus))
    return train_locked(plan.folder, job, device="auto", progress=False)


def train_slurm(plan, jobs: list[TrainJob], wait: bool = True) -> dict[str, str]:
    """Submit the pending jobs as one job array per dependency level; wait for them."""
    cluster = plan.cfg.launcher.slurm.extra.get("cluster")
    ex = slurm_executor(plan, cluster)
    status = {j.name: "done" for j in jobs if is_trained(plan.folder, j)}
    levels = [[j for j in jobs if not j.after], [j for j in jobs if j.after]]
    for level in levels:
        todo = [j for j in level if j.name not in status]
        if not todo:
            continue
        submitted = ex.map_array(run_cell_job, [str(plan.folder.root)] * len(todo),
                                 [j.name for j in todo])
        for job, sub in zip(todo, submitted):
            write_json(plan.folder.slurm_record(job.name),
                       {"job_id": sub.job_id, "submitted": time.time()})
            log.info("submitted %s as job %s", job.name, sub.job_id)
        if not wait:
            return {**status, **{j.name: "submitted" for j in todo}}
        for job, sub in zip(todo, submitted):
            try:
                status[job.name] = sub.result()
            except Exception as e:  # noqa: BLE001 - the job's failure, reported by cell
                raise ConfigError(f"cell {job.name}: SLURM job {sub.job_id} failed: "
                                  f"{str(e).strip().splitlines()[-1][:300]}") from None
            if read_json(plan.folder.run_marker(job.name)) is None:
                raise ConfigError(f"cell {job.name}: job {sub.job_id} ended without finishing")
    return status


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_stage(ctx) -> dict:
    """The train stage as the runner calls it: the pre-trainings and the selected cells (and
    the pre-trainings they start from), here, on one worker per GPU, under torchrun or on
    SLURM; ``{run: status}``. The run folders' completion markers are the record of what is
    trained (nothing else keeps one)."""
    plan, cells, opts = ctx.plan, ctx.cells, ctx.opts
    jobs = plan.train_jobs()
    wanted = {c.name for c in cells}
    needed = [j for n, j in jobs.items()
              if n in wanted or any(n in jobs[w].after for w in wanted)]
    launcher = opts.launcher or plan.cfg.launcher.type
    gpus_per_cell = plan.cfg.launcher.gpus_per_cell
    device = ctx.device
    if launcher == "slurm" and not opts.worker:
        status = train_slurm(plan, needed, wait=opts.wait)
    elif gpus_per_cell > 1:
        status = train_local(plan, needed, device, opts.progress,
                             runner=lambda j: train_torchrun(plan, j, gpus_per_cell))
    else:
        n_gpus = visible_gpus() if device.startswith("cuda") and not opts.worker else 0
        if n_gpus > 1:
            # pre-trainings first (every cell starts from them), then one worker per GPU
            train_local(plan, [j for j in needed if not j.after], device, opts.progress)
            spawn_gpu_workers(plan.folder.root, n_gpus, "train", opts.cells)
            status = {j.name: "done" for j in needed}
        elif device == "cpu":
            status = train_cpu(plan, needed, opts)
        else:
            status = train_local(plan, needed, device, opts.progress)
    return status


def train_cpu(plan, jobs: list[TrainJob], opts) -> dict[str, str]:
    """The train stage on the CPU (:mod:`optiqa.study.workers`): the shared pre-trainings here
    on this process's threads, then the cells on one torch thread each, in this process and in
    one worker per further core (a worker itself trains here)."""
    from optiqa.study.workers import cpu_workers, one_thread, worker_count

    starts = set(plan.pretrain_jobs())
    status = train_local(plan, [j for j in jobs if j.name in starts], "cpu", opts.progress)
    cells = [j for j in jobs if j.name not in starts]
    pending = 0 if opts.worker else sum(not is_trained(plan.folder, j) for j in cells)
    extra = worker_count(opts.cpu_workers, pending) - 1 if pending else 0
    with one_thread(), cpu_workers(plan.folder.root, "train", opts.cells, extra):
        status.update(train_local(plan, cells, "cpu", opts.progress))
    return status
