"""One training run's folder: the single place that knows its layout.

``<study>/runs/<run-name>/``::

    config.yaml                 the resolved configuration of the run
    log.txt                     the training log (appended across resumes)
    train_log.jsonl             the logged losses per iteration, one JSON line each
    gradient_ratio.json         a GAN run's adversarial/fidelity gradient ratio and lambda
    models/net_g_<iter>.pth     {'params': G, 'params_ema': EMA of G, ...}  (BasicSR keys)
    models/net_d_<iter>.pth     {'params': D}
    state/<iter>.state          optimizers, iteration, every RNG state (see optiqa.train)
    samples/<image>/<iter>.png  validation crops

Inference, discriminator transfer and zero-shot scoring all find checkpoints and networks
through :class:`RunFolder`, never through path rules of their own.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from optiqa.core.atomic import remove_stale_temp_files
from optiqa.core.config import load_config, read_yaml
from optiqa.core.errors import ConfigError, InputError

T = TypeVar("T")
NETS = ("g", "d")
RUNS = "runs"   # a study folder's sub-folder of run folders (its one spelling: in_study)
_STATE = re.compile(r"^(\d+)\.state$")
_MODEL = re.compile(r"^net_([a-z]+)_(\d+)\.pth$")


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def in_study(cls, study: str | os.PathLike, name: str) -> "RunFolder":
        """The run folder of run ``name`` in study folder ``study``: ``<study>/runs/<name>/``
        (:class:`optiqa.study.folder.StudyFolder` and ``optiqa train --study`` both come here)."""
        return cls(Path(study) / RUNS / name)

    # -- layout -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log(self) -> Path:
        return self.root / "log.txt"

    @property
    def train_log(self) -> Path:
        """``train_log.jsonl``: one JSON line per logged iteration (losses, lr, speed)."""
        return self.root / "train_log.jsonl"

    def training_curves(self) -> list[dict]:
        """The logged iterations, in order, the last record of an iteration winning.

        A line that is not JSON is skipped: a crash cuts a line short (and a resumed run
        appends to it), which no JSON object survives. A complete record without an integer
        ``iteration`` is not a crash but another writer's or another version's format: an
        :class:`~optiqa.core.errors.InputError` naming the file, the line and the key, rather
        than a curve that silently loses those records."""
        import json

        rows: dict[int, dict] = {}
        if not self.train_log.is_file():
            return []
        for n, line in enumerate(self.train_log.read_text(encoding="utf-8").splitlines(), 1):
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            where = f"{self.train_log}, line {n}"
            if not isinstance(r, dict):
                raise InputError(f"{where}: expected a JSON object per line, got "
                                 f"{type(r).__name__}")
            if "iteration" not in r:
                raise InputError(f"{where}: missing key 'iteration' (keys: "
                                 f"{', '.join(sorted(r)) or 'none'})")
            it = r["iteration"]
            if isinstance(it, bool) or not isinstance(it, int):
                raise InputError(f"{where}: 'iteration' must be an integer, got {it!r}")
            rows[it] = r
        return [rows[k] for k in sorted(rows)]

    @property
    def gradient_ratio(self) -> Path:
        """``gradient_ratio.json``: the adversarial/fidelity gradient ratio measured at the start
        of a GAN run and the adversarial weight it used (:mod:`optiqa.train.gradient_ratio`)."""
        return self.root / "gradient_ratio.json"

    def gradient_ratio_record(self) -> dict | None:
        """``gradient_ratio.json`` as a mapping, None when absent or unreadable."""
        import json

        try:
            data = json.loads(self.gradient_ratio.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def model_path(self, net: str, iteration: int) -> Path:
        return self.models / f"net_{net}_{iteration}.pth"

    def state_path(self, iteration: int) -> Path:
        return self.state / f"{iteration}.state"

    @property
    def study_root(self) -> Path | None:
        """The study folder the run belongs to (the folder holding ``runs/``), None when the run
        folder is not in a ``runs/`` folder."""
        return self.root.parent.parent if self.root.parent.name == RUNS else None

    def portable(self, path: str | None) -> str | None:
        """``path`` as the run's ``config.yaml`` stores it: a file inside the run's study folder
        relative to the run folder (``../pretrain__sr_x4/models/net_g_400.pth``), so that the
        study folder can be moved or copied and its runs still find it and hash the same; any
        other path absolute; ``builtin:...`` and None kept."""
        if path is None or str(path).startswith("builtin:"):
            return path
        p = Path(os.path.abspath(path))
        root = Path(os.path.abspath(self.study_root)) if self.study_root else None
        if root is not None and root in p.parents:
            return os.path.relpath(p, os.path.abspath(self.root))
        return str(p)

    def is_run(self) -> bool:
        """True when the folder holds a run's ``config.yaml``."""
        return self.config_path.is_file()

    def create(self) -> None:
        for d in (self.models, self.state, self.samples):
            d.mkdir(parents=True, exist_ok=True)

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temporary files left by interrupted writes (call before training resumes)."""
        return remove_stale_temp_files(self.root)

    # -- checkpoints ------------------------------------------------------------------------
    def state_iterations(self) -> list[int]:
        """Iterations with a state file, newest first (complete or not)."""
        if not self.state.is_dir():
            return []
        its = [int(m.group(1)) for p in self.state.iterdir() if (m := _STATE.match(p.name))]
        return sorted(its, reverse=True)

    def model_files(self) -> list[tuple[str, int, Path]]:
        """``(net, iteration, path)`` of every model file, in no particular order."""
        if not self.models.is_dir():
            return []
        return [(m.group(1), int(m.group(2)), p) for p in self.models.iterdir()
                if (m := _MODEL.match(p.name))]

    def checkpoints(self, net: str) -> list[tuple[int, Path]]:
        """``(iteration, path)`` of ``models/net_<net>_<iter>.pth``, newest first."""
        _check_net(net)
        return sorted(((it, p) for n, it, p in self.model_files() if n == net), reverse=True)

    def latest(self, net: str) -> tuple[int, Path] | None:
        """The newest ``(iteration, path)`` of network ``net`` ('g' or 'd'), or None."""
        found = self.checkpoints(net)
        return found[0] if found else None

    # -- configuration ----------------------------------------------------------------------
    def raw_config(self) -> dict:
        """``config.yaml`` as a mapping; :class:`ConfigError` when missing or unreadable."""
        if not self.config_path.is_file():
            raise ConfigError(f"{self.root}: not a run folder (no config.yaml)")
        return read_yaml(self.config_path)

    def config(self, schema: type[T]) -> T:
        """``config.yaml`` typed by ``schema`` (e.g. ``optiqa.train.config.TrainConfig``)."""
        return load_config(self.raw_config(), schema)

    def network_spec(self, net: str) -> dict | None:
        """``network_g`` / ``network_d`` of the run's config (``{'type': ..., **options}``).

        For the generator the run's ``scale`` is filled in unless the block names its own
        (``scale`` or BasicSR's ``upscale``). None when the run has no such network.
        """
        _check_net(net)
        cfg = self.raw_config()
        key = f"network_{net}"
        block = cfg.get(key)
        if block is None:
            if net == "g":
                raise ConfigError(f"{self.config_path}: no network_g (type and options of the "
                                  "generator)")
            return None
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ConfigError(f"{self.config_path}: {key} must be a mapping with a type")
        block = dict(block)
        if net == "g" and cfg.get("scale") is not None and not {"scale", "upscale"} & set(block):
            block["scale"] = cfg["scale"]
        return block

    @property
    def gt_size(self) -> int | None:
        """The run's training crop (``datasets.train.gt_size``), None when it does not say."""
        train = ((self.raw_config().get("datasets") or {}).get("train") or {})
        size = train.get("gt_size") if isinstance(train, dict) else None
        return size if isinstance(size, int) else None

    # -- where a checkpoint file belongs ----------------------------------------------------
    @classmethod
    def of_checkpoint(cls, path: str | os.PathLike) -> "RunFolder | None":
        """The run folder holding ``<run>/models/net_<x>_<iter>.pth``, or None."""
        path = Path(path)
        if path.parent.name == "models" and (path.parent.parent / "config.yaml").is_file():
            return cls(path.parent.parent)
        return None


def checkpoint_iteration(path: str | os.PathLike) -> int | None:
    """The iteration in a ``net_<x>_<iter>.pth`` file name, else None."""
    m = _MODEL.match(Path(path).name)
    return int(m.group(2)) if m else None


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
