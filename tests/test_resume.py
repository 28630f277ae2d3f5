"""Kill-and-resume: SIGKILL a training run (twice) and --resume; on the CPU with a fixed seed the
loss sequence and the final weights equal those of an uninterrupted run of the same length."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny_cpu.yaml")
RUN = ["train.total_iter=30", "train.pixel_only_iter=8", "train.warmup_iter=4",
       "logger.print_freq=1", "logger.save_checkpoint_freq=10", "logger.keep_checkpoints=2",
       "val.val_freq=15", "datasets.val.max_images=2"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
LINE = re.compile(r"iter (\d+)/\d+ \[(\w+)\] (lr .*?) \| [\d.]+ s/it")


def _cmd(run_dir, *extra):
    return [sys.executable, "-m", "optiqa.cli", "train", TINY, *RUN, "--run-dir", str(run_dir),
            "-q", *extra]


def logged_losses(log: Path) -> dict[int, list[str]]:
    """iteration -> every logged 'lr ... | terms' text for it (several after a resume)."""
    out: dict[int, list[str]] = {}
    for line in log.read_text().splitlines():
        m = LINE.search(line)
        if m:
            out.setdefault(int(m.group(1)), []).append(f"[{m.group(2)}] {m.group(3)}")
    return out


def _kill_when(proc, condition, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not condition():
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_and_resume_equals_an_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cmd(straight), env=ENV, check=True, timeout=600, capture_output=True)

    # kill 1: in the perceptual stage, three iterations after the checkpoint of iteration 10
    proc = subprocess.Popen(_cmd(killed), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = killed / "log.txt"
    _kill_when(proc, lambda: log.exists() and "iter 13/30" in log.read_text())
    assert not (killed / "state" / "30.state").exists()
    # kill 2: at a random moment of the resumed run (start-up, training or a checkpoint write)
    proc = subprocess.Popen(_cmd(killed, "--resume"), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + random.Random(os.getpid()).uniform(0.5, 4.0)
    _kill_when(proc, lambda: time.time() > deadline or "iter 25/30" in log.read_text())
    done = subprocess.run(_cmd(killed, "--resume"), env=ENV, timeout=600, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    a, b = logged_losses(straight / "log.txt"), logged_losses(killed / "log.txt")
    assert sorted(a) == sorted(b) == list(range(1, 31))
    for it in a:
        assert len(a[it]) == 1
        assert set(b[it]) == set(a[it]), f"iteration {it}: {a[it]} vs {b[it]}"
    assert any(len(v) > 1 for v in b.values())  # work after a checkpoint was redone
    assert "resumed from iteration" in (killed / "log.txt").read_text()
    for net in ("g", "d"):
        x = torch.load(straight / "models" / f"net_{net}_30.pth", weights_only=True)
        y = torch.load(killed / "models" / f"net_{net}_30.pth", weights_only=True)
        for key in ("params", "params_ema"):
            if key in x:
                assert x[key].keys() == y[key].keys()
                for name in x[key]:
                    assert torch.equal(x[key][name], y[key][name]), (net, key, name)
    val = re.compile(r"val iter (\d+) .*")
    va = [m.group(0) for m in map(val.search, (straight / "log.txt").read_text().splitlines())
          if m]
    vb = {m.group(0) for m in map(val.search, log.read_text().splitlines()) if m}
    assert va and set(va) == vb
