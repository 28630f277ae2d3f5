"""A few steps of a quick-config-like training cell, for the tests that compare a shortcut's
trained weights bit for bit with the computation it replaces (tests/test_feature_store.py,
tests/test_train_speed.py): one fidelity loss, an effnet_lite0 patch discriminator read at stage
2 (random init: no download), channels-last G and D, fp32, on one thread as the study runs its
cells (rounding depends on the thread count)."""
from __future__ import annotations

from pathlib import Path

import torch

TINY = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"


def cell_overrides(metric: str, gt_size: int) -> list[str]:
    """``tiny_cpu.yaml`` overrides for the cell: ``metric`` as the only generator loss besides
    the adversarial term, batches of two ``gt_size`` crops, no validation."""
    return [f"datasets.train.gt_size={gt_size}", "datasets.train.batch_size=2", "val=null",
            "datasets.val=null", "network_g.num_feat=8", "network_g.num_block=1",
            "train.pixel_only_iter=0", "train.warmup_iter=0", "train.bf16=false",
            "train.pixel_opt=null", f"train.fidelity_opt={{metric: {metric}, weight: 1}}",
            "network_d={type: backbone, backbone: effnet_lite0, head: patch, stage: 2, "
            "pretrained: false}", "train.gan_opt.weight=0.03"]


def train_cell(metric: str = "dists_vgg16_r", gt_size: int = 48, steps: int = 3,
               start: dict | None = None) -> dict:
    """G, its EMA and D (``g.*``, ``ema.*``, ``d.*``) after ``steps`` training steps of the cell
    on one torch thread; ``start`` (a dict) receives G's initial weights."""
    from optiqa.train.config import load_train_config
    from optiqa.train.trainer import Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(load_train_config(TINY, cell_overrides(metric, gt_size)), "cpu",
                          progress=False)
        if start is not None:
            start.update({f"g.{k}": v.clone() for k, v in trainer.net_g.state_dict().items()})
        for i in range(1, steps + 1):
            trainer.train_step(i, trainer.train_set.batch(i, 2))
    finally:
        torch.set_num_threads(threads)
    return {**{f"g.{k}": v for k, v in trainer.net_g.state_dict().items()},
            **{f"ema.{k}": v for k, v in trainer.ema.state_dict().items()},
            **{f"d.{k}": v for k, v in trainer.net_d.state_dict().items()}}


def differing(expected: dict, got: dict) -> list[str]:
    """Names whose tensors are not bit-identical (or missing on either side)."""
    return sorted(set(expected) ^ set(got)) + [
        k for k in expected if k in got and not torch.equal(expected[k], got[k])]
