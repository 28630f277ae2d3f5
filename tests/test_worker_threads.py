"""The thread counts of a pool piece do not depend on which process runs it, also when the
runner's environment sets MKL_NUM_THREADS apart from OMP_NUM_THREADS.

A runner process started with a user's OMP/MKL settings runs a pre-training-like piece (a
convolution's weight gradient, whose rounding depends on the thread count) through its share of
the pool (``runner._Pool.finish``: one thread, then the piece's own count); a worker started
with the environment that runner's code gives its workers (``workers.worker_env`` of
``pool.threads_env()``) runs the same piece as a pool worker does (``pool.drain``). Both must
report the same torch and MKL thread counts inside the piece and the same numbers. The two
environments (OMP=2/MKL=1 and OMP=1/MKL=2) give a 1- and a 2-thread process, whose numbers
differ, so the equality can fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from optiqa.study.pool import THREADS_ENV

SRC = Path(__file__).resolve().parents[1] / "src"

PIECE = r"""
import contextlib, hashlib, json, re, sys, time
from pathlib import Path
import torch
from optiqa.study import pool, workers

role, folder = sys.argv[1], Path(sys.argv[2])
out = {"start_threads": torch.get_num_threads()}

def mkl_threads():
    m = re.search(r"mkl_get_max_threads\(\) : (\d+)", torch.__config__.parallel_info())
    return int(m.group(1)) if m else None

def piece():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=g)
    w = torch.randn(16, 3, 3, 3, generator=g, requires_grad=True)
    a, b = torch.randn(96, 700, generator=g), torch.randn(700, 80, generator=g)
    torch.nn.functional.conv2d(x, w, padding=1).square().sum().backward()
    h = hashlib.sha256(w.grad.numpy().tobytes() + (a @ b).numpy().tobytes())
    out.update(threads=torch.get_num_threads(), mkl=mkl_threads(), sha=h.hexdigest())
    return "trained"

task = pool.Task("train", "pretrain", folder / f"{role}.lock", piece,
                 threads=pool.pretrain_threads())
if role == "runner":
    from optiqa.study.runner import _Pool

    out["worker_env"] = workers.worker_env(pool.threads_env())
    _Pool([task], ("train",), time.time()).finish(contextlib.ExitStack())
else:
    pool.drain([task])
print(json.dumps(out))
"""


def _run(role: str, env: dict, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PIECE, role, str(folder)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.splitlines()[-1])


def test_a_piece_has_the_runners_thread_counts_in_a_worker_whatever_omp_and_mkl_say(tmp_path):
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV)}
    base["PYTHONPATH"] = os.pathsep.join([str(SRC), base.get("PYTHONPATH", "")])
    cases = {"omp2_mkl1": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1"},
             "omp1_mkl2": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "2"}}
    runners = {name: _run("runner", {**base, **env}, tmp_path) for name, env in cases.items()}
    runners = {name: _result(p) for name, p in runners.items()}
    workers = {name: _run("worker", r["worker_env"], tmp_path) for name, r in runners.items()}
    workers = {name: _result(p) for name, p in workers.items()}
    for name, r in runners.items():
        w = workers[name]
        assert r["worker_env"][THREADS_ENV] == str(r["start_threads"]), name
        assert w["start_threads"] == 1, name            # a worker starts on one thread
        assert (w["threads"], w["mkl"], w["sha"]) == (r["threads"], r["mkl"], r["sha"]), name
    # torch's default count takes MKL_NUM_THREADS over OMP_NUM_THREADS; MKL's count follows
    mkl = torch.backends.mkl.is_available()
    for name, threads in (("omp2_mkl1", 1), ("omp1_mkl2", 2)):
        assert (runners[name]["threads"], runners[name]["mkl"]) == (
            threads, threads if mkl else None), name
    assert runners["omp2_mkl1"]["sha"] != runners["omp1_mkl2"]["sha"]  # so the check can fail
