"""The CPU pool: the study's lockable work of several stages, shared by every CPU process.

On the CPU the stages' work is many small independent pieces: the shared pre-training, the
cells, each model's evaluation, each transfer experiment and zero-shot score, the recovery
test. Run stage by stage, each stage ends with one process finishing its last piece while the
others wait, and a stage cannot start before the previous one ended, although most of its
pieces only need some of the previous stage's (a cell's evaluation needs that cell, not all
cells). The pool instead lists every piece of the selected stages as a :class:`Task` with what
it needs, and each process (the runner and its CPU workers, :mod:`optiqa.study.workers`)
repeatedly takes the first task in the list that is ready, not done and not held by another
process, under the same lock files the stages use (:mod:`optiqa.study.locks`). The runner
starts the workers before the assess stage, which it runs itself meanwhile (the assessment
needs the results store, which only the runner writes), and joins the pool afterwards.

Order of the list (the first ready task is taken): the pre-training (every cell waits for it),
the cells, most expensive first (:mod:`optiqa.study.schedule`), the analysis (in the runner
only, once every evaluation is done: the workers meanwhile finish the transfer pieces, which
it does not read), the recovery test (one long piece), the transfer experiments from ImageNet and random weights, the evaluations, then the
pieces that need a trained cell's discriminator (transfer from it, zero-shot). So the long
pieces start early and the pool ends with short ones.

After the pool, the runner runs the stages as before: they find their pieces done (the same
completion checks as always: markers, result keys) and do what is left to the one process
(the results store's index of the transfer results, the evaluation manifest, the analysis,
the report). What a piece computes does not depend on which process ran it: every piece runs
on one torch thread, except the pre-training, which keeps the runner's thread count wherever it
runs (``OPTIQA_STUDY_THREADS`` in a worker, :func:`threads_env`; MKL's count follows it), as
when the stages ran one after another.
Interrupted, the study resumes as before: a finished piece is recognised by its files, an
interrupted one is redone (a cell from its last checkpoint), a dead process's lock is stale.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from optiqa.study import names
from optiqa.study.folder import read_json
from optiqa.study.locks import run_locked

log = logging.getLogger("optiqa.study")

POOLED_STAGES = ("train", "evaluate", "transfer", "recovery")  # and the runner's analysis
POLL_SECONDS = 0.5   # between passes when every ready task is held by another process
THREADS_ENV = "OPTIQA_STUDY_THREADS"


@dataclass
class Task:
    """One piece of work: ``run()`` does it (or finds it done) and returns a status;
    ``done()`` says cheaply whether it is complete and current (``False`` when only ``run``
    can tell); ``ready()`` whether what it needs is there; ``threads``: torch threads."""

    stage: str
    name: str
    lock: Path
    run: Callable[[], str]
    done: Callable[[], bool] = lambda: False
    ready: Callable[[], bool] = lambda: True
    needs: tuple[str, ...] = ()        # keys of the tasks that make it ready
    threads: int = 1
    runner_only: bool = False          # needs what only the runner has done (the assessment)

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.name}"


@contextlib.contextmanager
def torch_threads(n: int):
    """Torch on ``n`` threads inside the block (restored after it)."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def pretrain_threads() -> int:
    """The thread count of the shared pre-training: the runner's (passed to its workers in
    ``OPTIQA_STUDY_THREADS``), or this process's own."""
    import torch

    value = os.environ.get(THREADS_ENV)
    return int(value) if value else torch.get_num_threads()


def threads_env() -> dict[str, str]:
    """What the runner adds to its pool workers' environment (:func:`~optiqa.study.workers.
    worker_env`): its own torch thread count, on which a worker runs the pre-training.

    One number describes every thread count that changes a piece's numbers: a piece has the
    same OpenMP and MKL counts in the runner and in a worker. A worker starts with both at 1
    (``ONE_THREAD_ENV``), the runner's share of the pool runs inside
    :func:`~optiqa.study.workers.one_thread`, and a piece on ``n`` threads runs under
    :func:`torch_threads`; ``torch.set_num_threads`` sets OpenMP's count and MKL's (for the
    calling thread) together. A runner started with ``MKL_NUM_THREADS`` apart from
    ``OMP_NUM_THREADS`` is no exception: torch's own default count takes ``MKL_NUM_THREADS``
    over ``OMP_NUM_THREADS`` (``OMP=2, MKL=1`` is a 1-thread process, MKL included), and that
    count is what is passed (``tests/test_worker_threads.py``)."""
    threads = pretrain_threads()
    omp, mkl = os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS")
    if omp and mkl and omp != mkl and THREADS_ENV not in os.environ:
        log.info("torch runs %d thread(s): MKL_NUM_THREADS=%s takes precedence over "
                 "OMP_NUM_THREADS=%s", threads, mkl, omp)
    return {THREADS_ENV: str(threads)}


