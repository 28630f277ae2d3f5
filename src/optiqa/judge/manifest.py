"""The study's image manifest (``STUDY_DIR/images/manifest.json``): which files may be shown.

Format (version 1; paths relative to the study folder, ``inputs`` and ``references`` optional)::

    {"version": 1, "study": "quick",
     "references": {"Set5/baby": "images/reference/Set5/baby.png"},
     "inputs":     {"Set5/baby": "images/input/Set5/baby.png"},
     "runs": {"l1__none": {"label": "L1, no discriminator",
                           "images": {"Set5/baby": "images/runs/l1__none/Set5/baby.png"}}}}

Every path must resolve (symbolic links followed) to a file inside the study folder; the judging
app serves nothing else. All restored images of one image id have the reference's size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from optiqa.core.errors import InputError
from optiqa.core.layout import image_manifest

VERSION = 1


@dataclass(frozen=True)
class Run:
    """One restoration run: its name (the manifest key), a label for people, its images."""

    name: str
    label: str
    images: dict[str, Path] = field(default_factory=dict)  # image id -> absolute path


@dataclass(frozen=True)
class StudyImages:
    """The manifest, checked: absolute paths that all lie inside ``study_dir``."""

    study_dir: Path
    study: str
    runs: dict[str, Run]
    references: dict[str, Path]
    inputs: dict[str, Path]

    def runs_with(self, image_id: str) -> list[str]:
        """Names of the runs that restored ``image_id``, in manifest order."""
        return [r.name for r in self.runs.values() if image_id in r.images]

    def comparable_images(self) -> list[str]:
        """Image ids restored by at least two runs (only those can be judged in pairs), sorted."""
        ids = {i for r in self.runs.values() for i in r.images}
        return sorted(i for i in ids if len(self.runs_with(i)) >= 2)

    def labels(self) -> dict[str, str]:
        return {name: run.label for name, run in self.runs.items()}

    def files(self) -> set[Path]:
        """Every file the manifest names (the only files the app may read)."""
        out = set(self.references.values()) | set(self.inputs.values())
        for run in self.runs.values():
            out |= set(run.images.values())
        return out


def _inside(study_dir: Path, rel, what: str) -> Path:
    """``study_dir / rel`` resolved, refusing absolute paths and anything outside the folder."""
    if not isinstance(rel, str) or not rel.strip():
        raise InputError(f"manifest: {what} has no path (got {rel!r})")
    p = Path(rel)
    if p.is_absolute() or p.drive:
        raise InputError(f"manifest: {what} path {rel!r} must be relative to the study folder")
    resolved = (study_dir / p).resolve()
    if not resolved.is_relative_to(study_dir):
        raise InputError(f"manifest: {what} path {rel!r} lies outside the study folder")
    return resolved


def _paths(study_dir: Path, table, what: str) -> dict[str, Path]:
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise InputError(f"manifest: {what} must map image ids to paths")
    out = {}
    for image_id, rel in table.items():
        if not isinstance(image_id, str) or not image_id:
            raise InputError(f"manifest: {what} has an empty or non-string image id")
        out[image_id] = _inside(study_dir, rel, f"{what} {image_id!r}")
    return out


def load_manifest(study_dir, check_files: bool = True) -> StudyImages:
    """Read and check ``STUDY_DIR/images/manifest.json``.

    With ``check_files`` every named file must exist, and every restored image must have its
    reference's size (read from the file headers only).
    """
    study_dir = Path(study_dir).resolve()
    path = image_manifest(study_dir)
    if not path.is_file():
        raise InputError(f"no image manifest at {path}", option="study_dir")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read the image manifest {path}: {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"image manifest {path}: expected a JSON object")
    if data.get("version") != VERSION:
        raise InputError(f"image manifest {path}: version {data.get('version')!r} is not "
                         f"supported (expected {VERSION})")
    raw_runs = data.get("runs")
    if not isinstance(raw_runs, dict) or not raw_runs:
        raise InputError(f"image manifest {path}: 'runs' must name at least one run")
    runs = {}
    for name, spec in raw_runs.items():
        if not isinstance(name, str) or not name or not isinstance(spec, dict):
            raise InputError(f"image manifest {path}: run {name!r} must be an object with "
                             f"'label' and 'images'")
        runs[name] = Run(name=name, label=str(spec.get("label") or name),
                         images=_paths(study_dir, spec.get("images"), f"run {name!r} image"))
    images = StudyImages(study_dir=study_dir, study=str(data.get("study") or study_dir.name),
                         runs=runs,
                         references=_paths(study_dir, data.get("references"), "reference"),
                         inputs=_paths(study_dir, data.get("inputs"), "input"))
    if check_files:
        _check_files(images)
    return images


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e}") from None


def _check_files(images: StudyImages) -> None:
    missing = sorted(str(p) for p in images.files() if not p.is_file())
    if missing:
        raise InputError(f"the image manifest names {len(missing)} missing file(s), "
                         f"e.g. {missing[0]}")
    for image_id in images.comparable_images():
        sizes = {}
        ref = images.references.get(image_id)
        if ref is not None:
            sizes["reference"] = image_size(ref)
        for name in images.runs_with(image_id):
            sizes[name] = image_size(images.runs[name].images[image_id])
        if len(set(sizes.values())) > 1:
            detail = ", ".join(f"{k} {w}x{h}" for k, (w, h) in sizes.items())
            raise InputError(f"image {image_id!r} has different sizes across runs: {detail}")
