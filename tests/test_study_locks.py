"""Lock-check-run, the poller and the completion marker: one of each for every stage.

Before, the train stage, the multi-GPU (torchrun) path and the evaluate stage each had a copy of
lock-check-run, the train and evaluate stages each a polling loop, and the in-process and
torchrun paths each a marker writer; the torchrun marker lacked ``nan_skips`` and ``seconds``.
"""
from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from optiqa.core.config import read_yaml
from optiqa.core.errors import ConfigError
from optiqa.study import launchers
from optiqa.study.folder import StudyFolder, read_json
from optiqa.study.locks import CellLock, poll_until_done, run_locked
from optiqa.study.training import TrainJob, write_marker

TINY = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"


def test_run_locked_checks_before_and_under_the_lock(tmp_path):
    path = tmp_path / "locks" / "c.lock"
    ran = []
    assert run_locked(path, lambda: True, lambda: ran.append(1)) == "done" and not ran
    assert run_locked(path, lambda: False, lambda: "trained") == "trained"
    assert not path.exists()  # released
    other = CellLock(path)
    assert other.acquire()  # another runner (alive: this process) holds the cell
    try:
        assert run_locked(path, lambda: False, lambda: ran.append(1)) == "busy" and not ran
    finally:
        other.release()
    answers = iter([False, True])  # finished by the other runner between check and lock
    assert run_locked(path, lambda: next(answers), lambda: ran.append(1)) == "done"
    assert not ran
    with pytest.raises(RuntimeError, match="boom"):
        run_locked(path, lambda: False, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not path.exists()  # released when the work fails


def test_poll_until_done_sleeps_only_after_a_pass_without_progress():
    replies = {"a": iter(["busy", "busy", "done"]), "b": iter([None, "trained"])}
    slept = []
    got = poll_until_done(["a", "b"], lambda k: next(replies[k]), 7.0, name=str,
                          sleep=slept.append)
    assert got == {"b": "trained", "a": "done"}
    # pass 1: a busy, b not ready -> sleep; pass 2: b done (progress, no sleep); pass 3: a done
    assert slept == [7.0]


def _job(tmp_path, total=4) -> tuple[StudyFolder, TrainJob]:
    config = read_yaml(TINY)
    config["train"].update(total_iter=total, pixel_only_iter=0, warmup_iter=0)
    folder = StudyFolder(tmp_path / "study")
    job = TrainJob("sr_x4__l1__none", config)
    models = folder.run(job.name).root / "models"
    models.mkdir(parents=True)
    for it in (2, total):
        torch.save({"params": {"w": torch.full((2,), float(it))}}, models / f"net_g_{it}.pth")
    return folder, job


def test_the_torchrun_path_writes_the_same_marker(tmp_path, monkeypatch):
    folder, job = _job(tmp_path)
    here = write_marker(folder, job, started=0.0, nan_skips=0)
    assert here["iteration"] == 4 and here["checkpoint"] == "models/net_g_4.pth"
    assert len(here["checkpoint_sha256"]) == 64 and here["seconds"] > 0
    folder.run_marker(job.name).unlink()
    plan = types.SimpleNamespace(folder=folder)
    monkeypatch.setattr(launchers, "torchrun_command", lambda *a: ["torchrun"])
    monkeypatch.setattr(launchers.subprocess, "call", lambda cmd: 0)
    launchers.train_torchrun(plan, job, gpus=2)
    there = read_json(folder.run_marker(job.name))
    assert set(there) == set(here)
    assert {k: there[k] for k in ("cell", "config_sha", "iteration", "checkpoint",
                                  "checkpoint_sha256")} == \
        {k: here[k] for k in ("cell", "config_sha", "iteration", "checkpoint",
                              "checkpoint_sha256")}
    monkeypatch.setattr(launchers.subprocess, "call", lambda cmd: 1)
    with pytest.raises(ConfigError, match="torchrun exited with 1"):
        launchers.train_torchrun(plan, job, gpus=2)


def test_no_marker_without_the_final_checkpoint(tmp_path):
    folder, job = _job(tmp_path)
    (folder.run(job.name).root / "models" / "net_g_4.pth").unlink()
    with pytest.raises(ConfigError, match="no generator checkpoint of iteration 4.*newest: 2"):
        write_marker(folder, job)
    assert not folder.run_marker(job.name).exists()
