"""The analyze stage: the study's results as the inputs of :mod:`optiqa.stats.asymmetry`.

Optimization side: the per-image scores of every evaluated cell (``evaluate/<cell>.json``, all
test sets of the cell's task, in a fixed image order). Assessment side: the per-item scores of
every assessed fidelity metric on every IQA dataset (``assess/<dataset>.json``; items of the
known-order set whose distortion leaves the image unchanged carry no order and are left out, as
in the assessment tables). The circularity rule is :mod:`optiqa.evaluators.circularity` (families, and
feature extractors shared with the loss or the discriminator; with
``evaluators.exclude_family: false`` each metric is its own family). The result is one typed
:class:`~optiqa.stats.rows.Analysis`, written as ``analysis.json``.
"""
from __future__ import annotations

import numpy as np

from optiqa.core.errors import ConfigError
from optiqa.study.folder import read_json, write_json
# the rule applied to a study cell lives in optiqa.study.judges (the evaluate stage uses it too)
from optiqa.study.judges import discriminator_features, excluded_evaluators, extra_terms


def family(name: str, by_family: bool = True) -> str:
    """The family the circularity rule compares (the metric itself without family grouping)."""
    from optiqa.evaluators.circularity import family as rule_family

    return rule_family(name, by_family)


def extra_families(cfg, cell) -> tuple:
    """The families of :func:`extra_terms`, as the analysis' cells carry them."""
    return tuple(family(t, cfg.evaluators.exclude_family) for t in extra_terms(cell))


def optimization_scores(plan):
    from optiqa.evaluators import feature_extractor
    from optiqa.evaluators.circularity import circular_reason
    from optiqa.metrics import list_metrics
    from optiqa.stats.asymmetry import Cell, EvaluatorSpec, OptimizationScores
    from optiqa.study.evaluation import current_evaluations

    cfg = plan.cfg
    current = current_evaluations(plan)
    by_family = cfg.evaluators.exclude_family
    infos = list_metrics()
    cells, scores, images = [], {}, None
    for c in plan.cells:
        ev = current.get(c.name)
        if ev is None:
            continue
        ids = [f"{s}/{k}" for s, st in ev["sets"].items() for k in st["images"]]
        if images is None:
            images = ids
        elif ids != images:
            raise ConfigError(f"cell {c.name} was evaluated on other test images than the others; "
                              "rerun the evaluate stage")
        cells.append(Cell(c.name, c.fidelity, c.discriminator, c.level, c.architecture,
                          c.adversarial_weight, c.task, discriminator_features(c), c.seed,
                          c.setting_name, extra_families(cfg, c)))
        scores[c.name] = {m: np.array([v for st in ev["sets"].values()
                                       for v in st["scores"][m]])
                          for m in ev["evaluators"] if m in cfg.evaluators.metrics}
    evaluators = [EvaluatorSpec(m, infos[m].lower_better, family(m, by_family),
                                getattr(infos[m], "kind", "fr")) for m in cfg.evaluators.metrics]
    metric_family = {c.fidelity: family(c.fidelity, by_family) for c in plan.cells}
    features = {m: feature_extractor(m) for m in [*metric_family, *cfg.evaluators.metrics]}
    return OptimizationScores(cells, evaluators, images or [], scores, metric_family, features,
                              rule=circular_reason)


def assessment_scores(plan):
    from optiqa.metrics import list_metrics
    from optiqa.study.assessment import assessment_files
    from optiqa.stats.asymmetry import AssessmentDataset, AssessmentScores

    infos = list_metrics()
    datasets, predictions = [], {}
    wanted = {d.name.lower() for d in plan.cfg.assessment.datasets}
    for name, a in assessment_files(plan.folder).items():
        if name not in wanted:
            continue
        keep = ~np.array(a.static or [False] * len(a.items), dtype=bool)
        strata = np.array(a.strata, dtype=object)[keep] if a.strata else None
        datasets.append(AssessmentDataset(name, np.array(a.targets, dtype=float)[keep],
                                          np.array(a.groups, dtype=object)[keep],
                                          a.target_lower_better, strata))
        for r in a.results:
            predictions.setdefault(r.metric, {})[name] = np.array(r.scores)[keep]
    lower = {m: infos[m].lower_better for m in predictions}
    return AssessmentScores(datasets, predictions, lower)


