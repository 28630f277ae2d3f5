"""Deterministic crop positions and crop images for pairwise judging.

Raters compare small crops shown enlarged (nearest neighbour, in the browser), because artefacts
of restoration (ringing, hallucinated texture, over-smoothing) are invisible in a downscaled whole
image. Crops are placed where the reference has the most detail, since that is where restorations
differ: flat sky looks the same in every run. The choice depends only on the reference's pixels,
the crop size and the number of crops, so every rater and every restart sees the same crops.
"""
from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height in pixels


@dataclass(frozen=True)
class Crop:
    """One judged region: image id, its index among the image's crops, and its box."""

    image_id: str
    index: int
    box: Box

    @property
    def key(self) -> str:
        """Identifies the region itself (stable if the crop options change between sessions)."""
        x, y, w, h = self.box
        return f"{self.image_id}@{x},{y},{w},{h}"


def detail_crops(gray: np.ndarray, size: int, count: int) -> list[Box]:
    """Up to ``count`` non-overlapping ``size``-pixel boxes of highest mean gradient magnitude.

    Candidates lie on a grid of stride ``size // 4`` (plus the last row and column); they are
    ranked by the mean of ``|grad I|`` inside the box (box sums from an integral image) and taken
    greedily, ties broken by position. An image smaller than ``size`` gives one box, the whole
    image (clipped per side).
    """
    if gray.ndim != 2:
        raise ValueError("detail_crops expects a 2-D grey image")
    height, width = gray.shape
    cw, ch = min(size, width), min(size, height)
    gy, gx = np.gradient(gray.astype(np.float64))
    energy = np.hypot(gx, gy)
    integral = np.zeros((height + 1, width + 1))
    integral[1:, 1:] = energy.cumsum(0).cumsum(1)
    stride = max(1, size // 4)

    def starts(extent: int, length: int) -> list[int]:
        s = list(range(0, extent - length + 1, stride))
        return s if s[-1] == extent - length else s + [extent - length]

    candidates = []
    for y in starts(height, ch):
        for x in starts(width, cw):
            total = (integral[y + ch, x + cw] - integral[y, x + cw]
                     - integral[y + ch, x] + integral[y, x])
            candidates.append((-round(total, 9), y, x))
    candidates.sort()
    chosen: list[Box] = []
    for _, y, x in candidates:
        if all(x + cw <= bx or bx + bw <= x or y + ch <= by or by + bh <= y
               for bx, by, bw, bh in chosen):
            chosen.append((x, y, cw, ch))
            if len(chosen) == count:
                break
    return chosen


def read_rgb(path: Path) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def crops_for_image(image_id: str, source: Path, size: int, count: int) -> list[Crop]:
    """The crops of one image, placed on the detail of ``source`` (its reference if any)."""
    rgb = read_rgb(source).astype(np.float64)
    gray = rgb @ np.array([0.299, 0.587, 0.114])  # BT.601 luma: detail as people see it
    return [Crop(image_id, i, box) for i, box in enumerate(detail_crops(gray, size, count))]


class CropCache:
    """PNG bytes of crops, least recently used first out; decoded files are kept too.

    Thread-safe: the server answers image requests from several threads.
    """

    def __init__(self, max_crops: int = 512, max_images: int = 16):
        self._crops: OrderedDict = OrderedDict()
        self._images: OrderedDict = OrderedDict()
        self._max_crops, self._max_images = max_crops, max_images
        self._lock = Lock()

    def _image(self, path: Path) -> np.ndarray:
        if path in self._images:
            self._images.move_to_end(path)
            return self._images[path]
        rgb = read_rgb(path)
        self._images[path] = rgb
        if len(self._images) > self._max_images:
            self._images.popitem(last=False)
        return rgb

    def png(self, path: Path, box: Box) -> bytes:
        from PIL import Image

        key = (path, tuple(box))
        with self._lock:
            if key in self._crops:
                self._crops.move_to_end(key)
                return self._crops[key]
            x, y, w, h = box
            pixels = self._image(path)[y:y + h, x:x + w]
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
            data = buf.getvalue()
            self._crops[key] = data
            if len(self._crops) > self._max_crops:
                self._crops.popitem(last=False)
            return data
