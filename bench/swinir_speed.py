"""Our SwinIR vs spandrel's SwinIR (the official code's structure), same weights, one run.

Both networks are built with the same configuration, spandrel's weights are loaded into ours
(official key layout), and the outputs are checked to agree on an input whose sides are a
multiple of the window (the two pad other sizes differently: ours mirrors like the official test
script, spandrel reflects like the official model). Timed blocks of the two alternate and the
median per call is reported, so a change in machine load hits both sides; the ratio printed is
spandrel / ours (above 1: ours is faster).

    python bench/swinir_speed.py                       # CPU, lightweight SwinIR, 64x64 LR
    python bench/swinir_speed.py --preset classical --size 48 --train
    python bench/swinir_speed.py --device cuda --preset classical --size 64 --batch 4 --train
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

PRESETS = {  # the official configurations (main_test_swinir.py), x4
    "light": dict(upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0,
                  depths=[6] * 4, embed_dim=60, num_heads=[6] * 4, mlp_ratio=2,
                  upsampler="pixelshuffledirect", resi_connection="1conv"),
    "classical": dict(upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0,
                      depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2,
                      upsampler="pixelshuffle", resi_connection="1conv"),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_block(fn, device, calls: int) -> float:
    sync(device)
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return (time.perf_counter() - t) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), default="light")
    p.add_argument("--size", type=int, default=64, help="LR side (a multiple of the window)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--train", action="store_true", help="time forward + backward (training)")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--calls", type=int, default=3, help="calls per timed block")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--attn-impl", default="explicit", choices=["explicit", "sdpa"],
                   help="our SwinIR's attention path")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    from spandrel.architectures.SwinIR import SwinIR as SpandrelSwinIR

    from optiqa.nets.community import detect_generator
    from optiqa.nets.generators import create_generator, load_generator_checkpoint

    device = torch.device(args.device)
    torch.manual_seed(0)
    theirs = SpandrelSwinIR(**PRESETS[args.preset])
    net, _ = detect_generator(theirs.state_dict(), "spandrel SwinIR")
    ours = create_generator(**net, attn_impl=args.attn_impl)
    load_generator_checkpoint(ours, theirs.state_dict())
    theirs, ours = theirs.to(device), ours.to(device)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        diff = float((theirs.eval()(x) - ours.eval()(x)).abs().max())
    print(f"SwinIR {args.preset} x4 ({net['embed_dim']} dim, {len(net['depths'])} RSTBs), LR "
          f"{args.batch}x3x{args.size}x{args.size} on {device}, "
          f"{'forward+backward' if args.train else 'inference'}, {torch.get_num_threads()} "
          f"thread(s), our attention {args.attn_impl}; max |ours - spandrel| = {diff:.2e}")

    def step(model):
        if args.train:
            model.train()
            model.zero_grad(set_to_none=True)
            model(x).mean().backward()
        else:
            model.eval()
            with torch.inference_mode():
                model(x)

    for model in (ours, theirs):  # warm-up (allocator, mask caches, kernels)
        step(model)
    times = {"ours": [], "spandrel": []}
    for _ in range(args.blocks):
        times["ours"].append(time_block(lambda: step(ours), device, args.calls))
        times["spandrel"].append(time_block(lambda: step(theirs), device, args.calls))
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:9s} {v * 1000:9.1f} ms/call (median of {args.blocks} blocks of "
              f"{args.calls})")
    print(f"ratio spandrel / ours: {med['spandrel'] / med['ours']:.2f}x")


if __name__ == "__main__":
    main()
