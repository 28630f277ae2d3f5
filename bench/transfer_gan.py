"""The "gan" transfer experiments of a study: the truncated backbone stopped early against every
stage computed and sliced (the code before ``TruncatedBackbone`` used ``upto=``), one run.

For every trained discriminator under ``--runs`` (run folders as a study leaves them, each with
``config.yaml`` and ``models/net_d_<iter>.pth``) whose backbone the study config's ``transfer``
section lists, runs the transfer experiment with ``init gan:<run>`` exactly as the study's
transfer stage does (same options, dataset, seed; no store), twice: with every stage of the
backbone computed and the first maps kept (``full``) and stopping after the last map
(``upto``), in alternating order. Prints the CPU seconds of each (this process, ``--threads``
torch threads: the study's CPU pool runs transfer on one), their ratio, and checks that both
give the same results (every number of the result but its time).

    python bench/transfer_gan.py --runs <study>/runs            # configs/study/quick.yaml
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from optiqa.core.runs import RunFolder  # noqa: E402
from optiqa.study.assessment import load_iqa_dataset  # noqa: E402
from optiqa.study.config import load_study_config  # noqa: E402
from optiqa.transfer import init as transfer_init  # noqa: E402
from optiqa.transfer.experiment import TransferOptions, run_transfer  # noqa: E402
from optiqa.transfer.fitting import TrainSettings  # noqa: E402

VOLATILE = ("seconds", "from_store", "key", "images_per_second")


def full_forward(self, x):
    """The forward before ``upto=``: every stage, then the first ``n_maps`` maps."""
    return self.backbone(x)[:self.n_maps]


def numbers(result):
    if isinstance(result, dict):
        return {k: numbers(v) for k, v in result.items() if k not in VOLATILE}
    return [numbers(v) for v in result] if isinstance(result, list) else result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, type=Path, help="a study's runs/ folder")
    p.add_argument("--config", default="configs/study/quick.yaml")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the pool's: 1)")
    p.add_argument("--limit", type=int, default=0, help="at most this many runs (0: all)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = load_study_config(a.config)
    t = cfg.transfer
    ds = load_iqa_dataset(t.dataset)
    runs = []
    for run_dir in sorted(p for p in a.runs.iterdir() if p.is_dir()):
        run = RunFolder(run_dir)
        bb = transfer_init.discriminator_backbone_name(run.network_spec("d"))
        if bb in t.backbones and run.latest("d") is not None:
            runs.append((run_dir, bb))
    runs = runs[:a.limit] if a.limit else runs
    if not runs:
        print(f"no discriminator on {', '.join(t.backbones)} under {a.runs}")
        return 1
    upto_forward = transfer_init.TruncatedBackbone.forward
    cpu = {"full": 0.0, "upto": 0.0}
    differ = []
    for i, (run_dir, bb) in enumerate(runs):
        results = {}
        for mode in (("full", "upto") if i % 2 == 0 else ("upto", "full")):
            transfer_init.TruncatedBackbone.forward = (full_forward if mode == "full"
                                                       else upto_forward)
            opts = TransferOptions(backbone=bb, init=f"gan:{run_dir}", kind=t.kind,
                                   mode=t.mode, repeats=t.repeats, seed=cfg.seed,
                                   train=TrainSettings(epochs=t.epochs, device="cpu"))
            t0 = time.process_time()
            results[mode] = run_transfer(opts, ds)
            cpu[mode] += time.process_time() - t0
        transfer_init.TruncatedBackbone.forward = upto_forward
        info = results["upto"]["init_info"]
        same = numbers(results["full"]) == numbers(results["upto"])
        if not same:
            differ.append(run_dir.name)
        print(f"{run_dir.name}: maps {info['trained_maps']} of {info['maps']}, "
              f"{'identical' if same else 'DIFFERENT'}", flush=True)
    print(f"{len(runs)} gan experiments ({a.config}, {a.threads} thread(s)), CPU s: every "
          f"stage {cpu['full']:.1f}, stopped early {cpu['upto']:.1f}, ratio "
          f"{cpu['full'] / cpu['upto']:.2f}x; load average {os.getloadavg()[0]:.1f}")
    print("results: identical" if not differ else f"results DIFFER: {', '.join(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
