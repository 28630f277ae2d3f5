"""Synthetic distortions with five monotone severity levels, deterministic given a seed.

Used for the built-in sample pairs, the known-order set and as pluggable degradations. Each
distortion maps an ``(N, 3, H, W)`` tensor in [0, 1] to a tensor of the same shape in [0, 1];
level 1 is the mildest, level 5 the strongest, and every parameter moves monotonically with the
level, so a sound metric should order the levels of one (content, distortion) group correctly.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from optiqa.ops.color import rgb_to_gray
from optiqa.ops.rounding import to_uint8
from optiqa.core.errors import UnknownNameError

LEVELS = (1, 2, 3, 4, 5)


def _generator(seed: int, *key) -> torch.Generator:
    # crc32 of the key: stable across runs and machines (Python's hash() is salted per process)
    mix = zlib.crc32(repr((seed,) + key).encode())
    return torch.Generator().manual_seed(mix)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from optiqa.ops.filters import gaussian_kernel1d, separable_filter

    radius = max(1, int(np.ceil(3 * sigma)))
    k = gaussian_kernel1d(2 * radius + 1, sigma, dtype=x.dtype)
    return separable_filter(x, k, padding="reflect" if min(x.shape[-2:]) > radius else "replicate")


def gaussian_noise(x, sigma, g):
    return x + sigma * torch.randn(x.shape, generator=g).to(x)


def impulse_noise(x, prob, g):
    u = torch.rand(x.shape[0], 1, *x.shape[2:], generator=g).to(x)
    out = torch.where(u < prob / 2, torch.zeros_like(x), x)
    return torch.where(u > 1 - prob / 2, torch.ones_like(x), out)


def gaussian_blur(x, sigma, g):
    return _gaussian_blur(x, sigma)


def jpeg(x, quality, g):
    out = []
    for img in x:
        arr = to_uint8(img).permute(1, 2, 0).cpu().numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        dec = np.asarray(Image.open(buf).convert("RGB"))
        out.append(torch.from_numpy(dec.copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out).to(x)


def contrast(x, factor, g):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + factor * (x - mean)


def desaturate(x, keep, g):
    gray = rgb_to_gray(x).expand_as(x)
    return gray + keep * (x - gray)


def quantize(x, levels, g):
    return torch.round(x * (levels - 1)) / (levels - 1)


def down_up(x, factor, g):
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h / factor)), max(1, round(w / factor))),
                          mode="bicubic", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)


def pixelate(x, block, g):
    h, w = x.shape[-2:]
    small = F.avg_pool2d(x, block, ceil_mode=True)
    return F.interpolate(small, scale_factor=block, mode="nearest")[..., :h, :w]


def brighten(x, shift, g):
    return x + shift


def chromatic_shift(x, pixels, g):
    """Red and blue planes shifted in opposite directions (lateral chromatic aberration)."""
    r = torch.roll(x[:, 0:1], shifts=(pixels, pixels), dims=(2, 3))
    b = torch.roll(x[:, 2:3], shifts=(-pixels, -pixels), dims=(2, 3))
    return torch.cat([r, x[:, 1:2], b], dim=1)


def sharpen(x, amount, g):
    """Unsharp masking overshoot: ``x + amount (x - blur(x))`` (halo artefacts)."""
    return x + amount * (x - _gaussian_blur(x, 1.5))


@dataclass(frozen=True)
class Distortion:
    name: str
    fn: Callable
    params: tuple  # one parameter per level 1..5
    description: str


DISTORTIONS: dict[str, Distortion] = {d.name: d for d in [
    Distortion("gaussian_noise", gaussian_noise, (0.01, 0.025, 0.05, 0.08, 0.12),
               "additive white Gaussian noise, sigma"),
    Distortion("impulse_noise", impulse_noise, (0.005, 0.015, 0.03, 0.06, 0.12),
               "salt-and-pepper noise, pixel probability"),
    Distortion("gaussian_blur", gaussian_blur, (0.6, 1.0, 1.6, 2.5, 4.0),
               "Gaussian blur, sigma in pixels"),
    Distortion("jpeg", jpeg, (70, 45, 25, 12, 5), "JPEG compression (Pillow), quality"),
    Distortion("contrast", contrast, (0.85, 0.7, 0.55, 0.4, 0.25),
               "contrast reduction towards the mean, factor"),
    Distortion("desaturate", desaturate, (0.8, 0.6, 0.4, 0.2, 0.0),
               "colour saturation kept, fraction"),
    Distortion("quantize", quantize, (48, 24, 12, 6, 3), "uniform quantization, levels"),
    Distortion("down_up", down_up, (1.5, 2.0, 3.0, 4.0, 6.0),
               "bicubic down- then up-sampling, factor"),
    Distortion("pixelate", pixelate, (2, 3, 4, 6, 8), "block averaging, block size"),
    Distortion("brighten", brighten, (0.04, 0.08, 0.14, 0.22, 0.32),
               "mean shift (clipped), amount"),
    Distortion("chromatic_shift", chromatic_shift, (1, 2, 3, 5, 8),
               "red/blue planes shifted apart, pixels"),
    Distortion("sharpen", sharpen, (0.5, 1.0, 2.0, 3.5, 6.0),
               "unsharp-mask overshoot, amount"),
]}


def distort(x: torch.Tensor, name: str, level: int, seed: int = 0) -> torch.Tensor:
    """Apply distortion ``name`` at ``level`` (1-5) to ``x`` (``CHW`` or ``NCHW``, [0, 1]).

    Random distortions draw from a generator seeded by ``(seed, name, level)``: the same call
    always gives the same image.
    """
    if name not in DISTORTIONS:
        raise UnknownNameError("distortion", name, DISTORTIONS)
    if level not in LEVELS:
        raise ValueError(f"distortion level must be one of {LEVELS}, got {level}")
    d = DISTORTIONS[name]
    single = x.ndim == 3
    batch = x[None] if single else x
    out = d.fn(batch.float(), d.params[level - 1], _generator(seed, name, level)).clamp(0, 1)
    return out[0] if single else out
