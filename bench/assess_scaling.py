"""How the time of `optiqa assess` grows with the number of pairs: a table and a log-log plot.

A KADID-shaped database (512x384 PNG references from the built-in photos, each distorted 125
times, a ``KADID10k.csv``-style meta file; :func:`assess_speed.build_kadid_like`) of ``--total``
pairs (KADID-10k: 10,125) is written to ``--folder``; then the real command

    optiqa assess -m METRIC -d kadid10k --root FOLDER --meta META --bootstrap 0 -q --workers W

is timed (wall clock, a fresh empty result cache each time, so nothing is reused) on the first
1/8, 1/4, 1/2 and all of the pairs. The DataLoader of ``optiqa assess`` decodes the PNGs in
worker processes with prefetching (:mod:`optiqa.assess.batches`), so decoding overlaps scoring;
linear growth shows as a slope of 1 on the log-log plot. A fraction whose time, predicted
linearly from the previous one, would exceed ``--budget`` seconds is not run and is listed as
skipped: nothing is extrapolated.

    python bench/assess_scaling.py --folder /tmp/kadid_like                 # KADID-sized
    python bench/assess_scaling.py --total 1000 --metrics ssim --budget 300  # what fits
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assess_speed import KADID_PAIRS, build_kadid_like, write_meta  # noqa: E402

FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)
LABELS = ("1/8", "1/4", "1/2", "all")


def time_assess(metric: str, folder: Path, meta: Path, workers: int, batch: int,
                device: str = "cpu") -> float | None:
    """Wall seconds of one `optiqa assess` run (process start included), no cache reuse;
    None (with the reason printed) when the command fails."""
    with tempfile.TemporaryDirectory(prefix="optiqa_cache_") as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPTIQA_CACHE": cache}
        cmd = [sys.executable, "-m", "optiqa", "assess", "-m", metric, "-d", "kadid10k",
               "--root", str(folder), "--meta", str(meta), "--bootstrap", "0", "-q",
               "--workers", str(workers), "--batch-size", str(batch), "--device", device]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    if done.returncode:  # e.g. pretrained weights not on this machine: say so, go on
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        print(f"{metric}: optiqa assess failed ({meta.name}): {lines[-1][:200]}")
        return None
    return elapsed


def plot(results: dict, path: Path, total: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for metric, rows in results.items():
        pts = [(n, t) for n, t in rows if t is not None]
        if not pts:
            continue
        ns, ts = zip(*pts)
        ax.loglog(ns, ts, "o-", label=metric)
        # slope-1 guide through the smallest run: linear growth lies on it
        ax.loglog([ns[0], total], [ts[0], ts[0] * total / ns[0]], ":", color="grey", lw=1)
    ax.set_xlabel("pairs scored")
    ax.set_ylabel("optiqa assess wall time (s)")
    ax.set_title("optiqa assess, KADID-shaped 512x384 PNGs\n(dotted: linear growth)",
                 fontsize=10)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total", type=int, default=KADID_PAIRS, help="pairs in 'all' (KADID-10k: "
                   "10125)")
    p.add_argument("--metrics", nargs="+", default=["ssim", "dists_vgg16_r"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--budget", type=float, default=3600.0,
                   help="skip a run predicted (linearly) to take longer than this many seconds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes that write the generated images")
    p.add_argument("--folder", help="keep the generated images here (reused when present)")
    p.add_argument("--plot", default=str(Path(__file__).resolve().parents[1] / "docs" /
                                         "figures" / "assess_scaling.png"))
    args = p.parse_args(argv)

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="kadid_like_"))
    t0 = time.perf_counter()
    rows = build_kadid_like(folder, args.total, args.jobs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"data: {len(rows)} pairs at 512x384 in {folder} ({time.perf_counter() - t0:.0f} s to "
          f"write); {os.cpu_count()} CPUs, load average {load:.1f}; device {args.device}, "
          f"{args.workers} workers, batch {args.batch_size}")
    results = {}
    for metric in args.metrics:
        results[metric] = []
        previous = None
        for frac, label in zip(FRACTIONS, LABELS):
            n = max(1, round(args.total * frac))
            if previous and previous[1] * n / previous[0] > args.budget:
                print(f"{metric:14s} {label:>4s} {n:6d} pairs: skipped (predicted "
                      f"{previous[1] * n / previous[0]:.0f} s > budget {args.budget:.0f} s)")
                results[metric].append((n, None))
                continue
            meta = folder / f"meta_{n}.csv"
            write_meta(meta, rows[:n])
            elapsed = time_assess(metric, folder, meta, args.workers, args.batch_size,
                                  args.device)
            if elapsed is None:
                del results[metric]
                break
            previous = (n, elapsed)
            results[metric].append((n, elapsed))
            print(f"{metric:14s} {label:>4s} {n:6d} pairs: {elapsed:8.1f} s "
                  f"({n / elapsed:.2f} pairs/s)", flush=True)
    print(f"\n| metric | fraction | pairs | seconds | pairs/s | time / time at 1/8 | "
          f"pairs / pairs at 1/8 |\n|---|---|---:|---:|---:|---:|---:|")
    for metric, rs in results.items():
        base = rs[0]
        if base[1] is None:
            continue
        for (n, t), label in zip(rs, LABELS):
            if t is None:
                print(f"| {metric} | {label} | {n} | not run (budget) | | | |")
            else:
                print(f"| {metric} | {label} | {n} | {t:.1f} | {n / t:.2f} | "
                      f"{t / base[1]:.2f} | {n / base[0]:.2f} |")
    for metric, rs in results.items():
        pts = [(n, t) for n, t in rs if t is not None]
        if len(pts) >= 2:  # t = start + n / rate by least squares: start-up vs per-pair cost
            import numpy as np

            slope, start = np.polyfit([n for n, _ in pts], [t for _, t in pts], 1)
            print(f"{metric}: fit t = {start:.1f} s + n / {1 / slope:.2f} pairs/s "
                  f"(start-up and reading the meta file, then the marginal rate)")
    plot(results, Path(args.plot), args.total)
    print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
