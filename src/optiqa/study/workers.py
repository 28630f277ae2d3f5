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
threads.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from optiqa.core.errors import ConfigError

# the environment of a worker: one thread in every thread pool torch may use
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def worker_command(study_dir, stage: str, cells: str | None,
                   device: str = "cuda") -> list[str]:
    """``optiqa study <study_dir>/study.yaml --worker``: a process that runs its share of
    ``stage``'s cells (GPU workers and CPU workers alike)."""
    cmd = [sys.executable, "-m", "optiqa", "study", str(Path(study_dir) / "study.yaml"),
           "--out", str(study_dir), "--stage", stage, "--worker", "--device", device]
    return cmd + (["--cells", cells] if cells else [])


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
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the worker outlives a killed runner
        pass


@contextlib.contextmanager
def cpu_workers(study_dir, stage: str, cells: str | None, n: int):
    """``n`` worker processes on the CPU running ``stage`` of the study in ``study_dir`` while
    the block runs (this process takes its share of the cells inside it); at the end, waits for
    them and raises :class:`ConfigError` with the end of a failed worker's output."""
    env = {**os.environ, **ONE_THREAD_ENV}
    procs = []
    try:
        for _ in range(n):
            out = tempfile.TemporaryFile()  # not a pipe: a chatty worker must never block
            cmd = worker_command(study_dir, stage, cells, device="cpu") + ["-q"]
            procs.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=out,
                                           preexec_fn=_stop_with_parent), out))
        yield
    except BaseException:
        for p, _ in procs:  # this process failed: its workers stop (their cells resume later)
            p.terminate()
        raise
    finally:
        failed = []
        for p, out in procs:
            if p.wait():
                out.seek(0)
                tail = out.read().decode(errors="replace").strip().splitlines()[-3:]
                failed.append(f"exit code {p.returncode}: {' | '.join(tail)}")
            out.close()
    if failed:
        raise ConfigError(f"{len(failed)} of {n} CPU workers of the {stage} stage failed "
                          f"({'; '.join(failed)}); rerun the same command to continue")