def pooled(stages) -> list[str]:
    return [s for s in stages if s in POOLED_STAGES]


def drain(tasks: list[Task], poll: float = POLL_SECONDS, sleep=time.sleep,
          timeline: list | None = None, journal: Path | None = None) -> dict[str, str]:
    """Run the tasks that are left, with the other processes sharing them, until every one is
    done; ``{key: status}``. Each pass takes the first task that is ready and not held by
    another process, then starts again from the top (a task that became ready meanwhile may
    come first); a pass that finds nothing to take waits ``poll`` seconds. ``timeline``
    receives ``(key, start time, seconds)`` of each task this process ran; ``journal`` (a JSON
    lines file) one line per task with its wall and CPU seconds: the CPU time of this whole
    process (all its threads) while the task ran, which is the task's own (a process runs one
    task at a time), whatever else the machine runs."""
    pending = list(tasks)
    status: dict[str, str] = {}
    while pending:
        took = None
        for task in pending:
            if not task.ready():
                continue

            def work(task=task):
                log.info("%s %s", task.stage, task.name)
                t0, c0 = time.time(), time.process_time()
                with torch_threads(task.threads):
                    result = task.run()
                wall, cpu = time.time() - t0, time.process_time() - c0
                log.info("%s %s: %s, %.1f s wall, %.1f s CPU", task.stage, task.name, result,
                         wall, cpu)
                if timeline is not None:
                    timeline.append((task.key, t0, wall))
                if journal is not None:
                    _journal(journal, {"task": task.key, "status": result, "start": round(t0, 2),
                                       "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                       "threads": task.threads})
                return result
            result = run_locked(task.lock, task.done, work)
            if result != "busy":
                took = task
                status[task.key] = result
                break
        if took is None:
            sleep(poll)
        else:
            pending.remove(took)
    return status


def _journal(path: Path, row: dict) -> None:
    """Append one line (one small write of a line-buffered file: a reader sees whole lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def build_tasks(plan, cells, stages, device: str = "cpu", progress: bool = False,
                runner=None) -> list[Task]:
    """The pool's tasks for ``stages`` of ``plan`` (its selected ``cells``), in the order of the
    module docstring. A task that needs a run outside the pool (its stage not selected) which
    is not trained now is left out: its stage reports it as before. ``runner``: the runner's
    :class:`~optiqa.study.runner.StageContext`, which adds the runner's own task (the analysis,
    once every evaluation is done, while the workers finish the rest)."""
    stages = set(stages)
    groups = {"pretrain": [], "cells": [], "analyze": [], "recovery": [], "transfer": [],
              "evaluate": [], "after_cells": []}
    if "train" in stages:
        _train_tasks(plan, cells, groups, progress)
    if "evaluate" in stages:
        _evaluate_tasks(plan, cells, groups, device, progress)
        if "analyze" in stages and runner is not None:
            groups["analyze"].append(_analyze_task(runner, groups["evaluate"]))
    if "transfer" in stages and plan.cfg.transfer is not None:
        _transfer_tasks(plan, cells, groups, device, progress)
    if "recovery" in stages and plan.cfg.recovery is not None:
        from optiqa.study.diagnostics import run_recovery_for_study

        groups["recovery"].append(Task(
            "recovery", plan.cfg.recovery.image, plan.folder.lock("recovery", "recovery"),
            lambda: "done" if run_recovery_for_study(plan, device, progress) else "none"))
    tasks = [t for g in groups.values() for t in g]
    if runner is None:
        tasks = [t for t in tasks if not t.runner_only]
    while True:  # until no task waits for one left out (which may leave out another)
        keys = {t.key for t in tasks}
        kept = [t for t in tasks if all(n in keys for n in t.needs) or t.ready()]
        if len(kept) == len(tasks):
            return kept
        tasks = kept


def _analyze_task(ctx, evaluations: list[Task]) -> Task:
    """The analysis, in the runner once every evaluation is done: the evaluate stage's own end
    first (its references and manifest, which the analysis reads; everything else it finds
    done), then ``analysis.json``, which the analyze stage then finds current. On the runner's
    thread count, as the analyze stage runs it."""
    from optiqa.study import analysis, evaluation

    plan = ctx.plan

    def run():
        evaluation.run_stage(ctx)
        analysis.run_stage(ctx)
        return "analysed"
    return Task("analyze", plan.cfg.name, plan.folder.lock("analyze", plan.cfg.name), run,
                ready=lambda: all(t.done() for t in evaluations),
                needs=tuple(t.key for t in evaluations), threads=pretrain_threads(),
                runner_only=True)


def _trained(plan, name: str) -> Callable[[], bool]:
    from optiqa.study.training import is_trained

    job = plan.train_jobs()[name]
    return lambda: is_trained(plan.folder, job)


def _train_tasks(plan, cells, groups, progress) -> None:
    from optiqa.metrics.feature_store import sharing_reference_features
    from optiqa.study.schedule import longest_first
    from optiqa.study.training import train_job

    jobs = plan.train_jobs()
    wanted = {c.name for c in cells}
    starts = {n for n, j in jobs.items() if any(n in jobs[w].after for w in wanted)}
    folder = plan.folder

    def task(name, threads):
        job = jobs[name]

        def run():
            # the cells of one loss see the same batches: their ground truth's loss-network
            # features are computed once (optiqa.metrics.feature_store; bit-identical)
            with sharing_reference_features(folder.reference_features if threads == 1
                                            else None):
                train_job(folder, job, "cpu", progress)
            return "trained"
        return Task("train", name, folder.lock("train", name), run, _trained(plan, name),
                    lambda: all(_trained(plan, d)() for d in job.after),
                    tuple(f"train:{d}" for d in job.after), threads)
    groups["pretrain"] += [task(n, pretrain_threads()) for n in jobs if n in starts]
    groups["cells"] += [task(c.name, 1) for c in longest_first(cells)]


def _evaluate_tasks(plan, cells, groups, device, progress) -> None:
    from optiqa.restore.generator import load_generator
    from optiqa.study.baselines import degraded_identity
    from optiqa.study.evaluation import data_identity, evaluate_entry, evaluation_key
    from optiqa.study.schedule import longest_first

    cfg, folder = plan.cfg, plan.folder
    data: dict = {}

    def identity():
        if not data:
            data.update(data_identity(cfg))
        return data

    def model(name, task, sha, load, needs=(), cell=None):
        def current():
            if not folder.evaluation(name).is_file():  # before the key (it builds the panel)
                return False
            s = sha()
            return s is not None and folder.evaluation_complete(
                name, evaluation_key(cfg, task, s, identity(), cell)) is not None

        def run():
            if current():
                return "done"
            evaluate_entry(folder, cfg, name, task, sha(), load, device, progress, identity(),
                           cell)
            return "evaluated"
        return Task("evaluate", name, folder.lock("evaluate", name), run, current,
                    lambda: sha() is not None, needs)

    def marked(name):
        def sha():
            marker = read_json(folder.run_marker(name))
            return marker["checkpoint_sha256"] if marker else None

        def load():
            marker = read_json(folder.run_marker(name))
            return load_generator(folder.run(name).root / marker["checkpoint"], device=device)
        return sha, load

    for task, t in cfg.task_opts.items():
        groups["evaluate"].append(model(
            names.degraded_name(task, t.scale), task, lambda t=t: degraded_identity(t.scale),
            lambda t=t: load_generator("bicubic", scale=t.scale, device=device)))
        if cfg.train.pretrain is not None:
            pre = names.pretrain_name(task)
            groups["evaluate"].append(model(pre, task, *marked(pre), (f"train:{pre}",)))
    for c in longest_first(cells):
        groups["evaluate"].append(model(c.name, c.task, *marked(c.name), (f"train:{c.name}",),
                                        c))


def _transfer_tasks(plan, cells, groups, device, progress) -> None:
    from optiqa.study.transfer import transfer_one, zero_shot_one

    cfg, folder, t = plan.cfg, plan.folder, plan.cfg.transfer
    dataset: list = []

    def ds():
        if not dataset:
            from optiqa.study.assessment import load_iqa_dataset

            dataset.append(load_iqa_dataset(t.dataset))
        return dataset[0]

    def task(group, name, run, cell=None):
        ready = _trained(plan, cell) if cell else (lambda: True)
        groups[group].append(Task("transfer", name, folder.lock("transfer", name), run,
                                  ready=ready, needs=(f"train:{cell}",) if cell else ()))

    for bb in t.backbones:
        for init in t.inits:
            if init != "gan":
                name = names.transfer_name(t.kind, bb, init)
                task("transfer", name, lambda n=name, b=bb, i=init: transfer_one(
                    folder, cfg, ds(), n, b, i, None, device, progress)[1])
                continue
            for c in cells:
                if c.backbone == bb and c.adversarial:
                    name = names.transfer_name(t.kind, bb, init, c.name)
                    task("after_cells", name, lambda n=name, b=bb, c=c: transfer_one(
                        folder, cfg, ds(), n, b, f"gan:{folder.run(c.name).root}", None,
                        device, progress)[1], c.name)
    if t.zero_shot:
        for c in cells:
            if c.adversarial:
                name = names.zeroshot_name(c.name)
                task("after_cells", name, lambda n=name, c=c: zero_shot_one(
                    folder, cfg, ds(), n, c, None, device, progress)[1], c.name)
