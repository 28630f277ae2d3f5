"""One study folder: where every stage writes, and how a finished artifact is recognised.

::

    <study>/
      study.yaml                  the resolved study configuration (paths inside the folder
                                  relative to it, so the folder can move)
      train_base.yaml             a copy of its base training config (train.base)
      results.db                  the SQLite index, written by the runner process only
      runs/<cell>/                one RunFolder per cell (and pretrain__<task>/), plus
      runs/<cell>/complete.json   the completion marker, written last
      evaluate/<cell>.json        per-image scores of every evaluator (written after the images)
      images/manifest.json        every image the study registers (references, inputs, outputs)
      images/{reference,input}/<set>/<image>.png, images/runs/<cell>/<set>/<image>.png
      assess/<dataset>.json       assessment summaries and per-item scores
      transfer/<name>.json        transfer and zero-shot results
      analysis.json               the asymmetry analysis
      report/                     report.html, report.md, tables/*.csv, figures/*.png
      locks/<stage>__<cell>.lock  who is working on what (see optiqa.study.locks)

A marker or result file is written atomically and only after everything it vouches for is on
disk, and it records the hash of what produced it: a stage treats a cell as finished only when
its marker exists *and* matches the current configuration, so an interrupted or outdated cell is
redone, never trusted.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from optiqa.core.atomic import atomic_write_text
from optiqa.core.runs import RunFolder

COMPLETE = "complete.json"


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable (a torn write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# run metadata that differs between two runs computing the same numbers
VOLATILE_KEYS = ("seconds", "from_store", "summary_from_store", "images_per_second")


def write_json(path: Path, obj, drop_volatile: bool = False) -> Path:
    """Write ``obj`` atomically, unless the file already holds exactly this content (so that a
    rerun that computes the same result leaves the file, and its time stamp, alone)."""
    from optiqa.core.hashing import canonical_json

    data = json.loads(canonical_json(obj))
    if drop_volatile:
        data = _drop(data)
    text = json.dumps(data, indent=1) + "\n"
    path = Path(path)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    return atomic_write_text(path, text)


def _drop(v):
    if isinstance(v, dict):
        return {k: _drop(x) for k, x in v.items() if k not in VOLATILE_KEYS}
    if isinstance(v, list):
        return [_drop(x) for x in v]
    return v


@dataclass(frozen=True)
class StudyFolder:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "study.yaml"

    @property
    def train_base(self) -> Path:
        """A copy of the study's base training config (``train.base``), so that the folder
        holds everything its study needs."""
        return self.root / "train_base.yaml"

    def portable(self, path: str | None) -> str | None:
        """``path`` as ``study.yaml`` stores it: inside the study folder relative to it (the
        folder can move), any other path absolute; ``builtin:...`` and None kept."""
        if path is None or str(path).startswith("builtin:"):
            return path
        p = Path(os.path.abspath(path))
        root = Path(os.path.abspath(self.root))
        return os.path.relpath(p, root) if root in p.parents else str(p)

    @property
    def store(self) -> Path:
        return self.root / "results.db"

    def run(self, cell: str) -> RunFolder:
        return RunFolder(self.root / "runs" / cell)

    def run_marker(self, cell: str) -> Path:
        return self.run(cell).root / COMPLETE

    def evaluation(self, cell: str) -> Path:
        return self.root / "evaluate" / f"{cell}.json"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def manifest(self) -> Path:
        return self.images / "manifest.json"

    def assessment(self, dataset: str) -> Path:
        return self.root / "assess" / f"{dataset}.json"

    def transfer(self, name: str) -> Path:
        return self.root / "transfer" / f"{name.replace('/', '__')}.json"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis.json"

    @property
    def rehearsal_record(self) -> Path:
        """A rehearsal's substitutions made while it ran (:mod:`optiqa.core.rehearsal`)."""
        return self.root / "rehearsal-substitutions.txt"

    @property
    def rehearsal_data(self) -> Path:
        """The small data a rehearsal writes (:mod:`optiqa.study.rehearsal`)."""
        return self.root / "rehearsal-data"

    @property
    def rehearsal_models(self) -> Path:
        """One stored copy per content of a rehearsal's model files, hard-linked from the runs
        (:mod:`optiqa.study.footprint`)."""
        return self.rehearsal_data / "models"

    @property
    def heldout(self) -> Path:
        """The held-out check's record (:mod:`optiqa.study.heldout`)."""
        return self.root / "heldout.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    def lock(self, stage: str, cell: str) -> Path:
        return self.root / "locks" / f"{stage}__{cell}.lock"

    # -- completion --------------------------------------------------------------------------
    def run_complete(self, cell: str, config_sha: str) -> dict | None:
        """The run's marker when the run finished under this configuration, else None."""
        marker = read_json(self.run_marker(cell))
        return marker if marker and marker.get("config_sha") == config_sha else None

    def evaluation_complete(self, cell: str, key: str) -> dict | None:
        result = read_json(self.evaluation(cell))
        return result if result and result.get("key") == key else None
