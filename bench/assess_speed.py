"""Speed of `optiqa assess` against a plain loop scoring one pair at a time, in one run.

A KADID-shaped database is generated in a temporary folder (or ``--folder``): 512x384 PNG
references made from the built-in photos, each distorted 125 times (the 12 built-in distortions
x 5 levels, cycled), with a ``KADID10k.csv`` meta file. The 125 distortions are computed once per
built-in photo; the 81 references of KADID-10k's size are per-reference rolls and mirrors of the
six photos (and their distortions), PNGs at zlib level 1 (:func:`build_kadid_like`). For each
metric both paths score the same first N pairs:

- plain loop: ``read_image`` both files, ``metric(x[None], ref[None])`` under ``no_grad``, one
  pair after another (what a straightforward script does), with the default intra-op threads
  and again with one thread; the ratio is taken against the faster of the two;
- assess: ``load_dataset('kadid10k', root, meta)`` + :func:`optiqa.assess.benchmark.assess`
  (DataLoader with ``--workers`` processes, batches of ``--batch-size``, one reference per batch,
  reference features reused for DISTS-style metrics, metrics run in the workers on the CPU; no
  bootstrap).

Prints pairs/s of both, their ratio, and the time a full KADID-10k run (10,125 pairs) would take
at that rate. The default sizes are scaled down for a 2-core CPU; ``--pairs 10125`` is the full
size. ``dists_vgg16`` needs the pretrained VGG-16; when it is not on this machine the same
architecture with random weights (``dists_vgg16_r``, identical cost) is used and the output says
so.

    python bench/assess_speed.py                          # CPU, scaled down
    python bench/assess_speed.py --device cuda --pairs 10125 --deep-pairs 10125
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from optiqa import create_metric  # noqa: E402
from optiqa.assess.benchmark import assess  # noqa: E402
from optiqa.data.distortions import DISTORTIONS, distort  # noqa: E402
from optiqa.data.io import read_image  # noqa: E402
from optiqa.data.iqa import load_dataset  # noqa: E402
from optiqa.data.samples import load_sample, sample_names  # noqa: E402
from optiqa.core.errors import WeightsUnavailable  # noqa: E402

KADID_PAIRS = 10125
PER_REFERENCE = 125


def _shift(img, r: int):
    """Reference ``r``'s own version of a photo (``HWC`` uint8): rolled sideways by a step per
    reference and mirrored for every other one, so that the references made from one photo, and
    therefore all their pairs, are different images (a cache keyed by content reuses nothing)."""
    import numpy as np

    k = r // len(sample_names())
    img = np.roll(img, 37 * k, axis=1)
    return img[:, ::-1] if k % 2 else img


def _write_png(path: Path, img) -> None:
    """PNG at zlib level 1: a few times faster to write than the default level (what a KADID
    copy's PNGs cost to decode hardly depends on it); skipped when the file exists."""
    from PIL import Image

    if not path.exists():
        tmp = path.with_suffix(".tmp.png")
        Image.fromarray(img).save(tmp, compress_level=1)
        os.replace(tmp, path)


def _write_photo(folder: Path, photo: int, refs: list[tuple[int, int]]
                 ) -> list[tuple[str, str]]:
    """The references ``r`` made from built-in photo ``photo`` and their first ``count``
    distortions, for each ``(r, count)`` in ``refs``.

    The 125 distortions of a photo (the 12 built-in kinds x 5 levels, cycled, seed = index) are
    computed once; reference ``r`` and its distorted images are then the same per-reference roll
    and mirror (:func:`_shift`) of the photo and of those distortions, so every pair is still a
    reference and its distortion, at the cost of an array copy instead of a distortion.
    """
    import numpy as np

    from optiqa.data.io import to_uint8

    names = [(f"I{r + 1:02d}.png", [f"I{r + 1:02d}_{k // 5 + 1:02d}_{k % 5 + 1:02d}.png"
                                    for k in range(count)]) for r, count in refs]
    rows = [(ref_name, name) for ref_name, dists in names for name in dists]
    if all((folder / "images" / n).exists() for row in rows for n in row):
        return rows  # written before: nothing to compute
    kinds = list(DISTORTIONS)
    square = load_sample(sample_names()[photo], 512)
    ref = square[:, 64:448, :]  # 384 rows x 512 columns, like KADID
    base_ref = np.ascontiguousarray(to_uint8(ref))
    most = max(count for _, count in refs)
    base = [np.ascontiguousarray(to_uint8(distort(ref, kinds[k % len(kinds)],
                                                  1 + (k // len(kinds)) % 5, seed=k)))
            for k in range(most)]
    for k, img in enumerate(base):  # deterministic kinds repeat every 60: mark each file's
        img[-1, k, 0] ^= 1          # index in one bit of one pixel, so no two files are equal
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for (r, _), (ref_name, dists) in zip(refs, names):
        _write_png(folder / "images" / ref_name, np.ascontiguousarray(_shift(base_ref, r)))
        for k, name in enumerate(dists):
            _write_png(folder / "images" / name, np.ascontiguousarray(_shift(base[k], r)))
    return rows


def build_kadid_like(folder: Path, pairs: int, jobs: int = 1) -> list[tuple[str, str]]:
    """Write references/distortions (512x384 PNG) and return the (ref, dist) name list in
    reference order; ``jobs`` processes work on different built-in photos at the same time."""
    n_refs = math.ceil(pairs / PER_REFERENCE)
    counts = [min(PER_REFERENCE, pairs - r * PER_REFERENCE) for r in range(n_refs)]
    n_photos = min(len(sample_names()), n_refs)
    groups = [[(r, counts[r]) for r in range(p, n_refs, len(sample_names()))]
              for p in range(n_photos)]
    if jobs > 1 and n_photos > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, n_photos)) as pool:
            parts = list(pool.map(_write_photo, [folder] * n_photos, range(n_photos), groups))
    else:
        parts = [_write_photo(folder, p, g) for p, g in enumerate(groups)]
    by_ref = {}
    for part in parts:
        for ref, dist in part:
            by_ref.setdefault(ref, []).append((ref, dist))
    return [row for ref in sorted(by_ref) for row in by_ref[ref]]


def write_meta(path: Path, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ref_name", "dist_name", "dmos", "std"])
        for i, (ref, dist) in enumerate(rows):
            w.writerow([ref, dist, 1 + (i * 7919) % 400 / 100, 0.5])


def plain_loop(metric, folder: Path, rows, device, threads: int | None = None) -> float:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            for ref, dist in rows:
                x = read_image(folder / "images" / dist)[None].to(device)
                r = read_image(folder / "images" / ref)[None].to(device)
                float(metric(x, r)[0])
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def assess_path(name, folder: Path, meta: Path, args) -> float:
    t0 = time.perf_counter()
    ds = load_dataset("kadid10k", root=folder, meta=meta)
    assess([name], ds, device=args.device, batch_size=args.batch_size, workers=args.workers,
           n_boot=0, progress=False)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # ssim: 2000 pairs, so that starting the DataLoader workers (~1 s) weighs about as little as
    # in a real KADID-10k run; at 500 pairs one cold run measured 2.2x where warm runs give 3.2x
    p.add_argument("--pairs", type=int, default=2000, help="pairs for ssim (KADID: 10125)")
    p.add_argument("--deep-pairs", type=int, default=40, help="pairs for dists_vgg16")
    p.add_argument("--metrics", nargs="+", default=["ssim", "dists_vgg16"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2, help="best of R runs of each path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--folder", help="keep the generated images here (reused when present)")
    args = p.parse_args(argv)

    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="assess_speed_"))
    n_max = max(args.pairs, args.deep_pairs)
    t0 = time.perf_counter()
    rows = build_kadid_like(folder, n_max)
    print(f"data: {len(rows)} pairs at 512x384 in {folder} ({time.perf_counter() - t0:.0f} s to "
          "write)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op threads, load average {load:.1f}; device "
          f"{args.device}; assess: {args.workers} workers, batch {args.batch_size}")
    results = []
    for name in args.metrics:
        n = args.deep_pairs if name.startswith(("dists", "lpips")) else args.pairs
        shown = name
        try:
            metric = create_metric(name, device=args.device)
        except WeightsUnavailable as e:
            if not name.startswith("dists_vgg16"):
                raise
            print(f"note: {name}: pretrained weights unavailable ({str(e).split('. ')[0]}); "
                  "timing dists_vgg16_r (same architecture, random weights) instead")
            name, shown = "dists_vgg16_r", f"{name} (as dists_vgg16_r)"
            metric = create_metric(name, device=args.device)
        sub = rows[:n]
        meta = folder / f"meta_{n}.csv"
        write_meta(meta, sub)
        plain_loop(metric, folder, sub[:1], args.device)  # warm-up
        plain_t = plain1_t = assess_t = math.inf
        for _ in range(args.repeats):
            plain_t = min(plain_t, plain_loop(metric, folder, sub, args.device))
            if args.device == "cpu" and torch.get_num_threads() > 1:
                # the plain loop again with one intra-op thread: a stronger baseline when the
                # cores are contended; the ratio is taken against the faster of the two
                plain1_t = min(plain1_t, plain_loop(metric, folder, sub, args.device, 1))
            assess_t = min(assess_t, assess_path(name, folder, meta, args))
        best_plain = min(plain_t, plain1_t)
        results.append((shown, n, n / plain_t, n / plain1_t, n / assess_t,
                        best_plain / assess_t, KADID_PAIRS / (n / assess_t)))
        print(f"{shown}: plain {n / plain_t:.2f} pairs/s ({n / plain1_t:.2f} with 1 thread), "
              f"assess {n / assess_t:.2f} pairs/s, ratio {best_plain / assess_t:.2f}x",
              flush=True)
    print()
    print(f"{'metric':32s} {'pairs':>6s} {'plain pairs/s':>14s} {'(1 thread)':>11s} "
          f"{'assess pairs/s':>15s} {'ratio*':>7s} {'KADID-10k at this rate':>23s}")
    for shown, n, plain_r, plain1_r, assess_r, ratio, kadid_s in results:
        print(f"{shown:32s} {n:6d} {plain_r:14.2f} {plain1_r:11.2f} {assess_r:15.2f} "
              f"{ratio:6.2f}x {kadid_s / 60:20.1f} min")
    print("* assess pairs/s over the faster plain loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
