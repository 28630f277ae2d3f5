"""Cells of a CPU study in parallel: worker processes of one torch thread each.

The built-in example trains and evaluates small networks (a tiny SRResNet, EfficientNet-Lite0
discriminators, the evaluator panel) whose operations are too small for PyTorch's intra-op
threads to pay: on the 2-core development machine one process with 2 threads trained a cell
no faster than one thread, and under load its spinning threads made it several times slower
(docs/performance.md). So on the CPU the train and evaluate stages run their cells with one
torch thread per process, in one process per core: this process and ``n - 1`` workers
(``optiqa study ... --worker``), which share the cells through the cells' lock files exactly as
GPU workers do (:mod:`optiqa.study.locks`).

A cell's result then does not depend on the core count or the number of workers: one thread
fixes the order of every floating-point reduction (with several threads, PyTorch splits the
weight gradient of a convolution over the batch between them, so its rounding depends on the
thread count). The shared pre-training, which no other cell can run beside, keeps the process's
threads. The workers also share the other stages' pieces through the CPU pool
(:mod:`optiqa.study.pool`).

The workers' environment has ``OMP_WAIT_POLICY=PASSIVE`` unless the caller's environment sets
it: an idle OpenMP thread then sleeps instead of spinning for its sibling (a spinning thread
burns a core another process needs; a 2-thread step took 6x longer on a loaded 2-core machine,
docs/performance.md). The ``optiqa`` command sets it for itself before torch loads; a library
caller of :func:`~optiqa.study.runner.run_study` gets it in the workers, and sets it in its own
environment before importing torch to have it in its own process (it cannot take effect once
OpenMP has started). Only scheduling changes, never a number.

A worker that fails (an error, a crash, killed by the system) is reported as a
:class:`~optiqa.core.errors.WorkerError` with its exit status and the end of its log, which is
kept as ``logs/worker-<stage>-<pid>-<n>.txt`` in the study folder (removed when the worker succeeds).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from optiqa.core.errors import ConfigError, WorkerError

# the environment of a worker: one thread in every thread pool torch may use
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
LOG_TAIL_LINES = 12


def worker_command(study_dir, stage: str, cells: str | None,
                   device: str = "cuda", pool: bool = False) -> list[str]:
    """``optiqa study <study_dir>/study.yaml --worker``: a process that runs its share of
    ``stage``'s cells (GPU workers and CPU workers alike), or with ``pool`` its share of the
    CPU pool of the stages ``stage`` lists (comma-separated)."""
    cmd = [sys.executable, "-m", "optiqa", "study", str(Path(study_dir) / "study.yaml"),
           "--out", str(study_dir), "--stage", stage, "--worker", "--device", device]
    return cmd + (["--cells", cells] if cells else []) + (["--pool"] if pool else [])


def worker_env(extra: dict | None = None) -> dict:
    """A CPU worker's environment: this one, one torch thread, passive OpenMP waiting (unless
    set here), plus ``extra``."""
    env = {**os.environ, **ONE_THREAD_ENV, **(extra or {})}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(requested: int | None, pending: int) -> int:
    """Processes for ``pending`` cells: ``requested`` (default: one per core), at most one per
    pending cell, at least one (this process)."""
    n = cpu_count() if requested is None else int(requested)
    if n < 1:
        raise ConfigError(f"CPU workers must be at least 1, got {requested}",
                          option="cpu_workers")
    return max(1, min(n, pending))


@contextlib.contextmanager
def one_thread():
    """Torch in this process on one thread inside the block (restored after it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stop_with_parent() -> None:
    """In a worker before it starts (Linux): SIGTERM when the runner dies, even by SIGKILL, so
    that no orphan keeps training; SIGTERM stops a cell after a checkpoint (resumed later)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed runner
        pass


def exit_words(code: int) -> str:
    """A process's exit status in words (``exit status 3``, ``killed by SIGKILL``)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a log, joined by `` | ``."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) if tail else "(empty log)"


@contextlib.contextmanager
def cpu_workers(study_dir, stage: str, cells: str | None, n: int, pool: bool = False,
                env: dict | None = None):
    """``n`` worker processes on the CPU running ``stage`` of the study in ``study_dir`` (with
    ``pool``: their share of the CPU pool of the stages listed in ``stage``) while the block
    runs (this process takes its share inside it); at the end, waits for them and raises
    :class:`WorkerError` naming each failed worker's exit status and the end of its log."""
    from optiqa.study.folder import StudyFolder

    folder = StudyFolder(Path(study_dir))
    env = worker_env(env)
    procs = []
    try:
        for i in range(n):
            log = folder.worker_log(stage, os.getpid(), i + 1)
            log.parent.mkdir(parents=True, exist_ok=True)
            cmd = worker_command(study_dir, stage, cells, device="cpu", pool=pool) + ["-q"]
            with open(log, "wb") as out:  # a file, not a pipe: a chatty worker never blocks
                procs.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=out,
                                               preexec_fn=_stop_with_parent), log))
        yield
    except BaseException:
        for p, _ in procs:  # this process failed: its workers stop (their work resumes later)
            p.terminate()
        raise
    finally:
        failed = []
        for p, log in procs:
            if p.wait():
                failed.append(f"worker {log.name}: {exit_words(p.returncode)}; the end of "
                              f"its log {log}: {log_tail(log)}")
            else:
                log.unlink(missing_ok=True)
    if failed:
        raise WorkerError(f"{len(failed)} of {n} CPU workers of the {stage} stage(s) failed: "
                          f"{'; '.join(failed)}. Rerun the same command to continue (finished "
                          "work is kept)")
