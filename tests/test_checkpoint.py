"""Checkpoints: atomic durable writes, weights_only loads, RNG state, resume point, pruning."""
from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from optiqa.core.atomic import atomic_torch_save as save_torch
from optiqa.core.atomic import load_torch
from optiqa.core.runs import RunFolder
from optiqa.train.checkpoint import (capture_rng, find_resume_point, prune_checkpoints, restore_rng,
                                     save_checkpoint)


def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(())))


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draws()
    save_torch({"rng": [capture_rng()]}, tmp_path / "s.state")
    expected = [_draws() for _ in range(3)]
    state = torch.load(tmp_path / "s.state", weights_only=True)  # plain types and tensors only
    restore_rng(state["rng"][0])
    assert [_draws() for _ in range(3)] == expected


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "models" / "net_g_1.pth"
    save_torch({"params": {"w": torch.ones(3)}}, path)
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):
        save_torch({"params": lambda: 0}, path)  # cannot be pickled: fails mid-write
    assert torch.equal(load_torch(path)["params"]["w"], torch.ones(3))  # old file intact
    assert [p.name for p in path.parent.iterdir()] == ["net_g_1.pth"]


_WRITER = """
import sys, torch
from optiqa.core.atomic import atomic_torch_save as save_torch
big = torch.arange(2_000_000, dtype=torch.float32)
i = 0
while True:
    i += 1
    save_torch({"i": i, "params": {"w": big + i}}, sys.argv[1])
"""


def test_sigkill_during_writes_never_leaves_a_truncated_file(tmp_path):
    """A process rewriting an 8 MB checkpoint in a loop is killed at random moments; the file
    on disk always loads completely."""
    path = tmp_path / "net_g_1.pth"
    rng = random.Random(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ckpt = load_torch(path)  # raises on a truncated file
        expected = torch.arange(2_000_000, dtype=torch.float32) + ckpt["i"]
        assert torch.equal(ckpt["params"]["w"], expected)
        assert not [p for p in tmp_path.iterdir() if p != path and not p.name.endswith(".tmp")]
    RunFolder(tmp_path).remove_stale_temp_files()  # what a resumed run does first
    assert list(tmp_path.iterdir()) == [path]


def _save(run, it, models=("g", "d")):
    payload = {m: {"params": {"w": torch.full((2,), float(it))}} for m in models}
    save_checkpoint(run, it, payload, {"optimizers": {}, "rng": [capture_rng()]})


def test_resume_point_is_the_newest_complete_checkpoint(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create()
    assert find_resume_point(run) is None
    for it in (10, 20, 30):
        _save(run, it)
    point = find_resume_point(run)
    assert point.iteration == 30 and point.state["models"] == ["d", "g"]
    assert float(point.models["d"]["params"]["w"][0]) == 30
    # the newest state's model is missing (a damaged copy): fall back to 20
    run.model_path("d", 30).unlink()
    assert find_resume_point(run).iteration == 20
    # a truncated state file (what a non-atomic write could leave): fall back to 10
    data = run.state_path(20).read_bytes()
    run.state_path(20).write_bytes(data[: len(data) // 2])
    assert find_resume_point(run).iteration == 10
    # models written but the state not yet (killed in between): not a resume point
    save_torch({"params": {}}, run.model_path("g", 40))
    assert find_resume_point(run).iteration == 10


def test_prune_keeps_the_newest_k(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create()
    for it in (5, 10, 15, 20):
        _save(run, it)
    prune_checkpoints(run, keep=2)
    assert run.state_iterations() == [20, 15]
    assert sorted(it for _, it, _ in run.model_files()) == [15, 15, 20, 20]
    assert find_resume_point(run).iteration == 20


def test_weight_files_of_metrics_and_backbones_go_through_the_one_reader(tmp_path):
    """DISTS' alpha/beta and backbone weight files were read with a bare ``torch.load``: a
    truncated file gave torch's own error. Now it is the reader's CheckpointError naming it."""
    from optiqa.models.backbone_trunks import read_state_dict
    from optiqa.core.checkpoints import CheckpointError
    from optiqa.metrics.deep import load_dists_weights

    bad = tmp_path / "weights.pt"
    torch.save({"alpha": torch.ones(6), "beta": torch.ones(6)}, bad)
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=f"{bad}: cannot read checkpoint"):
        load_dists_weights(bad, [3, 3])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_state_dict(bad)
    good = tmp_path / "bb.pth"
    torch.save({"state_dict": {"module.conv.weight": torch.ones(2)}, "epoch": 3}, good)
    assert list(read_state_dict(good)) == ["conv.weight"]  # unwrapped, DDP prefix removed
