"""The built-in known-order set: sample photos x distortions x 5 levels, with the level as target.

Real photographs (:mod:`optiqa.data.samples`) are distorted by every kind in
:mod:`optiqa.data.distortions` at levels 1-5, deterministically (fixed seed), and cached as PNG
files under ``$OPTIQA_CACHE/synthetic/<version>`` (default ``~/.cache/optiqa``). The version
string hashes everything that determines the pixels, so a change to a distortion's parameters
makes a new cache entry instead of reusing stale images.

The target is the level, which is ordered only within one (content, distortion) group: a sound
metric must rank the five levels of a group correctly, while comparing levels across distortion
types means nothing. Statistics are therefore computed within each group and averaged. Groups
where the distortion leaves the image unchanged (desaturating the greyscale ``camera`` photo)
have no order to recover and are excluded and counted.

This is NOT human opinion data: every output that uses it carries :data:`SYNTHETIC_LABEL`.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from optiqa.core.hashing import stable_hash
from optiqa.core.sources import dependencies, source_hash
from optiqa.data.distortions import DISTORTIONS, LEVELS, distort
from optiqa.data.io import to_uint8
from optiqa.data.iqa import DatasetSpec, IQADataset, IQAItem
from optiqa.data.samples import load_sample, sample_names
from optiqa.data.tabular import read_csv_dicts

SYNTHETIC_LABEL = "synthetic known-order set, not human opinion"
DEFAULT_SIZE = 192
DEFAULT_SEED = 0
GENERATOR_VERSION = 1   # bump when the way files are generated changes
CACHE_ENV = "OPTIQA_CACHE"
MANIFEST = "synthetic.csv"
STATIC_REASON = "distortion leaves the image unchanged"

SYNTHETIC_SPEC = DatasetSpec(
    "synthetic", "built-in known-order set", MANIFEST, "fr", "dist_name", "ref_name", "level",
    True, "distortion level 1-5 (higher = stronger); " + SYNTHETIC_LABEL,
    "generated: reference/<photo>.png, distorted/<photo>_<distortion>_<level>.png")


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "optiqa"


def version_string(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, photos=None,
                   distortions=None) -> str:
    """``v<generator>-<size>px-<hash>``: the hash covers everything that decides the pixels:
    photos, distortion parameters, seed, the source of the code that renders them (this module
    and what it imports: distortions, colour, filters, image I/O) and the versions of the
    libraries that encode them (Pillow's JPEG) or ship the photos (scikit-image)."""
    import PIL
    import skimage

    photos = list(photos or sample_names())
    distortions = list(distortions or DISTORTIONS)
    desc = {"generator": GENERATOR_VERSION, "size": size, "seed": seed, "photos": photos,
            "levels": LEVELS, "distortions": [(d, DISTORTIONS[d].params) for d in distortions],
            "code": source_hash(dependencies(__name__)),
            "versions": [PIL.__version__, skimage.__version__, np.__version__]}
    return f"v{GENERATOR_VERSION}-{size}px-{stable_hash(desc, 10)}"


def _generate(folder: Path, size: int, seed: int, photos, distortions) -> None:
    # The folder is a private temporary one renamed into place at the end, so files are written
    # directly (no per-file atomic write needed).
    (folder / "reference").mkdir(parents=True)
    (folder / "distorted").mkdir()
    rows = []
    for photo in photos:
        ref_u8 = to_uint8(load_sample(photo, size))
        Image.fromarray(ref_u8).save(folder / "reference" / f"{photo}.png")
        # distortions act on the 8-bit reference that the metrics will see
        ref8 = torch.from_numpy(ref_u8).permute(2, 0, 1).float() / 255
        for kind in distortions:
            quantized = [to_uint8(distort(ref8, kind, level, seed=seed)) for level in LEVELS]
            # a group is static when no level changes the 8-bit image (nothing to order)
            static = all(np.array_equal(q, ref_u8) for q in quantized)
            for level, q in zip(LEVELS, quantized):
                name = f"{photo}_{kind}_{level}.png"
                Image.fromarray(q).save(folder / "distorted" / name)
                rows.append([f"{photo}.png", name, level, photo, kind, int(static)])
    with open(folder / MANIFEST, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ref_name", "dist_name", "level", "content", "distortion", "static"])
        w.writerows(rows)


def ensure_synthetic(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, photos=None,
                     distortions=None, cache: str | os.PathLike | None = None) -> Path:
    """The folder of the cached set, generating it first if needed.

    Generation writes into a temporary sibling folder that is renamed into place at the end, so
    an interrupted run or a concurrent one never leaves a half-written set behind.
    """
    photos = list(photos or sample_names())
    distortions = list(distortions or DISTORTIONS)
    root = Path(cache) if cache is not None else cache_root()
    folder = root / "synthetic" / version_string(size, seed, photos, distortions)
    if (folder / MANIFEST).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        # small tensors: one thread is faster and does not fight other processes for cores
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _generate(tmp, size, seed, photos, distortions)
        finally:
            torch.set_num_threads(threads)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / MANIFEST).is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_synthetic(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, photos=None,
                   distortions=None, cache: str | os.PathLike | None = None) -> IQADataset:
    """The known-order set as an :class:`IQADataset` evaluated within (content, distortion)."""
    folder = ensure_synthetic(size, seed, photos, distortions, cache)
    items, strata = [], []
    for r in read_csv_dicts(folder / MANIFEST, "manifest"):
        extra = {"content": r["content"], "distortion": r["distortion"],
                 "static": r["static"] == "1"}
        items.append(IQAItem(r["dist_name"], float(r["level"]), r["content"],
                             folder / "distorted" / r["dist_name"],
                             folder / "reference" / r["ref_name"], extra))
        strata.append(f"{r['content']}/{r['distortion']}")
    return IQADataset(SYNTHETIC_SPEC, items, meta_path=folder / MANIFEST, root=folder,
                      evaluation="within", strata=strata, label=SYNTHETIC_LABEL,
                      version=folder.name)
