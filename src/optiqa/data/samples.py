"""Built-in sample photographs: real images that need no download.

They come from scikit-image's data module, whose wheel ships these files (public-domain or
CC0 images; see ``skimage/data/README.txt``). Greyscale ones are expanded to RGB.

Two sets: :data:`SAMPLE_PHOTOS`, the six classic photos (``builtin:samples``: examples, the
known-order set's default), and :data:`SPLITS`, 17 images split into disjoint ``train`` and
``test`` parts (``builtin:train``, ``builtin:test``) for studies that train on some contents and
measure on others: nothing a model was trained on is ever used to evaluate it.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image

# name -> skimage.data loader name; all ship inside the scikit-image wheel (no pooch download).
IMAGES = {
    "astronaut": "astronaut", "chelsea": "chelsea", "coffee": "coffee", "rocket": "rocket",
    "motorcycle": "stereo_motorcycle", "camera": "camera", "hubble": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry", "retina": "retina", "brick": "brick",
    "grass": "grass", "gravel": "gravel", "moon": "moon", "coins": "coins", "clock": "clock",
    "cell": "cell", "page": "page",
}
SAMPLE_PHOTOS = {n: IMAGES[n] for n in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle",
                                         "camera")}
# Disjoint contents for training and for measuring (each half mixes colour photos, greyscale
# photos, textures and scientific images; the test half has 10 contents, the fewest for which a
# bootstrap over contents is trusted without a warning).
SPLITS = {
    "train": ("coffee", "motorcycle", "hubble", "brick", "grass", "moon", "clock"),
    "test": ("astronaut", "chelsea", "rocket", "immunohistochemistry", "retina", "camera",
             "gravel", "coins", "cell", "page"),
}


@lru_cache(maxsize=None)
def _load_array(name: str) -> np.ndarray:
    import skimage.data

    arr = getattr(skimage.data, IMAGES[name])()
    if isinstance(arr, tuple):  # stereo_motorcycle returns (left, right, disparity)
        arr = arr[0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def sample_names(split: str | None = None) -> list[str]:
    """The six classic photos, or the images of a split (``train`` / ``test``)."""
    if split is None:
        return list(SAMPLE_PHOTOS)
    if split not in SPLITS:
        from optiqa.core.errors import UnknownNameError

        raise UnknownNameError("sample split", split, SPLITS)
    return list(SPLITS[split])


def load_sample(name: str, size: int | None = None) -> torch.Tensor:
    """One sample photo as a float ``(3, H, W)`` tensor in [0, 1].

    With ``size``, the photo is resized (Pillow bicubic with antialiasing) so that its shorter side
    is ``size`` and centre-cropped to ``size x size``: the same content at any resolution.
    """
    if name not in IMAGES:
        from optiqa.core.errors import UnknownNameError

        raise UnknownNameError("sample photo", name, IMAGES)
    arr = _load_array(name)
    if size is not None:
        h, w = arr.shape[:2]
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        im = Image.fromarray(arr).resize((nw, nh), Image.BICUBIC)
        top, left = (nh - size) // 2, (nw - size) // 2
        arr = np.asarray(im.crop((left, top, left + size, top + size)))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0)


def load_samples(size: int | None = None, names=None) -> dict[str, torch.Tensor]:
    """All (or the named) sample photos, see :func:`load_sample`."""
    return {n: load_sample(n, size) for n in (names or sample_names())}


# The pairs `optiqa samples` writes: a few photos under distortions of different kinds, at a
# moderate level, so that metrics disagree in instructive ways.
DEMO_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
DEMO_DISTORTIONS = (("gaussian_noise", 3), ("gaussian_blur", 3), ("jpeg", 4), ("contrast", 2))


def write_sample_pairs(folder, size: int = 256, photos=DEMO_PHOTOS,
                       distortions=DEMO_DISTORTIONS):
    """Write ``folder/reference/<photo>.png`` and ``folder/distorted/<photo>_<kind>_<level>.png``.

    The distorted names follow the IQA-database convention, so ``optiqa score`` pairs them with
    their references by name prefix. Returns (reference folder, distorted folder, count).
    """
    from pathlib import Path

    from optiqa.data.distortions import distort
    from optiqa.data.io import write_image

    folder = Path(folder)
    ref_dir, dist_dir = folder / "reference", folder / "distorted"
    n = 0
    for photo in photos:
        img = load_sample(photo, size)
        write_image(ref_dir / f"{photo}.png", img)
        for kind, level in distortions:
            write_image(dist_dir / f"{photo}_{kind}_{level}.png", distort(img, kind, level))
            n += 1
    return ref_dir, dist_dir, n
