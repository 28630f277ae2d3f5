"""The models the evaluate stage evaluates beside the cells, and the manifest of the images it
registers (:mod:`optiqa.study.evaluation` evaluates them).

Baselines are judged by every evaluator (no loss trained them, so the circularity rule leaves
none out): the model-free baseline of each task (bicubic upsampling of the input for SR, the
degraded input itself at scale 1), the shared pre-trained generator when the study has one,
and each shared start model (``path.pretrain_network_g``) the cells begin from.
``images/manifest.json`` lists every image the study registers, which the judging app may
serve.
"""
from __future__ import annotations

from pathlib import Path

from optiqa.core.errors import ConfigError
from optiqa.core.hashing import file_sha256, stable_hash
from optiqa.core.sources import code_fingerprint
from optiqa.study import names
from optiqa.study.folder import StudyFolder, read_json, write_json


def degraded_identity(scale: int) -> str:
    """What decides the model-free baseline's outputs, in place of a checkpoint's hash (it has
    none): the bicubic upsampler at ``scale`` and the code that builds it (scale 1 passes the
    input through)."""
    from optiqa.nets.generators import BicubicUpsampler

    return stable_hash({"generator": "bicubic", "scale": scale,
                        "code": code_fingerprint(BicubicUpsampler)})


def baseline_models(folder: StudyFolder, cfg, device="cpu") -> list[tuple]:
    """``(name, task, model id, load)`` of every baseline to evaluate: per task the model-free
    baseline (:func:`optiqa.study.names.degraded_name`, id :func:`degraded_identity`) and the
    shared pre-trained generator once it is trained (id: its checkpoint's SHA-256), then each
    shared start model (id: its file's SHA-256; a start that is not on this machine is an
    error before anything is evaluated). ``load()`` builds the model on ``device``."""
    from optiqa.restore.generator import load_generator
    from optiqa.study.cells import expand_cells, shared_starts

    out = []
    for task, t in cfg.task_opts.items():
        out.append((names.degraded_name(task, t.scale), task, degraded_identity(t.scale),
                    lambda t=t: load_generator("bicubic", scale=t.scale, device=device)))
        pre = names.pretrain_name(task)
        marker = read_json(folder.run_marker(pre))
        if marker is not None:
            out.append((pre, task, marker["checkpoint_sha256"],
                        lambda pre=pre, m=marker: load_generator(
                            folder.run(pre).root / m["checkpoint"], device=device)))
    for name, path in shared_starts(cfg, expand_cells(cfg)).items():
        task = names.parse_baseline(name)[1]
        if not Path(path).is_file():
            raise ConfigError(f"{name}: the start model {path} (path.pretrain_network_g) is not "
                              "on this machine")
        out.append((name, task, file_sha256(path),
                    lambda path=path, task=task: _load_start(cfg, task, path, device)))
    return out


def _load_start(cfg, task: str, path: str, device):
    """The cells' generator architecture with the shared start weights."""
    from optiqa.study.cells import base_train_config
    from optiqa.restore.generator import load_generator

    return load_generator(path, arch=dict(base_train_config(cfg, task)["network_g"]),
                          device=device)


def write_manifest(folder: StudyFolder, cfg, labels: dict[str, str]) -> dict:
    """``images/manifest.json``: every image the study registers, by id ``<task>/<set>/<image>``
    (paths relative to the study folder); what the judging app may serve."""
    root = folder.root
    manifest = {"version": 1, "study": cfg.name, "references": {}, "inputs": {}, "runs": {}}
    for kind, key in (("reference", "references"), ("input", "inputs")):
        base = folder.test_images(kind)
        for p in sorted(base.rglob("*.png")) if base.is_dir() else []:
            manifest[key][p.relative_to(base).with_suffix("").as_posix()] = \
                p.relative_to(root).as_posix()
    for name, label in labels.items():
        base = folder.run_images(name)
        result = read_json(folder.evaluation(name))
        if result is None or not base.is_dir():
            continue
        images = {p.relative_to(base).with_suffix("").as_posix(): p.relative_to(root).as_posix()
                  for p in sorted(base.rglob("*.png"))}
        manifest["runs"][name] = {"label": label, "images": images}
    write_json(folder.manifest, manifest)
    return manifest


def baseline_names(cfg, folder: StudyFolder) -> list[tuple[str, str]]:
    """``(name, task)`` of the baselines evaluated beside the cells."""
    from optiqa.study.cells import expand_cells, shared_starts

    out = []
    for task, t in cfg.task_opts.items():
        out.append((names.degraded_name(task, t.scale), task))
        if cfg.train.pretrain is not None:
            out.append((names.pretrain_name(task), task))
    out += [(name, names.parse_baseline(name)[1])
            for name in shared_starts(cfg, expand_cells(cfg))]
    return out
