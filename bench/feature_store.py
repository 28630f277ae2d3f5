"""A quick-config DISTS cell's training step with and without the shared ground-truth features
(optiqa.metrics.feature_store), in one process on one thread (issue 23, target 1).

Three trainers start from the same weights: the first fills the store (what the first cell of a
loss does), then the second (no store) and the third (reads every batch from the store, what
the other four cells of the loss do) alternate step by step, so that a change of machine load
hits both. Prints the median CPU ms per step of each, the ratio, and whether G, EMA and D of
the second and third are bit-identical after the steps.

    python bench/feature_store.py --metric dists_vgg16_r --steps 8

``--old REF`` runs the same measurement on git ref ``REF``'s code (extracted with ``git archive``)
and on this tree, in fresh processes alternating ``--rounds`` times, and prints the old/new ratio
of each step kind and whether both codes trained to the same weights:

    python bench/feature_store.py --old 2fd409a --rounds 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
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


def measure(metric: str, steps: int) -> dict:
    """Median CPU ms per step of each kind (steps 2..), whether the store changed the weights,
    and a SHA-256 of the weights trained through the store."""
    from optiqa.metrics.feature_store import sharing_reference_features

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        first, plain, shared = trainer(metric), trainer(metric), trainer(metric)
        times = {"first (writes)": [], "no store": [], "store (reads)": []}
        for i in range(1, steps + 1):
            for name, t, folder in (("first (writes)", first, tmp), ("no store", plain, None),
                                    ("store (reads)", shared, tmp)):
                with sharing_reference_features(folder):
                    c0 = time.thread_time()
                    t.train_step(i, t.train_set.batch(i, 6))
                    times[name].append(time.thread_time() - c0)
        same = all(torch.equal(a, b) for a, b in zip(weights(plain).values(),
                                                      weights(shared).values()))
        h = hashlib.sha256()
        for name, v in weights(shared).items():
            h.update(name.encode() + v.detach().contiguous().numpy().tobytes())
    return {"ms": {k: 1000 * statistics.median(v[1:]) for k, v in times.items()},
            "same": same, "digest": h.hexdigest()}


def old_vs_new(args) -> None:
    """``measure`` under the old and the new code, alternating in fresh processes."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.old, "src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        runs = {"old": [], "new": []}
        for _ in range(args.rounds):
            for side, src in (("old", Path(tmp) / "src"), ("new", REPO / "src")):
                env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
                out = subprocess.run([sys.executable, __file__, "--metric", args.metric,
                                      "--steps", str(args.steps), "--json"], env=env,
                                     check=True, capture_output=True, text=True).stdout
                runs[side].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.metric}: old {args.old}, new this tree; {args.rounds} rounds of {args.steps} "
          f"steps; load average {os.getloadavg()[0]:.1f}")
    for kind in runs["old"][0]["ms"]:
        old, new = (statistics.median(r["ms"][kind] for r in runs[s]) for s in ("old", "new"))
        print(f"{kind:16s} old {old:7.1f}  new {new:7.1f} ms CPU per step  old/new {old / new:.3f}")
    same = len({r["digest"] for r in runs["old"] + runs["new"]}) == 1
    print("weights through the store, old vs new: " + ("bit-identical" if same else "DIFFER"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metric", default="dists_vgg16_r")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--old", help="git ref of the code to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.old:
        return old_vs_new(args)
    result = measure(args.metric, args.steps)
    if args.json:
        print(json.dumps(result))
        return
    med = result["ms"]
    for k, v in med.items():
        print(f"{k:16s} {v:7.1f} ms CPU per step (median of steps 2-{args.steps})")
    print(f"no store / store: {med['no store'] / med['store (reads)']:.2f}x; "
          f"weights {'bit-identical' if result['same'] else 'DIFFER'}")


if __name__ == "__main__":
    main()