def analysis_key(plan) -> str:
    """Hash of everything that decides ``analysis.json``: the scores of the current evaluations
    and the content of the assessment files it reads, the human votes (the rows of ``judgments.db``,
    not the file's bytes, which SQLite rewrites without a change of content) and the manifest
    that names the judged runs, the settings of the study the analysis reads (no paths: a moved
    study is the same study) and the analysis code."""
    from dataclasses import astuple

    from optiqa.core.config import to_mapping
    from optiqa.core.hashing import file_sha256, stable_hash
    from optiqa.core.sources import code_fingerprint
    from optiqa.judge.store import DB_NAME, read_votes
    from optiqa.study.assessment import assessment_files
    from optiqa.study.evaluation import current_evaluations

    folder, cfg = plan.folder, plan.cfg
    wanted = {d.name.lower() for d in cfg.assessment.datasets}
    # the settings the analysis reads (paths, training settings and the launcher decide it only
    # through the result files hashed below)
    config = {k: v for k, v in to_mapping(cfg).items()
              if k in ("seed", "fidelity", "evaluators", "assessment")}
    config["comparisons"] = cfg.report.comparisons
    config["cells"] = [[c.name, c.task, c.fidelity, c.discriminator, c.adversarial_weight,
                        c.level, c.backbone, c.architecture] for c in plan.cells]
    manifest = folder.manifest
    return stable_hash({
        # what the analysis reads of each current evaluation: the scores (not its key, which
        # hashes the checkpoint file's bytes, nor its description, which names the folder)
        "evaluations": {n: stable_hash([ev["evaluators"], ev["sets"]])
                        for n, ev in current_evaluations(plan).items()},
        "assessments": {n: stable_hash(a.to_json()) for n, a in assessment_files(folder).items()
                        if n in wanted},
        "votes": stable_hash([astuple(v) for v in read_votes(folder.root / DB_NAME)]),
        "manifest": file_sha256(manifest) if manifest.is_file() else None,
        "config": config, "code": code_fingerprint(run_analysis)})


def saved_key(plan) -> str | None:
    """The key of the saved ``analysis.json`` (None when there is none, or it is unreadable)."""
    saved = read_json(plan.folder.analysis)
    return saved.get("key") if isinstance(saved, dict) else None


def current_analysis(plan):
    """``(analysis, None)`` with the :class:`~optiqa.stats.rows.Analysis` of the study's present
    results and votes: the saved ``analysis.json`` when its key (:func:`analysis_key`) is
    current, else analysed again now (seconds) and saved; ``(None, reason)`` when there is
    nothing to analyse yet."""
    from optiqa.core.errors import InputError
    from optiqa.stats.rows import Analysis

    key = analysis_key(plan)
    if saved_key(plan) == key:
        try:
            return Analysis.from_json(read_json(plan.folder.analysis)), None
        except InputError:   # a current key over a damaged file: analyse again
            pass
    try:
        return run_analysis(plan, key), None
    except ConfigError as e:
        return None, str(e)


def run_analysis(plan, key: str | None = None):
    """Write ``analysis.json`` (with its :func:`analysis_key`, computed unless given); returns the
    :class:`~optiqa.stats.rows.Analysis` with its one-line ``summary``."""
    from optiqa.stats.asymmetry import analyze
    from optiqa.stats.rows import Summary
    from optiqa.study.cells import study_grids

    key = key or analysis_key(plan)
    opt = optimization_scores(plan)
    if not opt.cells:
        raise ConfigError("no evaluated cell: run the evaluate stage first")
    assess = assessment_scores(plan)
    if not assess.datasets:
        raise ConfigError("no assessment results: run the assess stage first")
    pairs = []
    names = {c.unit or c.name for c in opt.cells}      # with seeds: the names without __s<seed>
    for a, b in plan.cfg.report.comparisons:
        if a not in names or b not in names:
            raise ConfigError(f"report.comparisons: {a} and {b} must both be evaluated cells")
        pairs.append((a, b))
    # the comparisons the report asks for are the planned family (Holm over them alone); every
    # adversarial cell against its counterpart without a discriminator is exploratory (pairs=None)
    from optiqa.study.gradient_ratios import weight_name, weight_sentence

    result = analyze(opt, assess, n_boot=plan.cfg.assessment.bootstrap, seed=plan.cfg.seed,
                     planned=pairs, grids=study_grids(plan.cfg), weight_name=weight_name(plan.cfg))
    result.protocol.assessment_quality = assessment_sentence(plan)
    result.protocol.adversarial_weight = weight_sentence(plan.cfg)
    result.protocol.weight_name = weight_name(plan.cfg)
    result.model_means = _model_means(plan, opt.images)
    result.human = human_judgments(plan, result)
    result.summary = Summary(len(opt.cells), len(opt.evaluators), len(opt.images),
                             len(assess.datasets), result.human.fit.n_votes)
    result.key = key
    write_json(plan.folder.analysis, result.to_json())
    return result


