"""The assess and transfer stages: the fidelity metrics as IQA models, and the discriminators'
backbones reused for IQA.

Both go through the study's results store (``results.db``), whose caches are keyed by everything
that decides a number (:mod:`optiqa.core.store`): rerunning a stage answers from the store, and
any change to a metric, the data or the code recomputes. The assess stage also writes
``assess/<dataset>.json`` with the per-item scores, targets and content groups that the asymmetry
analysis resamples; the transfer stage writes ``transfer/<name>.json`` per experiment.
"""
from __future__ import annotations

import logging
from pathlib import Path

from optiqa.study import names
from optiqa.study.folder import StudyFolder, write_json

log = logging.getLogger("optiqa.study")


def load_iqa_dataset(opts):
    """An :class:`~optiqa.study.config.IQADataOpts` as a loaded dataset (synthetic photos may
    name a split of the built-in images, e.g. ``test``)."""
    from optiqa.data.datasets import load_dataset
    from optiqa.data.samples import SPLITS, sample_names

    if opts.name.lower() == "synthetic":
        photos = opts.photos
        if isinstance(photos, str):
            photos = sample_names(photos) if photos in SPLITS else [photos]
        kwargs = {"photos": photos, "distortions": opts.distortions}
        if opts.size:
            kwargs["size"] = opts.size
        return load_dataset("synthetic", **kwargs)
    return load_dataset(opts.name, root=opts.root, meta=opts.meta)


def dataset_label(opts) -> str:
    return opts.name.lower()


def run_assessment(folder: StudyFolder, cfg, store, device="cpu", progress=False) -> dict:
    """Assess the study's metrics on every dataset; returns ``{dataset: result file content}``."""
    from optiqa.assess.benchmark import assess

    out = {}
    for opts in cfg.assessment.datasets:
        ds = load_iqa_dataset(opts)
        results = assess(cfg.assessed_metrics, ds, device=device,
                         batch_size=cfg.assessment.batch_size, workers=cfg.assessment.workers,
                         store=store, n_boot=cfg.assessment.bootstrap, seed=cfg.seed,
                         progress=progress, keep_scores=True)
        content = {
            "dataset": ds.name, "title": ds.spec.title, "label": ds.label,
            "target": ds.spec.score_meaning, "target_lower_better": ds.spec.lower_better,
            "evaluation": ds.evaluation, "identity": ds.identity,
            "items": [it.key for it in ds.items], "targets": [it.score for it in ds.items],
            "groups": [it.group for it in ds.items], "strata": ds.strata,
            "static": [bool(it.extra.get("static")) for it in ds.items],
            "contents": sorted({it.group for it in ds.items}),
            "results": results,
        }
        write_json(folder.assessment(dataset_label(opts)), content, drop_volatile=True)
        out[dataset_label(opts)] = content
    return out


def transfer_experiments(cfg, folder: StudyFolder, cells) -> list[tuple[str, str, str]]:
    """``(name, backbone, init)`` of every transfer experiment; ``gan`` expands to one per cell
    whose trained discriminator sits on that backbone."""
    t = cfg.transfer
    out = []
    for bb in t.backbones:
        for init in t.inits:
            if init != "gan":
                out.append((names.transfer_name(t.kind, bb, init), bb, init))
                continue
            for c in cells:
                if c.backbone == bb and folder.run(c.name).latest("d") is not None:
                    out.append((names.transfer_name(t.kind, bb, init, c.name), bb,
                                f"gan:{folder.run(c.name).root}"))
    return out


def run_transfer_stage(folder: StudyFolder, cfg, cells, store, device="cpu",
                       progress=False) -> dict:
    """IQA models on each backbone per initialisation, and zero-shot scores of every trained
    discriminator; ``{name: result}``. Cached in the store (a rerun recomputes nothing)."""
    from optiqa.transfer.experiment import TransferOptions, run_transfer
    from optiqa.transfer.fitting import TrainSettings
    from optiqa.transfer.zeroshot import run_zero_shot

    t = cfg.transfer
    if t is None:
        return {}
    ds = load_iqa_dataset(t.dataset)
    results = {}
    for name, bb, init in transfer_experiments(cfg, folder, cells):
        opts = TransferOptions(backbone=bb, init=init, kind=t.kind, mode=t.mode,
                               repeats=t.repeats, seed=cfg.seed,
                               train=TrainSettings(epochs=t.epochs, device=device))
        r = run_transfer(opts, ds, store=store, progress=progress)
        r["study_name"] = name
        write_json(folder.transfer(name), r, drop_volatile=True)
        results[name] = r
    for name in zero_shot_names(cfg, folder, cells):
        c = next(c for c in cells if c.name == names.parse_zeroshot(name))
        r = run_zero_shot(folder.run(c.name).root, ds, device=device, seed=cfg.seed,
                          store=store, n_boot=cfg.assessment.bootstrap, progress=progress)
        r["study_name"] = name
        write_json(folder.transfer(name), r, drop_volatile=True)
        results[name] = r
    return results


def zero_shot_names(cfg, folder: StudyFolder, cells) -> list[str]:
    """``zeroshot__<cell>`` for every trained cell with a discriminator (when asked for)."""
    if cfg.transfer is None or not cfg.transfer.zero_shot:
        return []
    return [names.zeroshot_name(c.name) for c in cells
            if c.adversarial and folder.run(c.name).latest("d") is not None]


def assessment_files(folder: StudyFolder) -> dict:
    from optiqa.study.folder import read_json

    base = folder.assessments
    return {p.stem: read_json(p) for p in sorted(Path(base).glob("*.json"))} \
        if base.is_dir() else {}
