"""Kill-and-resume: SIGKILL a training run (twice) and --resume; on the CPU with a fixed seed the
loss sequence and the final weights equal those of an uninterrupted run of the same length. The
same for Ctrl-C (SIGINT): the run stops after the current iteration with a checkpoint and exit
status 130, and resuming it redoes nothing. All through the real `optiqa` command."""
from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from clitools import cli_env, optiqa_cmd

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny_cpu.yaml")
RUN = ["train.total_iter=30", "train.pixel_only_iter=8", "train.warmup_iter=4",
       "logger.print_freq=1", "logger.save_checkpoint_freq=10", "logger.keep_checkpoints=2",
       "val.val_freq=15", "datasets.val.max_images=2"]
ENV = cli_env()
LINE = re.compile(r"iter (\d+)/\d+ \[(\w+)\] (lr .*?) \| [\d.]+ s/it")


def _cmd(run_dir, *extra):
    return optiqa_cmd("train", TINY, *RUN, "--run-dir", run_dir, "-q", *extra)


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


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run of 30 iterations that every interrupted run must equal."""
    run = tmp_path_factory.mktemp("straight") / "run"
    subprocess.run(_cmd(run), env=ENV, check=True, timeout=600, capture_output=True)
    return run


def assert_same_run(straight: Path, other: Path, redone: bool) -> None:
    """Same losses at every iteration (each logged once unless ``redone``), same validation,
    bit-identical final weights."""
    a, b = logged_losses(straight / "log.txt"), logged_losses(other / "log.txt")
    assert sorted(a) == sorted(b) == list(range(1, 31))
    for it in a:
        assert len(a[it]) == 1
        assert set(b[it]) == set(a[it]), f"iteration {it}: {a[it]} vs {b[it]}"
    assert any(len(v) > 1 for v in b.values()) == redone
    assert "resumed from iteration" in (other / "log.txt").read_text()
    for net in ("g", "d"):
        x = torch.load(straight / "models" / f"net_{net}_30.pth", weights_only=True)
        y = torch.load(other / "models" / f"net_{net}_30.pth", weights_only=True)
        for key in ("params", "params_ema"):
            if key in x:
                assert x[key].keys() == y[key].keys()
                for name in x[key]:
                    assert torch.equal(x[key][name], y[key][name]), (net, key, name)
    val = re.compile(r"val iter (\d+) .*")
    va = [m.group(0) for m in map(val.search, (straight / "log.txt").read_text().splitlines())
          if m]
    vb = {m.group(0) for m in map(val.search, (other / "log.txt").read_text().splitlines())
          if m}
    assert va and set(va) == vb


def test_sigkill_and_resume_equals_an_uninterrupted_run(straight, tmp_path):
    killed = tmp_path / "killed"
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
    assert_same_run(straight, killed, redone=True)  # work after a checkpoint was redone


def _wait_for(proc, log: Path, text: str, timeout=240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not (
            log.exists() and text in log.read_text()):
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before the signal"


def test_ctrl_c_saves_a_checkpoint_and_resume_equals_an_uninterrupted_run(straight, tmp_path):
    from optiqa.core.runs import RunFolder
    from optiqa.train.checkpoint import find_resume_point

    run = tmp_path / "interrupted"
    proc = subprocess.Popen(_cmd(run), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(proc, run / "log.txt", "iter 13/30")  # between the checkpoints of 10 and 20
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and out == ""
    m = re.search(r"^interrupted at (\d+) \(SIGINT\); checkpoint \1 saved; resume with: "
                  r"(optiqa train .*)$", err, re.M)
    assert m, err
    stopped = int(m.group(1))
    assert 13 <= stopped < 20
    log = (run / "log.txt").read_text()
    assert log.count(f"interrupted at {stopped} (SIGINT)") == 1
    assert f"saved checkpoint {stopped}" in log and f"iter {stopped + 1}/30" not in log
    assert find_resume_point(RunFolder(run)).iteration == stopped  # complete, atomic
    # resume with exactly the command it printed
    hint = shlex.split(m.group(2))
    assert hint[0] == "optiqa" and hint[-1] == "--resume"
    done = subprocess.run(optiqa_cmd(*hint[1:]), env=ENV, timeout=600, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(straight, run, redone=False)  # nothing after the checkpoint was lost


def test_a_second_signal_exits_at_once(tmp_path):
    run = tmp_path / "twice"
    proc = subprocess.Popen(_cmd(run), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(proc, run / "log.txt", "iter 3/30")
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    # both arrive while the process is busy; Python runs their handlers in signal-number order
    first = re.search(r"optiqa: (SIGINT|SIGTERM) received: stopping after this iteration", err)
    second = re.search(r"optiqa: second signal \((SIGINT|SIGTERM)\): exiting at once", err)
    assert first and second and first.group(1) != second.group(1), err
    assert "Traceback" not in err
    assert "interrupted at" not in (run / "log.txt").read_text()  # it did not wait


# a tiny SwinIR x4 (L1 only, as configs/train/swinir_x4_psnr.yaml) whose stochastic depth draws
# from the global torch RNG on every training step
SWINIR = ["network_g={type: swinir, embed_dim: 8, depths: [2], num_heads: [2], window_size: 4, "
          "mlp_ratio: 1, num_feat: 8, drop_path_rate: 0.5}", "network_d=null", "train.gan_opt=null",
          "train.fidelity_opt=null", "train.pixel_only_iter=0", "train.total_iter=16",
          "train.warmup_iter=0",
          "train.ema_decay=0.999", "datasets.train.gt_size=32", "datasets.train.batch_size=2",
          "datasets.val.dataroot_gt=builtin:samples/64", "datasets.val.max_images=1",
          "val.val_freq=16", "logger.print_freq=1", "logger.save_checkpoint_freq=100"]


def test_swinir_ctrl_c_and_resume_equals_an_uninterrupted_run(tmp_path):
    """The day-two report: a SwinIR run interrupted and resumed logged other losses from some
    point on (the resumed data loader drew its seed from the restored global RNG)."""
    straight, run = tmp_path / "straight", tmp_path / "interrupted"
    base = ["train", TINY, *SWINIR, "-q"]
    subprocess.run(optiqa_cmd(*base, "--run-dir", straight), env=ENV, check=True, timeout=600,
                   capture_output=True)
    proc = subprocess.Popen(optiqa_cmd(*base, "--run-dir", run), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, run / "log.txt", "iter 4/16")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    stopped = int(re.search(r"interrupted at (\d+)", err).group(1))
    assert stopped < 16
    done = subprocess.run(optiqa_cmd(*base, "--run-dir", run, "--resume"), env=ENV, timeout=600,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = logged_losses(straight / "log.txt"), logged_losses(run / "log.txt")
    assert sorted(a) == sorted(b) == list(range(1, 17))
    assert all(b[it] == a[it] for it in a), {it: (a[it], b[it]) for it in a if a[it] != b[it]}
    x = torch.load(straight / "models" / "net_g_16.pth", weights_only=True)
    y = torch.load(run / "models" / "net_g_16.pth", weights_only=True)
    for key in ("params", "params_ema"):
        assert all(torch.equal(x[key][k], y[key][k]) for k in x[key]), key
