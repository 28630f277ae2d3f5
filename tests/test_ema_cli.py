"""EMA that does not mislead (day-two report): a short run from scratch with ``ema_decay`` 0.999
used to validate, save and evaluate weights still ~97 % those of its random initialisation, and
nothing said so. With the warm-up of the decay the EMA follows G, and the log and ``optiqa
evaluate`` say which weights they score. Through the ``optiqa`` command (``optiqa.cli.main``
in this process)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from clitools import run_main

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"
SHORT_SWINIR = [
    "network_g={type: swinir, embed_dim: 8, depths: [2], num_heads: [2], window_size: 4, "
    "mlp_ratio: 1, num_feat: 8}", "network_d=null", "train.gan_opt=null",
    "train.fidelity_opt=null", "train.pixel_only_iter=0", "train.total_iter=30",
    "train.warmup_iter=0", "train.ema_decay=0.999", "datasets.train.gt_size=32",
    "datasets.train.batch_size=4", "datasets.val.dataroot_gt=builtin:samples/64",
    "val.val_freq=30", "val.save_samples=0", "logger.print_freq=10"]


def _evaluate(run: Path, tmp_path: Path, *extra) -> tuple[dict, str]:
    out = tmp_path / f"eval{len(extra)}.json"
    proc = run_main("evaluate", run, "--set", "val=builtin:samples/64", "--means-only",
                    "--json", out, "-q", *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    return result["sets"]["val"]["mean"], result["model"]


def test_short_run_validates_an_ema_that_follows_g_and_says_so(tmp_path):
    run = tmp_path / "run"
    proc = run_main("train", TINY, *SHORT_SWINIR, "--run-dir", run, "-q")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (run / "log.txt").read_text()
    assert "EMA of G: decay 0.999, warmed up as min(decay, (1+t)/(10+t))" in log
    m = re.search(r"val iter 30 \(EMA of G, decay 0\.7692 after 30 updates \(warm-up "
                  r"min\(0\.999, \(1\+t\)/\(10\+t\)\)\); border 4\): psnr_y ([\d.]+)", log)
    assert m, log[-1500:]
    ema, ema_model = _evaluate(run, tmp_path)
    g, g_model = _evaluate(run, tmp_path, "--weights", "params")
    assert "weights params_ema (the EMA of G, decay 0.7692 after 30 updates" in ema_model
    assert "weights params (G itself, not its EMA)" in g_model
    # without the warm-up the EMA was 0.999^30 = 97 % the initial weights: 0.4 dB and 0.05 SSIM
    # below G on this run; with it the EMA averages G's last few iterates
    assert ema["psnr_y"] >= g["psnr_y"] - 0.1, (ema, g)
    assert ema["ssim_y"] >= g["ssim_y"] - 0.01, (ema, g)
