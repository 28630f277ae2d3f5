"""Exact resume for every trainable generator and every discriminator kind, at tiny size.

Each case trains a tiny run straight through, then the same run interrupted by a real SIGINT
after iteration 3 (the trainer's own Ctrl-C path: checkpoint, :class:`TrainingInterrupted`) and
resumed with ``run_training(..., resume=True)`` as ``optiqa train --resume`` does. On the CPU the
logged losses of every iteration, the validation and the final G, EMA and D weights (parameters and
buffers) must be bit-identical. Drop-path rates are raised to 0.5 so that any shift of the global
RNG stream (SwinIR's and HAT's stochastic depth draw from it) changes the losses at once.
"""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from optiqa.core.atomic import load_torch
from optiqa.core.runs import RunFolder
from optiqa.train.interrupt import TrainingInterrupted
from optiqa.train.run import run_training
from optiqa.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"

SWIN = "embed_dim: 8, depths: [2], num_heads: [2], window_size: 4, mlp_ratio: 1"
# (generator, discriminator, HR crop): every generator type that trains, and between them every
# discriminator kind (scratch patch/U-Net/VGG; backbone image and patch heads, with batch norm
# in train mode so that its running statistics are part of the state)
CASES = {
    "swinir": (f"{{type: swinir, {SWIN}, num_feat: 8, drop_path_rate: 0.5}}",
               "{type: patchgan, ndf: 8, n_layers: 2}", 32),
    "swinir_light": (f"{{type: swinir_light, {SWIN}, drop_path_rate: 0.5}}",
                     "{type: unet, num_feat: 8}", 32),
    "rrdbnet": ("{type: rrdbnet, num_feat: 8, num_block: 1, num_grow_ch: 4}",
                "{type: vgg, num_feat: 8}", 32),
    "srresnet": ("{type: srresnet, num_feat: 8, num_block: 1}",
                 "{type: backbone, backbone: vgg16_r, head: image, pretrained: false, stage: 2, "
                 "head_channels: 8}", 32),
    "hat": (f"{{type: hat, {SWIN.replace('embed_dim: 8', 'embed_dim: 12')}, compress_ratio: 3, "
            "squeeze_factor: 4, num_feat: 8, img_size: 8, drop_path_rate: 0.5}",
            "{type: backbone, backbone: effnet_lite0, head: patch, pretrained: false, stage: 2, "
            "head_channels: 8, bn_eval: false}", 32),
    "span": ("{type: span, feature_channels: 8}", "{type: patchgan, ndf: 8, n_layers: 2}", 32),
    "omnisr": ("{type: omnisr, num_feat: 8, res_num: 1, window_size: 4}",
               "{type: patchgan, ndf: 8, n_layers: 1}", 64),  # Omni-SR needs 16x16 LR
}


def _overrides(name: str) -> list[str]:
    g, d, gt_size = CASES[name]
    return [f"network_g={g}", f"network_d={d}", f"datasets.train.gt_size={gt_size}",
            "datasets.train.batch_size=2", "datasets.val.dataroot_gt=builtin:samples/64",
            "datasets.val.max_images=1", "val.val_freq=2", "val.save_samples=0",
            "train.total_iter=6", "train.pixel_only_iter=2", "train.warmup_iter=0",
            "train.ema_decay=0.9", "train.channels_last=false", "logger.print_freq=1",
            "logger.save_checkpoint_freq=100"]


def _curves(run: Path) -> dict[int, dict]:
    """iteration -> logged values (the timing left out); a redone iteration must log the same."""
    out: dict[int, dict] = {}
    for line in (run / "train_log.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("seconds_per_iteration")
        assert out.setdefault(row["iteration"], row) == row, row["iteration"]
    return out


def _val_lines(run: Path) -> list[str]:
    return [line[line.index("val iter"):] for line in (run / "log.txt").read_text().splitlines()
            if "val iter" in line]


def _interrupt_after(monkeypatch, iteration: int) -> None:
    """SIGINT to this process right after ``iteration``: the trainer stops as on Ctrl-C."""
    step = Trainer.train_step

    def train_step(self, it, batch):
        logs = step(self, it, batch)
        if it == iteration:
            os.kill(os.getpid(), signal.SIGINT)
        return logs

    monkeypatch.setattr(Trainer, "train_step", train_step)


@pytest.mark.parametrize("name", list(CASES))
def test_resume_equals_an_uninterrupted_run(name, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    args = dict(progress=False, console=False)
    run_training(TINY, _overrides(name), run_dir=tmp_path / "straight", **args)
    with monkeypatch.context() as m:
        _interrupt_after(m, 3)
        with pytest.raises(TrainingInterrupted):
            run_training(TINY, _overrides(name), run_dir=tmp_path / "resumed", **args)
    assert RunFolder(tmp_path / "resumed").state_iterations() == [3]
    run_training(TINY, _overrides(name), run_dir=tmp_path / "resumed", resume=True, **args)
    assert "resumed from iteration 3" in (tmp_path / "resumed" / "log.txt").read_text()

    a, b = _curves(tmp_path / "straight"), _curves(tmp_path / "resumed")
    assert sorted(a) == list(range(1, 7)) and a == b
    assert _val_lines(tmp_path / "straight") == _val_lines(tmp_path / "resumed")
    for net in ("g", "d"):
        x = load_torch(RunFolder(tmp_path / "straight").model_path(net, 6))
        y = load_torch(RunFolder(tmp_path / "resumed").model_path(net, 6))
        for key in ("params", "params_ema"):
            assert (key in x) == (key in y)
            if key in x:
                assert x[key].keys() == y[key].keys()
                for k in x[key]:
                    assert torch.equal(x[key][k], y[key][k]), (net, key, k)


def test_the_training_loader_leaves_the_global_rng_alone():
    """Creating and iterating the training loader (as a resumed run does after restoring the
    checkpoint's RNG states) must not draw from the global torch RNG."""
    from optiqa.data.sr import create_train_loader
    from optiqa.train.config import build_train_datasets, load_train_config

    cfg = load_train_config(TINY, ["datasets.train.gt_size=32", "datasets.train.batch_size=1"])
    ds = build_train_datasets(cfg)["train"]
    before = torch.get_rng_state()
    loader = create_train_loader(ds, 1, start_iter=5, total_iter=7)
    assert len(list(loader)) == 2
    assert torch.equal(torch.get_rng_state(), before)
