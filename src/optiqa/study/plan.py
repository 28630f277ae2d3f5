"""A study's plan: its configuration, folder, cells and jobs, in one object every stage reads.

``optiqa study CONFIG --out DIR`` saves the resolved configuration as ``DIR/study.yaml``; SLURM
jobs and worker processes rebuild the same plan from that file (:func:`load_plan`), so every
process agrees on the cells and their training configs.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from optiqa.core.atomic import atomic_write_text
from optiqa.core.config import load_config, read_yaml, save_config
from optiqa.core.errors import ConfigError
from optiqa.study.cells import Cell, expand_cells, pretrain_config
from optiqa.study.config import StudyConfig, load_study_config, map_paths
from optiqa.study.folder import StudyFolder
from optiqa.study.names import pretrain_name
from optiqa.study.training import TrainJob
from optiqa.train.paths import resolve_raw_paths


@dataclass
class StudyPlan:
    cfg: StudyConfig
    folder: StudyFolder
    cells: list[Cell] = field(default_factory=list)
    _jobs: dict | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.cells:
            self.cells = expand_cells(self.cfg)

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise ConfigError(f"no cell named {name!r} in study {self.cfg.name}")

    def pretrain_jobs(self) -> dict[str, TrainJob]:
        if self.cfg.train.pretrain is None:
            return {}
        return {pretrain_name(t): TrainJob(pretrain_name(t), pretrain_config(self.cfg, t))
                for t in self.cfg.tasks}

    def train_jobs(self) -> dict[str, TrainJob]:
        """Every run of the study by name: the pre-trainings first, then the cells. Built once
        per plan, so that each job's training config is parsed once per study run
        (:attr:`TrainJob.train_config`), not at every status check and launch."""
        if self._jobs is None:
            jobs = dict(self.pretrain_jobs())
            for c in self.cells:
                after = (pretrain_name(c.task),) if self.cfg.train.pretrain is not None else ()
                jobs[c.name] = TrainJob(c.name, c.train_config, after)
            self._jobs = jobs
        return dict(self._jobs)

    def save(self) -> None:
        """Write ``study.yaml``; a study folder holds one study (another name is refused)."""
        existing = self.folder.config
        if existing.is_file():
            old = load_config(existing, StudyConfig)
            if old.name != self.cfg.name:
                raise ConfigError(f"{self.folder.root} holds study {old.name!r}, not "
                                  f"{self.cfg.name!r}; give another output folder")
        self.folder.root.mkdir(parents=True, exist_ok=True)
        # the folder holds everything the study needs: a copy of the base training config, and
        # paths inside the folder relative to it (another machine, scratch space, a colleague)
        base = Path(self.cfg.train.base)
        if base.resolve() != self.folder.train_base.resolve():
            # its relative paths were taken from its own folder: absolute in the copy
            raw = resolve_raw_paths(read_yaml(base), base.resolve().parent)
            text = (f"# a copy of {base.name} (paths resolved), the base training config of "
                    "the study in this folder\n" +
                    yaml.safe_dump(raw, sort_keys=False, default_flow_style=None, width=100))
            if not self.folder.train_base.is_file() or self.folder.train_base.read_text() != text:
                atomic_write_text(self.folder.train_base, text)
        cfg = map_paths(copy.deepcopy(self.cfg), self.folder.portable)
        cfg.train.base = self.folder.portable(self.folder.train_base)
        cfg.source = None  # where it was started from: a path of one machine
        save_config(cfg, existing)


def load_plan(study_dir: str | Path, overrides=()) -> StudyPlan:
    """The plan saved in ``study_dir/study.yaml`` (relative paths in it are taken from the study
    folder, wherever it now lies)."""
    folder = StudyFolder(Path(study_dir))
    if not folder.config.is_file():
        raise ConfigError(f"{study_dir}: not a study folder (no study.yaml)")
    return StudyPlan(load_study_config(folder.config, overrides), folder)
