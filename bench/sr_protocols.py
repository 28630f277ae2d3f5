"""The x4 bicubic row of SR tables under each protocol, and what each protocol step changes.

Not a speed measurement: it reproduces the table of docs/evaluation.md. For Set5, Set14 and
BSD100 (``../shared/data/sr``, LR files = MATLAB ``imresize`` of the HR images) the bicubic
baseline (``optiqa.nets`` ``bicubic``: MATLAB ``imresize`` x4, output rounded to 8 bits, border
4 px) is scored

- as published (EDSR/RCAN-era tables, first printed by SRCNN/VDSR);
- ``matlab`` and ``basicsr`` (:mod:`optiqa.restore.protocol`, what ``optiqa evaluate`` prints);
- ``matlab`` with one step undone: Y not rounded; the greyscale image expanded to RGB; MATLAB's
  built-in ``ssim`` (replicate padding, full-size map) instead of ``ssim_index.m``;
- SRCNN's own pipeline for the bicubic row: Y of the HR image (``rgb2ycbcr`` of uint8), down-
  and up-scaled by ``imresize`` on that Y plane in floating point, rounded to 8 bits.

    PYTHONPATH=src python bench/sr_protocols.py [--root ../shared/data/sr]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from optiqa.data.io import read_image
from optiqa.metrics.pixel import psnr
from optiqa.metrics.ssim import ssim
from optiqa.ops.color import rgb_to_y, round_to_8bit
from optiqa.ops.resize import imresize
from optiqa.ops.rounding import quantize_8bit
from optiqa.restore.protocol import is_greyscale_file, protocol_scores, y_planes

PUBLISHED = {"Set5": (28.42, 0.8104), "Set14": (26.00, 0.7027), "BSD100": (25.96, 0.6675)}
SCALE = 4


def crop(t):
    return t[..., SCALE:-SCALE, SCALE:-SCALE]


def ssim32(a, b, **options):
    """SSIM of two planes with float32 windows, as :func:`protocol_scores` computes it."""
    return ssim(a.float(), b.float(), colour="rgb", **options)


def variants(hr, lr, grey):
    """{variant: (psnr, ssim)} for one image."""
    sr = quantize_8bit(imresize(lr, size=(lr.shape[-2] * SCALE, lr.shape[-1] * SCALE)))
    x, ref = crop(sr[None]), crop(hr[None])
    out = {p: protocol_scores(x, ref, p, grey) for p in ("matlab", "basicsr")}
    yx, yr = rgb_to_y(x.double()), rgb_to_y(ref.double())
    if grey:  # undoing the rounding leaves the grey image as it is
        yx, yr = y_planes(x, ref, "matlab", grey)
    out["matlab, Y not rounded"] = {"psnr_y": psnr(yx, yr), "ssim_y": ssim32(yx, yr)}
    out["matlab, grey expanded to RGB"] = protocol_scores(x, ref, "matlab", False)
    yx, yr = y_planes(x, ref, "matlab", grey)
    out["matlab, MATLAB's ssim()"] = {"psnr_y": psnr(yx, yr),
                                      "ssim_y": ssim32(yx, yr, padding="replicate")}
    # SRCNN: Y plane of the HR image, imresize down and up on it (float), rounded at the end
    y_hr = hr[:1].double()[None] if grey else round_to_8bit(rgb_to_y(hr.double()[None]))
    h, w = y_hr.shape[-2:]
    low = imresize(y_hr, size=(h // SCALE, w // SCALE))
    y_sr = quantize_8bit(imresize(low, size=(h, w)))
    out["SRCNN's Y-only bicubic pipeline"] = {"psnr_y": psnr(crop(y_sr), crop(y_hr)),
                                              "ssim_y": ssim32(crop(y_sr), crop(y_hr))}
    return {k: (float(v["psnr_y"][0]), float(v["ssim_y"][0])) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1].parent / "shared"
                                          / "data" / "sr"))
    args = ap.parse_args()
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for name in PUBLISHED:
        folder = Path(args.root) / name
        per_image = []
        for hr_path in sorted((folder / "HR").glob("*.png")):
            hr = read_image(hr_path)
            h, w = hr.shape[-2:]
            hr = hr[..., : h - h % SCALE, : w - w % SCALE]
            lr = read_image(folder / "LR_bicubic" / f"X{SCALE}" / hr_path.name)
            per_image.append(variants(hr, lr, is_greyscale_file(hr_path)))
        table[name] = {k: (sum(v[k][0] for v in per_image) / len(per_image),
                           sum(v[k][1] for v in per_image) / len(per_image))
                       for k in per_image[0]}
    rows = ["published"] + list(next(iter(table.values())))
    print(f"bicubic x{SCALE}, PSNR-Y dB / SSIM-Y, border {SCALE} px")
    print(f"{'':34s}" + "".join(f"{n:>18s}" for n in PUBLISHED))
    for r in rows:
        cells = [PUBLISHED[n] if r == "published" else table[n][r] for n in PUBLISHED]
        fmt = "{:.2f} / {:.4f}" if r == "published" else "{:.4f} / {:.4f}"
        print(f"{r:34s}" + "".join(f"{fmt.format(*c):>18s}" for c in cells))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
