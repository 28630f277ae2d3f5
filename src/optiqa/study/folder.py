"""One study folder: where every stage writes, and how a finished artifact is recognised.

::

    <study>/
      study.yaml                  the resolved study configuration (paths inside the folder
                                  relative to it, so the folder can move)
      train_base.yaml             a copy of its base training config (train.base)
      heldout.json                the held-out check's record
      results.db                  the SQLite cache (metric scores, transfer results), written by
                                  the runner process only; the files below are the truth
      runs/<run>/                 one RunFolder per cell and pre-training (optiqa.core.runs)
      runs/<run>/complete.json    the completion marker, written last
      configs/<run>.yaml          a run's launch config under torchrun (paths absolute)
      slurm/<job id>/, slurm/<run>.json   submitit's files and the job a run was submitted as
      evaluate/<run>.json         per-image scores of every evaluator (written after the images)
      images/manifest.json        every image the study registers (references, inputs, outputs)
      judgments.db                the raters' votes (the judging app, optiqa.judge.store)
      images/{reference,input}/<task>/<set>/<image>.png
      images/runs/<run>/<task>/<set>/<image>.png
      assess/<dataset>.json       assessment summaries and per-item scores
      transfer/<name>.json        transfer and zero-shot results
      diagnose/recovery/          the recovery test (key.json last)
      analysis.json               the asymmetry analysis
      report/                     report.html, report.md, tables/*.csv, figures/*.png
      locks/<stage>__<run>.lock   who is working on what (see optiqa.study.locks)
      logs/study-<time>.json      each runner invocation's summary
      logs/worker-<stage>-<pid>-<n>.txt  the output of a CPU worker that failed
      logs/pool-<pid>.jsonl       the CPU pool's pieces one process ran (CPU and wall seconds)
      cache/reference_features/   ground-truth features the CPU pool's cells share while they
                                  train (optiqa.metrics.feature_store; removed after the pool)

Run names (``<run>``, ``<name>``) come from :mod:`optiqa.study.names`; every path above from a
method of :class:`StudyFolder` (no other module joins a path inside a study folder).

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

from optiqa.core import layout
from optiqa.core.atomic import atomic_write_text
from optiqa.core.runs import RunFolder
from optiqa.study import names

COMPLETE = "complete.json"


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable (a torn write)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_row(row_type, path: Path):
    """A result file read into its typed row (:class:`~optiqa.stats.rows.base.Row`), None when
    it is missing or unreadable (a torn write); a missing, misspelt or unknown key is an
    :class:`~optiqa.core.errors.InputError` naming the file, the row and the key."""
    from optiqa.core.errors import InputError

    data = read_json(path)
    if data is None:
        return None
    try:
        return row_type.from_json(data)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None


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
        return RunFolder.in_study(self.root, cell)

    def launch_config(self, run: str) -> Path:
        """A run's training config as ``torchrun`` is given it (paths absolute)."""
        return self.root / "configs" / f"{run}.yaml"

    @property
    def slurm(self) -> Path:
        """submitit's folder (one sub-folder per job id)."""
        return self.root / "slurm"

    def slurm_record(self, run: str) -> Path:
        """The SLURM job a run was submitted as."""
        return self.slurm / f"{run}.json"

    def study_log(self, stamp: int) -> Path:
        """The summary of one runner invocation started at ``stamp`` (Unix seconds)."""
        return self.root / "logs" / f"study-{stamp}.json"

    def worker_log(self, stage: str, runner: int, n: int) -> Path:
        """The output of CPU worker ``n`` of ``stage`` started by the runner process ``runner``
        (kept when the worker fails)."""
        return self.root / "logs" / f"worker-{stage.replace(',', '+')}-{runner}-{n}.txt"

    def pool_log(self, pid: int) -> Path:
        """One line per piece of the CPU pool that process ``pid`` ran (optiqa.study.pool)."""
        return self.root / "logs" / f"pool-{pid}.jsonl"

    @property
    def reference_features(self) -> Path:
        """The cells' shared ground-truth features (:mod:`optiqa.metrics.feature_store`)."""
        return self.root / "cache" / "reference_features"

    def run_marker(self, cell: str) -> Path:
        return self.run(cell).root / COMPLETE

    def evaluation(self, cell: str) -> Path:
        return self.root / "evaluate" / f"{cell}.json"

    @property
    def images(self) -> Path:
        return layout.images_dir(self.root)

    @property
    def manifest(self) -> Path:
        """``images/manifest.json``: every image the study registers (what the judging app
        serves; spelled in :mod:`optiqa.core.layout`, which the app reads too)."""
        return layout.image_manifest(self.root)

    @property
    def judgments(self) -> Path:
        """``judgments.db``: the raters' votes, written by the judging app."""
        return layout.judgments_db(self.root)

    def test_images(self, kind: str) -> Path:
        """Every ground truth (``kind='reference'``) or input (``'input'``) image, below it as
        ``<task>/<set>/<key>.png``."""
        if kind not in ("reference", "input"):
            raise ValueError(f"kind must be 'reference' or 'input', not {kind!r}")
        return self.images / kind

    def test_set(self, kind: str, task: str, test_set: str) -> Path:
        """One test set's ground truth or inputs, as ``<key>.png`` files."""
        return self.test_images(kind) / task / test_set

    def test_image(self, kind: str, task: str, test_set: str, key: str) -> Path:
        return self.test_set(kind, task, test_set) / f"{key}.png"

    def run_images(self, run: str, task: str | None = None) -> Path:
        """The restored test images of one run (of one task, when given):
        ``<task>/<set>/<key>.png`` below it, as :func:`optiqa.restore.scoring.restore_and_score`
        writes them."""
        base = self.images / "runs" / run
        return base / task if task is not None else base

    def run_image(self, run: str, task: str, test_set: str, key: str) -> Path:
        return self.run_images(run, task) / test_set / f"{key}.png"

    def assessment(self, dataset: str) -> Path:
        return self.assessments / f"{dataset}.json"

    @property
    def assessments(self) -> Path:
        return self.root / "assess"

    def transfer(self, name: str) -> Path:
        return self.root / "transfer" / f"{name.replace('/', '__')}.json"

    @property
    def recovery(self) -> Path:
        """The recovery test's folder (:mod:`optiqa.study.diagnostics`)."""
        return self.root / "diagnose" / "recovery"

    @property
    def recovery_record(self) -> Path:
        """The recovery stage's completion record, written last."""
        return self.recovery / "key.json"

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
        return self.root / "locks" / names.lock_name(stage, cell)

    # -- completion --------------------------------------------------------------------------
    def run_complete(self, cell: str, config_sha: str) -> dict | None:
        """The run's marker when the run finished under this configuration, else None."""
        marker = read_json(self.run_marker(cell))
        return marker if marker and marker.get("config_sha") == config_sha else None

    def evaluation_complete(self, cell: str, key: str) -> dict | None:
        result = read_json(self.evaluation(cell))
        return result if result and result.get("key") == key else None
