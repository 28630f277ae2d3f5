"""A quick-config DISTS cell's training step with and without the shared ground-truth features
(optiqa.metrics.feature_store), in one process on one thread (issue 23, target 1).

Three trainers start from the same weights: the first fills the store (what the first cell of a
loss does), then the second (no store) and the third (reads every batch from the store, what
the other four cells of the loss do) alternate step by step, so that a change of machine load
hits both. Prints the median CPU ms per step of each, the ratio, and whether G, EMA and D of
the second and third are bit-identical after the steps.

    python bench/feature_store.py --metric dists_vgg16_r --steps 8
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def trainer(metric: str):
    from optiqa.train.config import load_train_config
    from optiqa.train.trainer import Trainer

    overrides = ["datasets.train.gt_size=64", "datasets.train.batch_size=6", "val=null",
                 "datasets.val=null", "network_g={type: srresnet, num_feat: 24, num_block: 3}",
                 "train.pixel_only_iter=0", "train.warmup_iter=0", "train.bf16=false",
                 "train.pixel_opt=null", f"train.fidelity_opt={{metric: {metric}, weight: 1}}",
                 "network_d={type: backbone, backbone: effnet_lite0, head: patch, stage: 2, "
                 "pretrained: false}", "train.gan_opt.weight=0.03"]
    torch.manual_seed(0)
    return Trainer(load_train_config(REPO / "configs/train/tiny_cpu.yaml", overrides), "cpu",
                   progress=False)


def weights(t) -> dict:
    return {**{f"g.{k}": v for k, v in t.net_g.state_dict().items()},
            **{f"ema.{k}": v for k, v in t.ema.state_dict().items()},
            **{f"d.{k}": v for k, v in t.net_d.state_dict().items()}}


def main() -> None:
    from optiqa.metrics.feature_store import sharing_reference_features

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metric", default="dists_vgg16_r")
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        first, plain, shared = trainer(args.metric), trainer(args.metric), trainer(args.metric)
        times = {"first (writes)": [], "no store": [], "store (reads)": []}
        for i in range(1, args.steps + 1):
            for name, t, folder in (("first (writes)", first, tmp), ("no store", plain, None),
                                    ("store (reads)", shared, tmp)):
                with sharing_reference_features(folder):
                    c0 = time.thread_time()
                    t.train_step(i, t.train_set.batch(i, 6))
                    times[name].append(time.thread_time() - c0)
        same = all(torch.equal(a, b) for a, b in zip(weights(plain).values(),
                                                      weights(shared).values()))
    med = {k: 1000 * statistics.median(v[1:]) for k, v in times.items()}  # step 1: warm-up
    for k, v in med.items():
        print(f"{k:16s} {v:7.1f} ms CPU per step (median of steps 2-{args.steps})")
    print(f"no store / store: {med['no store'] / med['store (reads)']:.2f}x; "
          f"weights {'bit-identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
