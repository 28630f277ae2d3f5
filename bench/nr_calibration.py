"""Our NIQE, BRISQUE and PIQE on the five TID2013 calibration images against the official code.

    python bench/nr_calibration.py [--root ../shared/data/iqa/calibration]

Prints ours, the official value (nr_official_scores.csv) and the difference; the bounds of the
calibration test (tests/test_calibration.py) are 2% of the official value, or 0.3 absolute where
it is below 15 (NIQE, BRISQUE); 2% for PIQE.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import optiqa  # noqa: E402
from optiqa.data.io import read_image  # noqa: E402
from optiqa.data.tabular import read_csv_rows  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                         / "iqa" / "calibration"))
    args = p.parse_args()
    root = Path(args.root)
    rows = read_csv_rows(root / "nr_official_scores.csv", "official scores")
    names = rows[0][1:]
    official = {r[0]: list(map(float, r[1:])) for r in rows[1:]}
    x = torch.stack([read_image(root / "dist" / n) for n in names])
    print(f"{'metric':<8} {'image':<8} {'ours':>9} {'official':>9} {'diff':>8} {'bound':>7}")
    for name in ("niqe", "brisque", "piqe"):
        with torch.no_grad():
            ours = optiqa.create_metric(name)(x).tolist()
        for n, o, e in zip(names, ours, official[name]):
            bound = 0.3 if name != "piqe" and abs(e) < 15 else 0.02 * abs(e)
            flag = "" if abs(o - e) <= bound else "  outside"
            print(f"{name:<8} {n:<8} {o:>9.4f} {e:>9.4f} {o - e:>+8.4f} {bound:>7.3f}{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