def assessment_sentence(plan) -> str:
    """What "assessment quality" is, generated from the assessed datasets' own targets (a
    known-order set has distortion levels, not human scores)."""
    from optiqa.study.assessment import assessment_files

    wanted = {d.name.lower() for d in plan.cfg.assessment.datasets}
    parts = []
    for name, a in assessment_files(plan.folder).items():
        if name in wanted:
            how = ("mean SRCC within (content, distortion) groups" if a.evaluation == "within"
                   else "SRCC over all items")
            parts.append(f"{name}: {how} with {a.target}")
    return ("Spearman correlation of each metric's scores with each dataset's target, the metric's "
            "sign flipped where its orientation differs (positive = agrees): "
            + "; ".join(parts) + (". Mean over the datasets." if len(parts) > 1 else "."))


def _model_means(plan, images: list[str]) -> list:
    """Every evaluated model's (baselines too) mean evaluator scores with intervals from the
    analysis' own image replicates (:func:`optiqa.stats.asymmetry.model_means`)."""
    from optiqa.stats.asymmetry import model_means
    from optiqa.study.evaluation import current_evaluations

    scores = {}
    for name, ev in current_evaluations(plan).items():
        ids = [f"{s}/{k}" for s, st in ev["sets"].items() for k in st["images"]]
        if ids != images:
            continue
        scores[name] = {m: np.array([v for st in ev["sets"].values() for v in st["scores"][m]])
                        for m in ev["evaluators"] if m in plan.cfg.evaluators.metrics}
    # laid out over the whole panel: a left-out (circular) judgment has no scores, and the
    # other models' numbers keep their bits (stats.asymmetry_base.model_means)
    return model_means(scores, plan.cfg.assessment.bootstrap, plan.cfg.seed,
                       evaluators=list(plan.cfg.evaluators.metrics))


