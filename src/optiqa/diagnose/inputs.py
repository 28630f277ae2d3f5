"""Reference images and the "restored" images the local diagnostics are evaluated at."""
from __future__ import annotations

import os

import torch

from optiqa.core.errors import InputError


def centre_crop(img: torch.Tensor, size: int | None) -> torch.Tensor:
    """The central ``size x size`` window of a ``(..., H, W)`` image (unchanged for ``None``)."""
    if size is None:
        return img
    h, w = img.shape[-2:]
    if size < 1 or size > min(h, w):
        raise InputError(f"crop of {size}x{size} does not fit in an image of {w}x{h}",
                         option="crop")
    top, left = (h - size) // 2, (w - size) // 2
    return img[..., top:top + size, left:left + size]


def load_reference(path: str | os.PathLike, crop: int | None = None) -> torch.Tensor:
    """An image file as ``(3, H, W)`` in [0, 1], optionally centre-cropped."""
    from optiqa.data.io import read_image

    return centre_crop(read_image(path), crop)


def bicubic_restoration(ref: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The x``scale`` bicubic baseline of SR as a stand-in restored image: MATLAB-bicubic
    downscale of ``ref`` then bicubic upscale back to its size, clipped to [0, 1]."""
    from optiqa.ops.resize import imresize

    single = ref.ndim == 3
    x = ref[None] if single else ref
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise InputError(f"the bicubic x{scale} stand-in needs sides divisible by {scale}, "
                         f"got {w}x{h}", option="restored")
    out = imresize(imresize(x, scale=1 / scale), size=(h, w)).clamp(0, 1)
    return out[0] if single else out
