"""The adversarial/fidelity gradient ratio of a study's GAN cells at their start, before training.

For every cell of a study config matching ``--cells`` (default: every loss with one
discriminator at one weight), build the cell's trainer exactly as the train stage does, draw the
batch of its first iteration and measure ``g_fid = ||grad (w_p L1 + w_f M)||`` and
``g_adv = ||grad L_adv||`` w.r.t. the generator's parameters
(:func:`optiqa.train.gradient_ratio.gradient_norms`, what ``gan_opt.relative`` uses). Prints, per
cell, the two norms, the ratio its absolute weight gives (``lambda * g_adv / g_fid``) and the
lambda a relative weight ``--ratio`` would set; the spread of the ratio over losses is what an
absolute lambda confounds with the loss. Nothing is written.

    # on the GPU node, with the data and the official SwinIR start model in place:
    python bench/gradient_ratio.py configs/study/paper.yaml --device cuda
    # here, on the CPU: a small SRResNet start and the built-in photos stand in
    python bench/gradient_ratio.py configs/study/paper.yaml --cells 'sr_x4__*__vgg16_patch__w0.005' \
        --set network_g='{type: srresnet, num_feat: 32, num_block: 4}' \
        --set path.pretrain_network_g=START.pth --set datasets.train.dataroot_gt=builtin:train \
        --set datasets.train.gt_size=128 --set datasets.train.batch_size=4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study")
    ap.add_argument("--cells", default="*__vgg16_patch__w0.005",
                    help="glob over cell names (default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override of every cell's training config (repeatable)")
    ap.add_argument("--ratio", type=float, default=0.1,
                    help="a relative weight: print the lambda it would set (default %(default)s)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args(argv)

    import torch

    from optiqa.core.errors import OptiqaError
    from optiqa.study.cells import expand_cells, select_cells
    from optiqa.study.config import load_study_config
    from optiqa.train.config import load_train_config
    from optiqa.train.gradient_ratio import gradient_norms, untouched
    from optiqa.train.trainer import Trainer

    cells = [c for c in select_cells(expand_cells(load_study_config(args.study)), args.cells)
             if c.adversarial]
    if not cells:
        print(f"no GAN cell matches {args.cells!r}", file=sys.stderr)
        return 2
    rows = []
    print(f"{'cell':<44} {'g_fid':>10} {'g_adv':>10} {'weight':>8} {'ratio':>10} "
          f"{'lambda@' + format(args.ratio, 'g'):>12} {'s':>6}")
    for c in cells:
        t0 = time.perf_counter()
        try:
            cfg = load_train_config(c.train_config, args.set)
            trainer = Trainer(cfg, args.device, progress=False)
        except OptiqaError as e:     # e.g. a backbone's weights are not on this machine
            print(f"{c.name:<44} skipped: {str(e).splitlines()[0][:90]}")
            continue
        batch = trainer.train_set.batch(0, cfg.datasets.train.batch_size)
        dev = trainer.device
        lq, hr = batch["lq"].to(dev), batch["gt"].to(dev)
        with untouched(trainer.net_g, trainer.net_d, device=dev):
            g_fid, g_adv = gradient_norms(trainer.net_g, trainer.net_d, trainer.objective, lq,
                                          hr, trainer.g_params)
        w = cfg.train.gan_opt.weight
        row = {"cell": c.name, "fidelity": c.fidelity, "g_fid": g_fid, "g_adv": g_adv,
               "weight": w, "relative": cfg.train.gan_opt.relative,
               "ratio": None if c.relative else w * g_adv / g_fid,
               "lambda_for_ratio": args.ratio * g_fid / g_adv}
        rows.append(row)
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3g}"
        print(f"{c.name:<44} {g_fid:>10.4g} {g_adv:>10.4g} {w:>8g} {ratio:>10} "
              f"{row['lambda_for_ratio']:>12.4g} {time.perf_counter() - t0:>6.1f}", flush=True)
        del trainer
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    if len(ratios) > 1:
        print(f"ratio at the absolute weight over {len(ratios)} cells: median "
              f"{statistics.median(ratios):.3g}, min {min(ratios):.3g}, max {max(ratios):.3g} "
              f"(a factor of {max(ratios) / min(ratios):.3g})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
