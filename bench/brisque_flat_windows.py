"""How much BRISQUE depends on the sign given to coefficients of exactly flat 7x7 windows.

In exact arithmetic the MSCN coefficient of a flat window is 0; MATLAB's filter2 leaves a
residue of about 1e-14 whose sign depends on its order of additions, and the AGGD fit counts the
pixel on that side. Ours are 0. This script scores the calibration images with the flat-window
coefficients set to 0 (ours), to +1e-15 or -1e-15 everywhere, and to a random sign per grey
value (as a fixed summation order would give: one sign per flat value), and prints the range
next to the official score.

    python bench/brisque_flat_windows.py [--root ../shared/data/iqa/calibration] [--draws 20]
"""
from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import optiqa  # noqa: E402
from optiqa.data.io import read_image  # noqa: E402
from optiqa.metrics import brisque as brisque_module  # noqa: E402
from optiqa.ops import flat_windows, nss  # noqa: E402


def score_with(metric, x, flat_value):
    """BRISQUE of ``x`` with flat-window coefficients replaced by ``flat_value(img, flat)``."""
    original = nss.mscn

    def mscn(img, padding="replicate", c=nss.MSCN_C):
        coeffs = original(img, padding, c)
        flat = flat_windows.flat_windows(img, padding)
        return torch.where(flat, flat_value(img, flat), coeffs)

    brisque_module.mscn = mscn
    try:
        with torch.no_grad():
            return metric(x).tolist()
    finally:
        brisque_module.mscn = original


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                         / "iqa" / "calibration"))
    p.add_argument("--draws", type=int, default=20)
    args = p.parse_args()
    root = Path(args.root)
    with open(root / "nr_official_scores.csv", newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    official = dict(zip(names, map(float, next(r for r in rows if r[0] == "brisque")[1:])))
    x = torch.stack([read_image(root / "dist" / n) for n in names])
    metric = optiqa.create_metric("brisque")
    variants = {"0 (ours)": lambda img, flat: torch.zeros_like(img),
                "+1e-15": lambda img, flat: torch.full_like(img, 1e-15),
                "-1e-15": lambda img, flat: torch.full_like(img, -1e-15)}
    results = {k: score_with(metric, x, f) for k, f in variants.items()}
    draws = []
    for seed in range(args.draws):
        g = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (256 * 1024,), generator=g).double() * 2 - 1

        def per_value(img, flat, signs=signs):
            # one sign per flat grey value (scale 2 values hashed to a bucket)
            key = (img * 1024).round().long().clamp(0, signs.numel() - 1)
            return signs[key] * 1e-15

        draws.append(score_with(metric, x, per_value))
    print("BRISQUE of the calibration images with flat-window coefficients set to ...")
    print(f"{'image':<8} {'official':>9} " + " ".join(f"{k:>9}" for k in variants)
          + f" {'random per value (min..max of ' + str(args.draws) + ')':>34}")
    for i, n in enumerate(names):
        lo = min(d[i] for d in draws)
        hi = max(d[i] for d in draws)
        print(f"{n:<8} {official[n]:>9.4f} " + " ".join(f"{results[k][i]:>9.4f}" for k in variants)
              + f" {lo:>16.4f} .. {hi:<15.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
