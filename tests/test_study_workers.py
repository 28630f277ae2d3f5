"""CPU workers of a study (optiqa.study.workers): a cell's result does not depend on how many
processes share the cells, and a failed worker fails the stage with its own words."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optiqa.core.errors import ConfigError, WorkerError
from optiqa.study import workers

TINY = Path(__file__).resolve().parent / "data" / "tiny_study.yaml"


def _study(out: Path, cache: Path, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPTIQA_CACHE": str(cache)}
    env.pop("OMP_NUM_THREADS", None)  # the pre-training keeps the process's threads
    cmd = [sys.executable, "-m", "optiqa", "study", str(TINY), "--out", str(out), "-q",
           "--stage", "train,evaluate", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _results(out: Path) -> tuple[dict, dict]:
    """Each run's final weights (G and its EMA, as lists of tensors; the files' bytes hold the
    name of their temporary file), and every model's evaluator scores."""
    import torch

    weights = {}
    for marker in (out / "runs").glob("*/complete.json"):
        ckpt = torch.load(marker.parent / json.loads(marker.read_text())["checkpoint"],
                          weights_only=True)
        weights[marker.parent.name] = {k: list(ckpt[k].items()) for k in ("params",
                                                                         "params_ema")}
    scores = {p.name: json.loads(p.read_text())["sets"]
              for p in (out / "evaluate").glob("*.json")}
    return weights, scores


def _same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(
        [n for n, _ in a[r][k]] == [n for n, _ in b[r][k]]
        and all(torch.equal(x, y) for (_, x), (_, y) in zip(a[r][k], b[r][k]))
        for r in a for k in a[r])


def test_one_process_and_three_give_the_same_weights_and_scores(tmp_path):
    _study(tmp_path / "one", tmp_path / "cache", "--cpu-workers", "1")
    _study(tmp_path / "three", tmp_path / "cache", "--cpu-workers", "3")
    (w1, s1), (w3, s3) = _results(tmp_path / "one"), _results(tmp_path / "three")
    assert len(w1) == 9 and len(s1) == 10  # pre-training + 8 cells; + bicubic
    # bit-identical: every cell on one torch thread, however many processes share them
    assert _same_weights(w1, w3) and s1 == s3
    assert not any((tmp_path / "three" / "locks").glob("*.lock"))
    assert len(list((tmp_path / "three" / "logs").glob("study-*.json"))) == 1  # the runner's


def test_worker_count_is_one_per_core_at_most_one_per_cell(monkeypatch):
    monkeypatch.setattr(workers, "cpu_count", lambda: 4)
    assert workers.worker_count(None, 25) == 4
    assert workers.worker_count(None, 2) == 2
    assert workers.worker_count(3, 25) == 3
    assert workers.worker_count(8, 1) == 1
    with pytest.raises(ConfigError, match="at least 1"):
        workers.worker_count(0, 5)


def test_a_failed_worker_fails_the_stage_naming_its_exit_status_and_log(monkeypatch, tmp_path):
    codes = iter(["import sys; print('cell x: out of memory', file=sys.stderr); sys.exit(3)",
                  "pass"])
    monkeypatch.setattr(workers, "worker_command",
                        lambda *a, **k: [sys.executable, "-c", next(codes)])
    ran = []
    with pytest.raises(WorkerError, match=r"1 of 2 CPU workers .*exit status 3.*out of memory"
                       ) as err:
        with workers.cpu_workers(tmp_path, "train", None, 2):
            ran.append(True)  # this process's share runs while the workers do
    assert ran == [True]
    assert not isinstance(err.value, ConfigError)  # a crash is not a configuration problem
    # the failed worker's whole log is kept in the study folder; the good one's is removed
    kept = list((tmp_path / "logs").glob("worker-*.txt"))
    assert len(kept) == 1 and "out of memory" in kept[0].read_text()
    assert str(kept[0]) in str(err.value)


def test_a_killed_worker_is_reported_with_its_signal(monkeypatch, tmp_path):
    monkeypatch.setattr(workers, "worker_command", lambda *a, **k: [
        sys.executable, "-c", "import os, signal; print('training cell y', flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)"])
    with pytest.raises(WorkerError, match=r"killed by SIGKILL.*training cell y"):
        with workers.cpu_workers(tmp_path, "evaluate", None, 1):
            pass


def test_workers_wait_passively_unless_the_caller_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    env = workers.worker_env({"OPTIQA_STUDY_THREADS": "2"})
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["OMP_NUM_THREADS"] == "1"
    assert env["OPTIQA_STUDY_THREADS"] == "2"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert workers.worker_env()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_one_thread_is_restored():
    import torch

    before = torch.get_num_threads()
    with workers.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
