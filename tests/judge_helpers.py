"""A small study folder for the judging tests: images/manifest.json and PNGs made here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

RUNS = {"l1__none": "L1, no discriminator", "dists__patch": "DISTS + patch D, w=0.005",
        "lpips__unet": "LPIPS + U-Net D", "bicubic": "bicubic"}


def _photo(rng, size: int) -> np.ndarray:
    """A smooth gradient with a textured square: crops should land on the texture."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 1 - x], -1) * 200
    texture = rng.integers(0, 255, (size // 2, size // 2, 3))
    base[size // 4: size // 4 + size // 2, size // 2 - size // 4: size // 2 + size // 4] = texture
    return base.clip(0, 255).astype(np.uint8)


def _restore(ref: np.ndarray, run: str, rng) -> np.ndarray:
    im = Image.fromarray(ref)
    if run == "l1__none":
        im = im.filter(ImageFilter.GaussianBlur(1.0))
    elif run == "bicubic":
        w, h = im.size
        im = im.resize((w // 4, h // 4), Image.BICUBIC).resize((w, h), Image.BICUBIC)
    elif run == "lpips__unet":
        im = im.filter(ImageFilter.UnsharpMask(2, 150))
    else:
        noisy = np.asarray(im).astype(float) + rng.normal(0, 12, ref.shape)
        im = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
    return np.asarray(im)


def make_study(folder: Path, runs=RUNS, images=("Set5/baby", "Set5/bird"), size: int = 64,
               reference: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    manifest = {"version": 1, "study": "test", "references": {}, "inputs": {}, "runs": {}}
    for image_id in images:
        ref = _photo(rng, size)
        rel = f"images/reference/{image_id}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ref).save(folder / rel)
        if reference:
            manifest["references"][image_id] = rel
        for run, label in runs.items():
            spec = manifest["runs"].setdefault(run, {"label": label, "images": {}})
            rel = f"images/runs/{run}/{image_id}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_restore(ref, run, rng)).save(folder / rel)
            spec["images"][image_id] = rel
    (folder / "images" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder
