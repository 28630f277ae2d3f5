"""The assess stage: the fidelity metrics as IQA models.

It goes through the study's results store (``results.db``), a cache keyed by everything that
decides a number (:mod:`optiqa.core.store`): rerunning the stage answers from the cache, and any
change to a metric, the data or the code recomputes. The truth is ``assess/<dataset>.json``, with
the per-item scores, targets and content groups that the asymmetry analysis resamples.
"""
from __future__ import annotations

import logging
from pathlib import Path

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


def assessment_files(folder: StudyFolder) -> dict:
    """``{dataset: assess/<dataset>.json}`` as :class:`~optiqa.stats.rows.results.AssessmentFile`
    rows (an unreadable file left out; a wrong key is an error naming the file and the key)."""
    from optiqa.stats.rows.results import AssessmentFile
    from optiqa.study.folder import read_row

    base = folder.assessments
    files = {p.stem: read_row(AssessmentFile, p) for p in sorted(Path(base).glob("*.json"))} \
        if base.is_dir() else {}
    return {k: v for k, v in files.items() if v is not None}


def run_stage(ctx) -> dict:
    """The stage as the runner calls it: ``{dataset: number of items}``."""
    return {k: len(v["items"]) for k, v in run_assessment(
        ctx.plan.folder, ctx.plan.cfg, ctx.store, ctx.device, ctx.opts.progress).items()}