def human_judgments(plan, analysis):
    """The raters' Bradley-Terry scores of the cells (:func:`optiqa.judge.fit_study`) as one more
    evaluator: their rank correlation with every evaluator's ranking of the judged cells, and
    the rank agreement of a human-based optimization quality with the assessment SRCC, per
    group of settings. The evaluators are scored on the very crops the raters judged
    (:func:`crop_quality`), not on whole images. The human side has one score per model (not
    per image), so these are point estimates without a bootstrap interval (the scores' own
    intervals come from a cluster bootstrap over raters and images). Returns the
    :class:`~optiqa.stats.rows.Human` row of ``analysis`` (an :class:`~optiqa.stats.rows.
    Analysis` without it)."""
    from optiqa.stats.correlation import krcc, srcc
    from optiqa.judge import fit_study
    from optiqa.stats.permutation import DESCRIPTIVE_BELOW, rank_test
    from optiqa.stats.ranking import MIN_METRICS
    from optiqa.stats.rows import (Human, HumanAgreement, HumanCrops, HumanFit, HumanPoint,
                                   HumanVsEvaluator)

    cfg = plan.cfg
    fitted = fit_study(plan.folder.root, n_boot=cfg.assessment.bootstrap, seed=cfg.seed)
    out = Human(fitted.has_votes, fitted.message, HumanFit.from_json(fitted.to_dict()))
    if not fitted.has_votes:
        return out
    human = {r: s for r, s in fitted.scores().items() if s is not None}
    cells = {c.name: c for c in plan.cells if c.name in human}

    def corr(xs, ys, what):
        if len(xs) < MIN_METRICS:
            return {"n": len(xs), "spearman": None, "kendall": None,
                    "reason": f"fewer than {MIN_METRICS} {what} ({len(xs)})",
                    "descriptive_only": True, "spearman_test": None, "kendall_test": None}
        rho, tau = srcc(xs, ys), krcc(xs, ys)
        ok = rho == rho
        tests = {f"{s}_test": rank_test(xs, ys, s, seed=cfg.seed) if ok else None
                 for s in ("spearman", "kendall")}
        return {"n": len(xs), "spearman": rho if ok else None, "kendall": tau if ok else None,
                "reason": None if ok else "constant scores",
                "descriptive_only": len(xs) < DESCRIPTIVE_BELOW, **tests}

    crops, quality = crop_quality(plan, cells)
    by_evaluator = []
    # per task: votes only ever compare two models of the same task, so the Bradley-Terry
    # scores of different tasks are on unrelated scales and must not be ranked together
    for task in cfg.tasks:
        for e in cfg.evaluators.metrics:
            judged = [n for n, c in cells.items() if c.task == task and (n, e) in quality]
            row = HumanVsEvaluator(
                evaluator=e, task=task, cells=judged,
                stimuli=f"the {len(crops.crops)} crops the raters saw",
                **corr([human[n] for n in judged], [quality[(n, e)] for n in judged],
                       "cells judged by both"))
            if e in crops.unscored:
                row.reason = f"cannot score the crops: {crops.unscored[e]}"
            by_evaluator.append(row)
    out.crops = HumanCrops(len(crops.crops), [[i, list(b)] for i, b in crops.crops],
                           dict(crops.unscored))
    assessed = {r.metric: r.quality for r in analysis.assessment if r.quality is not None}
    agreement = []
    for g in analysis.groups:
        if g.scope not in ("setting", "adversarial"):
            continue
        points = []
        for metric in g.fidelity:
            members = [c for c in cells.values() if c.task == g.task and c.fidelity == metric
                       and _setting(c) in g.settings]
            if len(members) == len(g.settings) and metric in assessed:
                points.append(HumanPoint(metric, assessed[metric],
                                         sum(human[c.name] for c in members) / len(members)))
        agreement.append(HumanAgreement(**vars(g), points=points, **corr(
            [p.assessment for p in points], [p.optimization for p in points],
            "fidelity metrics with every cell judged")))
    out.by_evaluator, out.rank_agreement = by_evaluator, agreement
    return out


def crop_quality(plan, cells: dict):
    """The evaluators on the crops the raters judged (:mod:`optiqa.judge.crop_scores`):
    ``(CropScores, {(cell, evaluator): oriented mean over the crops})``, circular judgments
    left out (:func:`excluded_evaluators`)."""
    from optiqa.judge.crop_scores import score_crops, voted_crops
    from optiqa.judge.manifest import load_manifest
    from optiqa.judge.store import DB_NAME, read_votes
    from optiqa.metrics import list_metrics

    root = plan.folder.root
    votes = [v for v in read_votes(root / DB_NAME) if v.repeat_of is None]
    crops = score_crops(load_manifest(root, check_files=False), voted_crops(votes),
                        list(plan.cfg.evaluators.metrics))
    infos = list_metrics()
    quality = {}
    for name, cell in cells.items():
        excluded = excluded_evaluators(plan.cfg, cell)
        for e in plan.cfg.evaluators.metrics:
            mean = crops.mean(name, e)
            if e not in excluded and mean is not None:
                quality[(name, e)] = -mean if infos[e].lower_better else mean
    return crops, quality


def _setting(cell) -> str:
    """The setting label of :class:`optiqa.stats.asymmetry.Cell` for a study cell."""
    return f"{cell.discriminator}@{cell.adversarial_weight:g}" if cell.adversarial else "none"


def run_stage(ctx) -> dict:
    """The analyze stage as the runner calls it: ``analysis.json``'s summary, analysed again
    unless the saved analysis is current (its key, :func:`analysis_key`, hashes everything it
    reads; the CPU pool analyses while its last pieces finish: :mod:`optiqa.study.pool`)."""
    from optiqa.core.errors import InputError
    from optiqa.stats.rows import Analysis

    key = analysis_key(ctx.plan)
    if saved_key(ctx.plan) == key:
        try:
            return Analysis.from_json(read_json(ctx.plan.folder.analysis)).summary.to_json()
        except InputError:  # a current key over a damaged file: analyse again
            pass
    return run_analysis(ctx.plan, key).summary.to_json()
