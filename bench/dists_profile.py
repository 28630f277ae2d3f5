"""Where one pair's CPU time goes in `optiqa assess -m dists_vgg16_r`, against what the CPU can do.

`optiqa assess` on the CPU scores each pair inside a DataLoader worker with one thread: the
reference's features are prepared once per reference, then every distorted image costs one
VGG-16 forward (L2 pooling instead of max pooling) and the DISTS statistics
(:meth:`DISTS.compute_prepared` through :meth:`FRMetric.reference_scorer`). This script times
exactly that call on 512x384 images (KADID-10k's size) with one thread, and its parts:

- the multiply-accumulates of the backbone's convolutions at that size, counted by forward
  hooks (``out.numel() * in_channels / groups * kh * kw``), and the rate reached in GFLOP/s
  (2 FLOP per MAC) against one core's fp32 peak (``--peak-gflops``; default: AVX-512, two FMA
  units, 2 x 16 x 2 FLOP per cycle at the clock ``/proc/cpuinfo`` reports);
- the share of convolutions, L2 pooling, ReLU and the statistics (``torch.profiler``, self CPU
  time per operator);
- variants that change rounding (NCHW instead of channels-last, bf16 autocast on AMX, oneDNN's
  implicit bf16 for fp32 convolutions, batches of 2 and 4): timed, and their scores compared
  with the default's. They are only measured here; none is the default unless bit-identical.

Every time is the minimum over ``--reps`` runs (process CPU time, one thread), so it measures
the CPU work, not the other processes on a shared machine.

    python bench/dists_profile.py                 # about a minute of CPU
    python bench/dists_profile.py --reps 5 --variants
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from optiqa import create_metric  # noqa: E402


def conv_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every ``nn.Conv2d`` in ``module`` for one forward of ``x``."""
    total = [0]

    def hook(m, inp, out):
        total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


def default_peak_gflops() -> float:
    """One core's fp32 peak if it has AVX-512 with two FMA units: 64 FLOP per cycle."""
    mhz = 0.0
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            found = re.findall(r"cpu MHz\s*:\s*([\d.]+)", f.read())
            mhz = float(found[0]) if found else 0.0
    return 64 * mhz / 1000 if mhz else float("nan")


def cpu_time(fn, reps: int) -> float:
    """Minimum process CPU seconds of ``fn()`` over ``reps`` runs (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metric", default="dists_vgg16_r")
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--peak-gflops", type=float, default=default_peak_gflops(),
                   help="one core's fp32 peak (default: AVX-512 2 FMA units at cpuinfo's clock)")
    p.add_argument("--variants", action="store_true",
                   help="also time NCHW, bf16 autocast, oneDNN implicit bf16, batches of 2 and 4")
    p.add_argument("--profile", action="store_true", help="operator table (torch.profiler)")
    args = p.parse_args(argv)

    torch.set_num_threads(1)  # as in a DataLoader worker
    metric = create_metric(args.metric)
    g = torch.Generator().manual_seed(0)
    shape = (1, 3, args.height, args.width)
    ref = torch.rand(shape, generator=g)
    xs = (ref + 0.1 * torch.randn((4, *shape[1:]), generator=g)).clamp(0, 1)
    x1 = xs[:1]

    macs = conv_macs(metric.backbone, x1)
    gflop = 2 * macs / 1e9
    print(f"{args.metric} at {args.width}x{args.height}: {macs / 1e9:.2f} GMAC = {gflop:.1f} GFLOP "
          f"per image (convolutions); 1 thread, torch {torch.__version__}; one core's fp32 peak "
          f"taken as {args.peak_gflops:.0f} GFLOP/s ({gflop / args.peak_gflops:.2f} s per image)")

    with torch.inference_mode():
        score = metric.reference_scorer(ref)
        feats_ref = metric.features(ref)
        fx = metric.features(x1)
        t_pair = cpu_time(lambda: score(x1), args.reps)
        t_feat = cpu_time(lambda: metric.features(x1), args.reps)
        from optiqa.metrics.deep import (dists_from_features, dists_from_prepared,
                                         prepare_dists_reference)
        fr = [f.expand(1, *f.shape[1:]) for f in feats_ref]
        t_old = cpu_time(lambda: dists_from_features(fx, fr, metric.alpha, metric.beta),
                         args.reps)
        prepared = prepare_dists_reference(feats_ref)
        t_stats = cpu_time(lambda: dists_from_prepared(fx, prepared, metric.alpha, metric.beta),
                           args.reps)
        same = torch.equal(dists_from_prepared(fx, prepared, metric.alpha, metric.beta),
                           dists_from_features(fx, fr, metric.alpha, metric.beta))
        t_prep = cpu_time(lambda: metric.reference_scorer(ref), args.reps)
    print(f"per pair (score of one distorted image, reference prepared): {t_pair:.3f} s CPU")
    print(f"  backbone forward (features):  {t_feat:.3f} s  = {gflop / t_feat:.0f} GFLOP/s, "
          f"{100 * gflop / t_feat / args.peak_gflops:.0f} % of the peak")
    print(f"  DISTS statistics:             {t_stats:.3f} s (dists_from_prepared: reference "
          f"moments kept, contiguous maps)")
    print(f"    before (dists_from_features on channels-last maps, reference's moments per "
          f"pair): {t_old:.3f} s, {t_old / t_stats:.2f}x; scores "
          f"{'bit-identical' if same else 'DIFFERENT'}")
    print(f"  rest (input checks, casts):   {t_pair - t_feat - t_stats:.3f} s")
    print(f"preparing one reference:        {t_prep:.3f} s (once per reference and worker)")

    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            score(x1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))

    if args.variants:
        with torch.inference_mode():
            base = torch.cat([score(x) for x in xs.split(1)])

            def variant(name, fn, images):
                t = cpu_time(fn, args.reps) / images
                out = fn()
                diff = (out - base[:out.shape[0]]).abs().max().item()
                same = torch.equal(out, base[:out.shape[0]])
                print(f"  {name:38s} {t:.3f} s/image ({t_pair / t:.2f}x)  "
                      f"max |score diff| {diff:.2e}{'  bit-identical' if same else ''}")

            print("variants (per image; scores against the default's on the same 4 images):")
            variant("default (channels-last fp32, 1 image)", lambda: score(x1), 1)
            variant("batch of 2", lambda: score(xs[:2]), 2)
            variant("batch of 4", lambda: score(xs), 4)

            @contextlib.contextmanager
            def nchw():
                from optiqa.metrics import deep
                keep = deep._cpu_channels_last
                deep._cpu_channels_last = lambda t: t.contiguous()
                try:
                    yield
                finally:
                    deep._cpu_channels_last = keep

            @contextlib.contextmanager
            def implicit_bf16():
                keep = torch.backends.mkldnn.conv.fp32_precision
                torch.backends.mkldnn.conv.fp32_precision = "bf16"
                try:
                    yield
                finally:
                    torch.backends.mkldnn.conv.fp32_precision = keep

            def under(ctx):
                """Score x1 with the reference prepared once, both under ``ctx()``."""
                with ctx():
                    scorer = metric.reference_scorer(ref)

                def run():
                    with ctx():
                        return scorer(x1)
                return run

            variant("NCHW (contiguous) fp32", under(nchw), 1)
            variant("bf16 autocast (AMX)",
                    under(lambda: torch.autocast("cpu", dtype=torch.bfloat16)), 1)
            variant("oneDNN fp32 convs in bf16 (AMX)", under(implicit_bf16), 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
