"""Test sets of a task, made once from an HR folder, saved with a manifest, never silently stale.

:func:`make_testset` degrades every ground-truth image of an HR folder (a plain folder, a set root
with ``HR/``, or ``builtin:samples``) with a task's degradation, image ``key`` drawing from a
``torch.Generator`` seeded with ``crc32(repr((seed, 'test', key)))`` -- the same rule as the
on-the-fly test data of :class:`optiqa.data.task_datasets.SRTestDataset`, so both give identical inputs. It
writes::

    <out>/manifest.json       task, scale, degradation spec and version, seed, per image: the
                              SHA-256 of the source file and of every file written, and what the
                              degradation drew (sigma, path length, Real-ESRGAN draws, ...)
    <out>/HR/<key>.png        ground truth, cropped to a multiple of the scale, 8-bit
    <out>/LQ/<key>.png        the degraded input (8-bit PNG; float32 ``.npy`` when the
                              degradation's output is not an 8-bit image, e.g. unclipped noise)
    <out>/kernels/<key>.npy   the blur kernel (PSF) of each image, for non-blind methods

Calling it again is cheap when nothing changed: the manifest's recipe (task spec, degradation
version, seed, source hashes) equals the new one and every file still has its recorded hash.
Anything else rebuilds the whole set (in a sibling folder, swapped in when complete).
:class:`TaskTestSet` opens a made set and checks it first: modified or missing files, a
degradation whose code version changed, or a source folder whose images changed are errors
that say how to rebuild.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from optiqa.core.errors import ConfigError, InputError
from optiqa.core.hashing import file_sha256

MANIFEST = "manifest.json"
FORMAT = "optiqa-testset-1"


def _source_hash(folder, i: int) -> str:
    """SHA-256 of source image ``i`` (file bytes; pixel bytes for built-in photos)."""
    path = folder.paths[i]
    if str(path).startswith("builtin:"):
        t = folder.load(i)
        return hashlib.sha256(repr(tuple(t.shape)).encode()
                              + t.contiguous().numpy().tobytes()).hexdigest()
    return file_sha256(path)


def is_testset(path) -> bool:
    return (Path(str(path)) / MANIFEST).is_file()


def _is_8bit(img: torch.Tensor) -> bool:
    scaled = img * 255.0
    return bool(((img >= 0) & (img <= 1)).all() and (scaled - scaled.round()).abs().max() < 1e-3)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _recipe(manifest: dict) -> dict:
    keep = ("format", "task", "scale", "degradation", "degradation_version", "seed")
    return {**{k: manifest.get(k) for k in keep},
            "sources": [(im["key"], im["source_sha256"]) for im in manifest.get("images", [])]}


def _files_intact(root: Path, manifest: dict) -> str | None:
    """The first problem with the files of a made set (None: all present with their hashes)."""
    for im in manifest["images"]:
        for what in ("hr", "lq", "kernel"):
            rel = im.get(what)
            if rel is None:
                continue
            path = root / rel
            if not path.is_file():
                return f"{rel} is missing"
            if file_sha256(path) != im[what + "_sha256"]:
                return f"{rel} was modified (its SHA-256 differs from the manifest)"
    return None


def read_manifest(root) -> dict:
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the test-set manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not an optiqa test-set manifest (format "
                         f"{manifest.get('format')!r})")
    return manifest


def make_testset(task, hr, out, seed: int = 0, progress: bool = True) -> dict:
    """Make (or reuse, when up to date) the test set of ``task`` from the HR images ``hr`` in
    folder ``out``; returns the manifest. ``task``: a name of :data:`optiqa.data.tasks.TASKS`
    or a :class:`~optiqa.data.tasks.TaskSpec`."""
    from tqdm import tqdm

    from optiqa import __version__
    from optiqa.data.io import write_image
    from optiqa.data.task_datasets import ImageFolder, mod_crop, resolve_sr_set, seeded_generator
    from optiqa.data.task_degradations import create_degradation, degradation_spec
    from optiqa.data.tasks import get_task

    spec = get_task(task)
    degradation = create_degradation(dict(spec.degradation), spec.scale)
    out = Path(out)
    hr_root, _ = resolve_sr_set(hr, spec.scale)
    source = ImageFolder(hr_root)
    if not len(source):
        raise ConfigError(f"{hr}: no images", option="hr")
    recipe_head = {
        "format": FORMAT, "task": spec.name, "scale": spec.scale,
        "degradation": _jsonable(degradation_spec(degradation)),
        "degradation_version": getattr(degradation, "version", None), "seed": int(seed)}
    hashes = [_source_hash(source, i) for i in range(len(source))]
    wanted = {**recipe_head, "sources": [(k, h) for k, h in zip(source.keys, hashes)]}
    if is_testset(out):
        try:
            old = read_manifest(out)
        except InputError:
            old = None
        same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
        if old is not None and same(_recipe(old), wanted) and _files_intact(out, old) is None:
            return old
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: exists and is not a test set; choose an empty or new folder",
                          option="out")

    build = out.parent / f".{out.name}.building"
    if build.exists():
        shutil.rmtree(build)
    images = []
    for i in tqdm(range(len(source)), desc=f"making {spec.name} test set", unit="img",
                  disable=not progress or len(source) < 4):
        key = source.keys[i]
        gt = mod_crop(source.load(i), spec.scale)
        g = seeded_generator(seed, "test", key)
        one = getattr(degradation, "degrade_one", None)
        if one is not None:
            lq, params = one(gt[None], g)
        else:
            lq, params = degradation(gt[None], g), {}
        lq = lq[0]
        entry = {"key": key, "source_sha256": hashes[i], "hr": f"HR/{key}.png"}
        write_image(build / entry["hr"], gt)
        if _is_8bit(lq):
            entry["lq"] = f"LQ/{key}.png"
            write_image(build / entry["lq"], lq)
        else:
            entry["lq"] = f"LQ/{key}.npy"
            (build / entry["lq"]).parent.mkdir(parents=True, exist_ok=True)
            np.save(build / entry["lq"], lq.float().numpy(), allow_pickle=False)
        params = dict(params)
        kernel = params.pop("kernel", None)
        if kernel is not None:
            entry["kernel"] = f"kernels/{key}.npy"
            (build / entry["kernel"]).parent.mkdir(parents=True, exist_ok=True)
            np.save(build / entry["kernel"], kernel.float().numpy(), allow_pickle=False)
        for what in ("hr", "lq", "kernel"):
            if what in entry:
                entry[what + "_sha256"] = file_sha256(build / entry[what])
        entry["params"] = _jsonable(params)
        images.append(entry)
    manifest = {**recipe_head, "description": _describe(degradation), "summary": spec.summary,
                "reference": spec.reference, "source": str(hr),
                "source_resolved": str(hr) if str(hr).startswith("builtin:") else
                str(Path(hr).resolve()),
                "seed_rule": "torch.Generator().manual_seed(zlib.crc32(repr((seed, 'test', key))"
                             ".encode()))", "optiqa_version": __version__, "images": images}
    (build / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    _swap_in(build, out)
    return manifest


def _describe(d) -> str:
    from optiqa.data.task_datasets import describe_degradation

    return describe_degradation(d)


def _swap_in(build: Path, out: Path) -> None:
    """Replace ``out`` by the complete folder ``build`` (the old set is removed only after)."""
    old = out.parent / f".{out.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    build.rename(out)
    if old.exists():
        shutil.rmtree(old)


def check_testset(root) -> dict:
    """The manifest of a made set after checking it (files, degradation version, source);
    :class:`InputError` naming the problem and how to rebuild otherwise."""
    from optiqa.data.task_datasets import ImageFolder
    from optiqa.data.task_degradations import DEGRADATIONS

    root = Path(root)
    manifest = read_manifest(root)
    rebuild = (f"rebuild it: optiqa.data.testsets.make_testset({manifest['task']!r}, "
               f"{manifest.get('source')!r}, {str(root)!r}, seed={manifest['seed']})")
    problem = _files_intact(root, manifest)
    if problem:
        raise InputError(f"{root}: test set is stale: {problem}; {rebuild}")
    kind = manifest["degradation"].get("type")
    if kind in DEGRADATIONS:
        current = getattr(DEGRADATIONS.get(kind), "version", None)
        if current != manifest.get("degradation_version"):
            raise InputError(f"{root}: test set is stale: made by version "
                             f"{manifest.get('degradation_version')} of degradation {kind!r}, "
                             f"the code is at version {current}; {rebuild}")
    src = manifest.get("source_resolved") or manifest.get("source")
    if src and (str(src).startswith("builtin:") or Path(src).exists()):
        from optiqa.data.task_datasets import resolve_sr_set

        folder = ImageFolder(resolve_sr_set(src, manifest["scale"])[0])
        now = [(k, _source_hash(folder, i)) for i, k in enumerate(folder.keys)]
        if now != [(im["key"], im["source_sha256"]) for im in manifest["images"]]:
            raise InputError(f"{root}: test set is stale: the images of its source {src} "
                             f"changed; {rebuild}")
    return manifest


class TaskTestSet(Dataset):
    """A made test set (checked on opening): items ``{'lq', 'gt', 'key'}`` as SRTestDataset."""

    def __init__(self, root, check: bool = True):
        self.root = Path(root)
        self.manifest = check_testset(self.root) if check else read_manifest(self.root)
        self.task = self.manifest["task"]
        self.scale = int(self.manifest["scale"])
        self.images = self.manifest["images"]
        self.keys = [im["key"] for im in self.images]
        self.lq_source = f"{self.manifest.get('description', '')}, seed {self.manifest['seed']}"

    def __len__(self) -> int:
        return len(self.images)

    def _read(self, rel: str) -> torch.Tensor:
        from optiqa.data.io import read_image

        path = self.root / rel
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        return read_image(path)

    def __getitem__(self, i: int) -> dict:
        im = self.images[i]
        return {"lq": self._read(im["lq"]), "gt": self._read(im["hr"]), "key": im["key"]}

    def kernel(self, i: int) -> torch.Tensor | None:
        rel = self.images[i].get("kernel")
        return None if rel is None else torch.from_numpy(np.load(self.root / rel))


def open_test_set(path, scale: int):
    """A made task test set (:class:`TaskTestSet`) when ``path`` holds a manifest, else the SR
    test data of :class:`optiqa.data.task_datasets.SRTestDataset` (benchmark set or HR folder)."""
    from optiqa.data.task_datasets import SRTestDataset

    if is_testset(path):
        ts = TaskTestSet(path)
        if ts.scale != scale:
            raise InputError(f"{path}: test set of task {ts.task} is x{ts.scale}, the model "
                             f"is x{scale}")
        return ts
    return SRTestDataset(path, scale=scale)


def task_test_sets(sets: dict, tasks, root, seed: int = 0, progress: bool = True) -> dict:
    """``{'<set>/<task>': folder}``: the test set of every task made (or reused) from every HR
    set of ``sets`` (``{name: HR folder or set root}``) under ``root/<task>/<set>``."""
    out = {}
    for task in tasks:
        for name, path in sets.items():
            folder = Path(root) / str(task) / name
            make_testset(task, path, folder, seed=seed, progress=progress)
            out[f"{name}/{task}"] = str(folder)
    return out
