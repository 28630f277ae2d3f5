"""DDP on the CPU: two processes with the gloo backend (torch.distributed.run), a small model and a
few iterations. Both ranks end with identical weights, and the run matches a single process with
the same global batch (rank r of w draws the samples a single process would put at positions
r*b .. r*b+b-1 of its batch of w*b)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_resume import logged_losses

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny_cpu.yaml")
RUN = ["train.total_iter=6", "train.pixel_only_iter=2", "train.warmup_iter=2",
       "logger.print_freq=1", "logger.save_checkpoint_freq=3", "val.val_freq=6",
       "datasets.val.max_images=3", "datasets.train.gt_size=48"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")


def _terms(text: str) -> dict[str, float]:
    body = text.split("] ", 1)[1]
    toks = body.replace("|", " ").split()
    return {toks[i]: float(toks[i + 1]) for i in range(0, len(toks) - 1, 2)}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_gloo_run_matches_a_single_process(tmp_path):
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "optiqa.cli", "train", TINY, *RUN, "datasets.train.batch_size=2",
           "--run-dir", str(ddp), "-q", "--device", "cpu"]
    res = subprocess.run(cmd, env=ENV, timeout=600, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run([sys.executable, "-m", "optiqa.cli", "train", TINY, *RUN,
                          "datasets.train.batch_size=4", "--run-dir", str(single), "-q"],
                         env=ENV, timeout=600, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]

    log = (ddp / "log.txt").read_text()
    assert "on cpu x2 process(es)" in log and "batch 2 per process" in log
    assert len(re.findall(r"weights identical on all 2 ranks", log)) == 2  # iterations 3 and 6
    assert "ranks hold different weights" not in log
    assert sorted(p.name for p in (ddp / "models").iterdir()) == [
        "net_d_3.pth", "net_d_6.pth", "net_g_3.pth", "net_g_6.pth"]  # rank 0 wrote, once
    for key in ("astronaut", "chelsea"):  # validation images 0 and 1: scored on ranks 0 and 1
        assert (ddp / "samples" / key / "6.png").is_file(), key

    a, b = logged_losses(ddp / "log.txt"), logged_losses(single / "log.txt")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    first_a, first_b = _terms(a[1][0]), _terms(b[1][0])
    for k in first_b:  # same weights, same 4 samples: equal up to float summation order
        assert first_a[k] == pytest.approx(first_b[k], rel=1e-5, abs=1e-7), k
    for it in range(2, 7):
        ta, tb = _terms(a[it][0]), _terms(b[it][0])
        assert ta.keys() == tb.keys()
        for k in ("pixel", "fidelity"):
            if k in tb:
                assert ta[k] == pytest.approx(tb[k], rel=1e-2), (it, k)
    val = re.compile(r"val iter 6 \(EMA of G, [^;]*; border 4\): psnr_y ([\d.]+)")
    psnr_a = float(val.search(log).group(1))
    psnr_b = float(val.search((single / "log.txt").read_text()).group(1))
    assert psnr_a == pytest.approx(psnr_b, abs=0.05)  # sharded + all-reduced = whole set
    ga = torch.load(ddp / "models" / "net_g_6.pth", weights_only=True)["params"]
    gb = torch.load(single / "models" / "net_g_6.pth", weights_only=True)["params"]
    assert max(float((ga[k] - gb[k]).abs().max()) for k in ga) < 5e-3


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_ctrl_c_under_torchrun_stops_every_rank_at_the_same_iteration(tmp_path):
    """torchrun forwards SIGINT to each rank, possibly in different iterations; the ranks agree
    (one all-reduce per iteration), save one checkpoint together and exit; resuming under
    torchrun then trains every remaining iteration exactly once."""
    import signal
    import time

    from clitools import cli_env

    run = tmp_path / "ddp"
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
            "optiqa", "train", TINY, *RUN, "train.total_iter=40", "logger.save_checkpoint_freq=20",
            "val.val_freq=40", "datasets.train.batch_size=2", "--run-dir", str(run), "-q",
            "--device", "cpu"]
    env = cli_env()
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = run / "log.txt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (
            log.exists() and "iter 5/40" in log.read_text()):
        time.sleep(0.02)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does to torchrun (its workers have own sessions)
    _, err = proc.communicate(timeout=120)
    text = log.read_text()
    stops = re.findall(r"interrupted at (\d+) \(SIGINT\); checkpoint \1 saved", text)
    assert len(stops) == 1, err[-3000:]  # rank 0 logs it, once
    stopped = int(stops[0])
    assert 5 <= stopped < 40 and (run / "state" / f"{stopped}.state").is_file()
    assert "weights identical on all 2 ranks" in text and "ranks hold different" not in text
    assert "forcefully exiting" not in err  # every rank exited before torchrun's timeout
    # resume under torchrun (fewer iterations in all, to keep the test short)
    total = stopped + 4
    res = subprocess.run([sys.executable, *args, f"train.total_iter={total}", "--resume"],
                         env=env, timeout=600, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    losses = logged_losses(log)
    assert sorted(losses) == list(range(1, total + 1))
    assert all(len(v) == 1 for v in losses.values())
