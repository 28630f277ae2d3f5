"""Does a metric that ranks well as an IQA model also rank well as a training loss?

For each fidelity metric M two qualities are measured:

- **assessment** A(M): Spearman's rho of M's scores with the human scores of an IQA dataset, the
  metric's sign flipped where its orientation differs from the targets' (positive = agrees), as
  :mod:`optiqa.assess.benchmark` does; pooled over the items, or the mean of the within-stratum
  SRCCs (known-order set: strata = (content, distortion)) as
  :func:`optiqa.stats.correlation.summarize_within`; over several datasets, the mean.
- **optimization** Q_e(M, s): the mean over test images of evaluator e's score of the model trained
  with M under adversarial setting s (discriminator and weight; "none" is one setting), negated
  when e is lower-better, so that higher = better in every table.

**Rank agreement** for evaluator e and setting s: Spearman's rho and Kendall's tau-b between
(Q_e(M, s))_M and (A(M))_M over the metrics e may judge; undefined below 3 metrics. Pooled
groups of settings (with / without a discriminator, patch vs image level, conv vs transformer
backbone, one adversarial weight over all discriminators) are defined per grid
(:mod:`optiqa.stats.groups`) and use the mean of Q over the group's settings, over the grid's
metrics.

**Circularity** (:mod:`optiqa.evaluators.circularity`): a model trained with M is never judged by
an evaluator of M's family, nor by one sharing a feature extractor with M or with the cell's
discriminator; that score is left out of every statistic here and listed in ``exclusions``.

**Tests**: every rank agreement comes with the exact permutation test of rho and tau over the k
metrics (:mod:`optiqa.stats.permutation`; descriptive only below 5 metrics); the panel's median
rho per setting with its permutation test gives the report's answer (:func:`headlines`); paired
tests are split into the planned family (``report.comparisons``) and the exploratory one, each
Holm-adjusted alone (:mod:`optiqa.stats.multiplicity`).

**Seeds**: replicates of one setting (``Cell.seed``) are averaged per test image; the bootstrap
resamples them too (:mod:`optiqa.stats.seeds`).

**Intervals**: percentile bootstrap (Efron & Tibshirani, An introduction to the bootstrap, 1993,
ch. 13). Every replicate resamples the test images with replacement (and each cell's seeds) *and*,
in the same replicate, the reference contents of each IQA dataset (cluster bootstrap,
:func:`optiqa.stats.correlation.bootstrap_resamples`), so both sides' uncertainty enters the
interval of a rank agreement; all statistics share the same replicates, which makes differences
between them paired.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from optiqa.stats import correlation
from optiqa.core.errors import InputError
from optiqa.stats.multiplicity import wilcoxon_family, wilcoxon_smallest_p
from optiqa.stats import ranking
from optiqa.stats.groups import (BACKBONE_KINDS, LEVELS, contrast_confound, contrast_pairs,
                                 setting_groups)
from optiqa.stats.ranking import MIN_METRICS, Agreement, rank_agreement

MIN_RELIABLE_IMAGES = 10


# ---------------------------------------------------------------------------------------------
# input data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One trained model: its fidelity loss and adversarial setting."""

    name: str
    fidelity: str
    discriminator: str = "none"
    level: str | None = None              # "patch" | "image" | None
    backbone_kind: str | None = None      # "conv" | "transformer" | None
    adversarial_weight: float = 0.0
    task: str = "sr_x4"
    discriminator_features: str | None = None   # its pretrained backbone (circularity rule)
    seed: int | None = None               # training seed of a replicate (train.seeds)
    unit: str | None = None               # the name every replicate of this setting shares
    extra_families: tuple = ()            # other loss terms' families (e.g. a kept pixel_opt)

    @property
    def adversarial(self) -> bool:
        return self.discriminator != "none"

    @property
    def setting(self) -> str:
        """``"none"`` or ``"<discriminator>@<weight>"``."""
        return f"{self.discriminator}@{self.adversarial_weight:g}" if self.adversarial else "none"


@dataclass(frozen=True)
class Evaluator:
    """One judge of the trained models (FR or NR metric) and its orientation and family."""

    name: str
    lower_better: bool
    family: str
    kind: str = "fr"                      # "fr" | "nr"


@dataclass
class OptimizationScores:
    """Per-image evaluator scores of every cell, in each evaluator's own orientation.

    ``scores[cell][evaluator]`` has shape ``(len(images),)``; a missing entry is reported, not
    guessed. ``metric_family`` maps each fidelity metric to its family, ``features`` metrics to
    their feature extractors, and ``rule`` is the circularity rule on those resolved values
    (:func:`optiqa.evaluators.circularity.circular_reason`, passed in: the rule lives in the
    workflow layer, these statistics below it).
    """

    cells: list[Cell]
    evaluators: list[Evaluator]
    images: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    metric_family: dict[str, str]
    # feature extractor (backbone + weights) of each fidelity metric and evaluator that has one
    features: dict[str, str | None] = field(default_factory=dict)
    rule: Callable[..., str | None] | None = None

    def family_of(self, metric: str) -> str:
        if metric not in self.metric_family:
            raise InputError(f"no family given for fidelity metric {metric!r} (needed by the "
                             "circularity rule)", option="metric_family")
        return self.metric_family[metric]

    def exclusion(self, cell: Cell, evaluator: Evaluator) -> tuple[str, str] | None:
        """``(kind, reason)`` when ``evaluator`` may not or cannot judge ``cell``, else None."""
        if self.rule is None:
            raise InputError("no circularity rule given (rule=optiqa.evaluators.circularity."
                             "circular_reason)", option="rule")
        why = self.rule(evaluator.name, evaluator.family, self.features.get(evaluator.name),
                              cell.fidelity, self.family_of(cell.fidelity),
                              self.features.get(cell.fidelity), cell.discriminator_features,
                              tuple(cell.extra_families))
        if why:
            return "circular", why
        if evaluator.name not in self.scores.get(cell.name, {}):
            return "missing", "no scores for this cell and evaluator"
        return None

    def oriented(self, cell: Cell, evaluator: Evaluator) -> np.ndarray:
        """Per-image scores, negated for a lower-better evaluator (higher = better)."""
        s = np.asarray(self.scores[cell.name][evaluator.name], dtype=np.float64)
        return -s if evaluator.lower_better else s


@dataclass
class AssessmentDataset:
    """Human scores of one IQA dataset; ``strata`` set = mean within-stratum SRCC."""

    name: str
    targets: np.ndarray
    groups: np.ndarray                    # reference content of each item
    target_lower_better: bool = False
    strata: np.ndarray | None = None


@dataclass
class AssessmentScores:
    """``predictions[metric][dataset]`` (n,) in the metric's orientation, per IQA dataset."""

    datasets: list[AssessmentDataset]
    predictions: dict[str, dict[str, np.ndarray]]
    metric_lower_better: dict[str, bool]


def _check_vector(a, n: int, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (n,):
        raise InputError(f"{what}: expected shape ({n},), got {a.shape}")
    if a.dtype.kind in "fiu" and not np.isfinite(a).all():
        raise InputError(f"{what}: NaN or inf found")
    return a


def check_inputs(opt: OptimizationScores, assess: AssessmentScores) -> None:
    """Raise :class:`InputError` naming the first inconsistency in the inputs."""
    for kind, names in (("cell", [c.name for c in opt.cells]),
                        ("evaluator", [e.name for e in opt.evaluators]), ("image", opt.images),
                        ("IQA dataset", [d.name for d in assess.datasets])):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"duplicate {kind} names: {', '.join(map(str, dup))}")
    if not opt.images:
        raise InputError("no test images")
    for e in opt.evaluators:
        if e.kind not in ("fr", "nr"):
            raise InputError(f"evaluator {e.name}: kind must be 'fr' or 'nr', got {e.kind!r}")
    seen, labels = {}, {}
    for c in opt.cells:
        if c.adversarial != (c.adversarial_weight != 0) or not math.isfinite(c.adversarial_weight) \
                or c.adversarial_weight < 0:
            raise InputError(f"cell {c.name}: adversarial_weight {c.adversarial_weight} does not "
                             f"fit discriminator {c.discriminator!r} (0 exactly without one)")
        if c.level not in (None, *LEVELS) or c.backbone_kind not in (None, *BACKBONE_KINDS):
            raise InputError(f"cell {c.name}: level must be one of {LEVELS} or None and "
                             f"backbone_kind one of {BACKBONE_KINDS} or None")
        key = (c.task, c.fidelity, c.setting, c.seed)
        if key in seen:
            raise InputError(f"cells {seen[key]} and {c.name} share task, fidelity, setting "
                             "and seed")
        seen[key] = c.name
        if labels.setdefault(c.discriminator, (c.level, c.backbone_kind)) != (c.level,
                                                                             c.backbone_kind):
            raise InputError(f"discriminator {c.discriminator!r} has different level or "
                             "backbone_kind in different cells")
        opt.family_of(c.fidelity)
    cells, evaluators = {c.name for c in opt.cells}, {e.name for e in opt.evaluators}
    for cell, per_eval in opt.scores.items():
        if cell not in cells:
            raise InputError(f"scores given for unknown cell {cell!r}")
        for ev, arr in per_eval.items():
            if ev not in evaluators:
                raise InputError(f"scores of cell {cell} for unknown evaluator {ev!r}")
            _check_vector(arr, len(opt.images), f"scores of cell {cell}, evaluator {ev}")
    for ds in assess.datasets:
        n = np.asarray(ds.targets).size
        if _check_vector(ds.targets, n, f"targets of {ds.name}").dtype.kind not in "fiu":
            raise InputError(f"targets of {ds.name}: numbers expected")
        _check_vector(ds.groups, n, f"groups of {ds.name}")
        if ds.strata is not None:
            _check_vector(ds.strata, n, f"strata of {ds.name}")
        for metric, per_ds in assess.predictions.items():
            if ds.name in per_ds:
                if metric not in assess.metric_lower_better:
                    raise InputError(f"no orientation (metric_lower_better) for {metric!r}")
                _check_vector(per_ds[ds.name], n, f"predictions of {metric} on {ds.name}")


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def agreement_dict(ag: Agreement, level: float = 0.95, optimization=None, assessment=None,
                   seed: int = 0) -> dict:
    """JSON-able form of an :class:`~optiqa.stats.ranking.Agreement` with percentile CIs and,
    given the two quality vectors, the exact permutation tests of rho and tau
    (:func:`optiqa.stats.permutation.rank_test`: p-values, attainable values, and the
    ``descriptive_only`` flag below 5 metrics)."""
    from optiqa.stats.permutation import DESCRIPTIVE_BELOW, rank_test

    out = {"n_metrics": ag.n_metrics, "spearman": _num(ag.spearman), "kendall": _num(ag.kendall),
           "spearman_ci": None, "kendall_ci": None, "reason": ag.reason, "ci_warning": None,
           "descriptive_only": ag.n_metrics < DESCRIPTIVE_BELOW,
           "spearman_test": None, "kendall_test": None}
    if ag.reason is None and optimization is not None:
        for stat in ("spearman", "kendall"):
            out[f"{stat}_test"] = rank_test(assessment, optimization, stat,
                                            seed=seed).to_json()
    if ag.reason is None and ag.spearman_reps is not None:
        out["spearman_ci"] = correlation.percentile_ci(ag.spearman_reps, level)
        out["kendall_ci"] = correlation.percentile_ci(ag.kendall_reps, level)
        if out["spearman_ci"] is None or out["kendall_ci"] is None:
            out["ci_warning"] = "more than 10% of bootstrap replicates undefined (ties)"
    return out


def _num(v):
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _ci(reps, level: float, sign: float = 1.0):
    if reps is None:
        return None
    ci = correlation.percentile_ci(sign * np.asarray(reps), level)
    return None if ci is None else sorted(ci)


def _seed(seed: int, *keys: int) -> int:
    """An independent, reproducible seed per use (images, each dataset, permutations)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
# the two sides
# ---------------------------------------------------------------------------------------------
@dataclass
class _Assessed:
    quality: dict           # metric -> float
    reps: dict              # metric -> (n_boot,) or None
    rows: list
    datasets: list
    not_assessed: dict      # metric -> reason


def _assessment(assess: AssessmentScores, metrics: list[str], n_boot: int, seed: int,
                level: float) -> _Assessed:
    """A(M) per dataset and its mean over datasets, with joint cluster-bootstrap replicates."""
    preds = assess.predictions
    not_assessed = {}
    for m in metrics:
        missing = [d.name for d in assess.datasets if d.name not in preds.get(m, {})]
        if not assess.datasets or missing:
            not_assessed[m] = ("no IQA dataset" if not assess.datasets
                               else f"no predictions on {', '.join(missing)}")
    assessed = [m for m in metrics if m not in not_assessed]
    per_ds, infos = [], []
    for i, ds in enumerate(assess.datasets):
        if not assessed:
            break
        signs = [1.0 if assess.metric_lower_better[m] == ds.target_lower_better else -1.0
                 for m in assessed]
        matrix = np.stack([s * np.asarray(preds[m][ds.name], np.float64)
                           for s, m in zip(signs, assessed)])
        point, reps, info = ranking.srcc_with_replicates(
            matrix, ds.targets, ds.groups, ds.strata, n_boot, _seed(seed, 1, i))
        _, warning, _ = correlation.bootstrap_reliability(None, info["n_contents"])
        infos.append({"name": ds.name, **info, "target_lower_better": ds.target_lower_better,
                      "ci_warning": warning if n_boot > 0 else None})
        per_ds.append((ds.name, point, reps))
    quality, reps_out, rows = {}, {}, []
    for j, m in enumerate(metrics):
        row = {"metric": m, "quality": None, "quality_ci": None, "per_dataset": {},
               "reason": not_assessed.get(m)}
        if m in assessed:
            k = assessed.index(m)
            q = float(np.mean([p[k] for _, p, _ in per_ds]))
            r = (None if any(rp is None for _, _, rp in per_ds)
                 else np.mean([rp[:, k] for _, _, rp in per_ds], axis=0))
            row["per_dataset"] = {name: {"srcc": _num(p[k]), "srcc_ci": _ci(
                None if rp is None else rp[:, k], level)} for name, p, rp in per_ds}
            if not math.isfinite(q):
                undefined = [name for name, p, _ in per_ds if not math.isfinite(p[k])]
                not_assessed[m] = row["reason"] = ("SRCC undefined (constant scores) on "
                                                   + ", ".join(undefined))
            else:
                quality[m], reps_out[m] = q, r
                row.update(quality=q, quality_ci=_ci(r, level))
        rows.append(row)
    return _Assessed(quality, reps_out, rows, infos, not_assessed)


def _optimization(opt: OptimizationScores, n_boot: int, seed: int, per_seed=None) -> dict:
    """``(cell, evaluator) -> (mean oriented score, (n_boot,) replicates or None)``.

    Each replicate draws the test images with replacement (one draw shared by every cell and
    evaluator); the replicate means are the bootstrap counts times the scores, divided by n.
    With seeds (``per_seed``, :func:`optiqa.stats.seeds.collapse`) each replicate also
    draws every cell's seeds with replacement (:func:`optiqa.stats.seeds.resample_seeds`).
    """
    judged = [(c, e) for c in opt.cells for e in opt.evaluators if opt.exclusion(c, e) is None]
    n = len(opt.images)
    if not judged:
        return {}
    scores = np.stack([opt.oriented(c, e) for c, e in judged], axis=1)      # (n, pairs)
    point = scores.mean(axis=0)
    reps = None
    if n_boot > 0 and n >= 2:
        draws = np.random.default_rng(_seed(seed, 0)).integers(0, n, size=(n_boot, n))
        counts = np.zeros((n_boot, n))
        np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
        reps = counts @ scores / n
        if per_seed:
            from optiqa.stats.seeds import resample_seeds

            resample_seeds(reps, counts, judged, per_seed,
                           np.random.default_rng(_seed(seed, 4)))
    return {(c.name, e.name): (float(point[j]), None if reps is None else reps[:, j])
            for j, (c, e) in enumerate(judged)}


def _image_means(scores: np.ndarray, n_boot: int, seed: int):
    """Means over the images (rows) of ``scores`` ``(n, k)`` and their bootstrap replicate means
    ``(n_boot, k)``: one draw of the images per replicate, shared by every column and by every
    call with the same ``seed`` and ``n`` (so the report's intervals and the analysis' are the
    same replicates)."""
    n = scores.shape[0]
    point = scores.mean(axis=0)
    if n_boot <= 0 or n < 2:
        return point, None
    draws = np.random.default_rng(_seed(seed, 0)).integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return point, counts @ scores / n


def model_means(scores: dict[str, dict[str, np.ndarray]], n_boot: int, seed: int,
                level: float = 0.95) -> list[dict]:
    """Mean per-image score of every model and evaluator (own orientation) with its percentile
    bootstrap interval over images, from the same replicates as the analysis (baselines
    included): the one source of the report's evaluator table."""
    keys = [(m, e) for m, per in scores.items() for e in per]
    if not keys:
        return []
    matrix = np.stack([np.asarray(scores[m][e], np.float64) for m, e in keys], axis=1)
    point, reps = _image_means(matrix, n_boot, seed)
    return [{"model": m, "evaluator": e, "mean": _num(point[j]),
             "mean_ci": None if reps is None else _ci(reps[:, j], level)}
            for j, (m, e) in enumerate(keys)]


# ---------------------------------------------------------------------------------------------
# groups of settings
# ---------------------------------------------------------------------------------------------
# setting_groups (per grid) and the contrasts' one-factor check: optiqa.stats.groups


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def _optimization_rows(opt, stats, level) -> list[dict]:
    rows = []
    for c in opt.cells:
        for e in opt.evaluators:
            sign = -1.0 if e.lower_better else 1.0
            point, reps = stats.get((c.name, e.name), (math.nan, None))
            excl = opt.exclusion(c, e)
            # an excluded judgment is omitted (no number) and marked, as in every table
            rows.append({"cell": c.name, "task": c.task, "fidelity": c.fidelity,
                         "setting": c.setting, "discriminator": c.discriminator,
                         "adversarial_weight": c.adversarial_weight, "evaluator": e.name,
                         "n_images": len(opt.images), "mean": _num(sign * point),
                         "mean_ci": _ci(reps, level, sign), "quality": _num(point),
                         "quality_ci": _ci(reps, level),
                         "excluded": None if excl is None else {"kind": excl[0],
                                                                "reason": excl[1]}})
    return rows


def _agreement_rows(opt, groups, stats, asm: _Assessed, level,
                    seed: int = 0) -> tuple[list, dict, list]:
    by_key = {(c.task, c.fidelity, c.setting): c for c in opt.cells}
    rows, kept, panels = [], {}, {}
    for g in groups:
        fidelities = g["fidelity"]     # the grid's metrics: a full cross product
        for e in opt.evaluators:
            left = {"circular": [], "missing_scores": [], "not_trained": [], "not_assessed": []}
            entries = []
            for f in fidelities:
                cells = [by_key.get((g["task"], f, s)) for s in g["settings"]]
                kinds = {k[0] for c in cells if c is not None
                         for k in [opt.exclusion(c, e)] if k is not None}
                if None in cells:
                    left["not_trained"].append(f)         # not in every setting of the group
                elif "circular" in kinds:
                    left["circular"].append(f)
                elif kinds:
                    left["missing_scores"].append(f)
                elif f in asm.not_assessed:
                    left["not_assessed"].append(f)
                else:
                    entries.append((f, cells))
            q = np.array([np.mean([stats[(c.name, e.name)][0] for c in cells])
                          for _, cells in entries])
            a = np.array([asm.quality[f] for f, _ in entries])
            q_reps = a_reps = None
            if entries and all(stats[(c.name, e.name)][1] is not None
                               for _, cells in entries for c in cells) \
                    and all(asm.reps[f] is not None for f, _ in entries):
                q_reps = np.stack([np.mean([stats[(c.name, e.name)][1] for c in cells], axis=0)
                                   for _, cells in entries], axis=1)
                a_reps = np.stack([asm.reps[f] for f, _ in entries], axis=1)
            ag = rank_agreement(q, a, q_reps, a_reps)
            if entries:     # the panel's median test (below) needs each evaluator's vector
                panels.setdefault((g["task"], g["grid"], g["scope"], g["group"]),
                                  {})[e.name] = {
                    f: float(q[i]) for i, (f, _) in enumerate(entries)}
            sign = -1.0 if e.lower_better else 1.0
            points = [{"metric": f, "cells": [c.name for c in cells],
                       "optimization": float(q[i]),
                       "optimization_ci": None if q_reps is None else _ci(q_reps[:, i], level),
                       "optimization_raw": float(sign * q[i]),
                       "assessment": float(a[i]),
                       "assessment_ci": None if a_reps is None else _ci(a_reps[:, i], level)}
                      for i, (f, cells) in enumerate(entries)]
            rows.append({**g, "evaluator": e.name, **agreement_dict(ag, level, q, a, seed),
                         "metrics": [f for f, _ in entries], "left_out": left, "points": points})
            kept[(g["task"], g["grid"], g["scope"], g["group"], e.name)] = \
                (ag, rows[-1]["metrics"])
    return rows, kept, _panel_rows(opt, groups, panels, asm, seed)


def _panel_rows(opt, groups, panels, asm: _Assessed, seed: int) -> list[dict]:
    """Per group: the evaluator panel's median rho and its permutation test
    (:func:`optiqa.stats.permutation.panel_test`) over every assessed metric trained in the
    group; an evaluator's excluded metrics are NaN for it."""
    from optiqa.stats.permutation import panel_test

    out = []
    for i, g in enumerate(groups):
        per_eval = panels.get((g["task"], g["grid"], g["scope"], g["group"]), {})
        metrics = sorted({f for d in per_eval.values() for f in d})
        names = [e.name for e in opt.evaluators if e.name in per_eval]
        if len(metrics) < 1 or not names:
            continue
        q = np.array([[per_eval[n].get(f, np.nan) for f in metrics] for n in names])
        a = np.array([asm.quality[f] for f in metrics])
        res = panel_test(q, a, names, seed=_seed(seed, 3, i))
        out.append({**g, "metrics": metrics, **res.to_json()})
    return out


def _contrast_rows(opt, groups, kept, level) -> list[dict]:
    rows = []
    for task, grid, scope, g1, g2 in contrast_pairs(groups):
        first, second = g1["group"], g2["group"]
        confound = contrast_confound(scope, g1, g2, [c for c in opt.cells if c.task == task])
        for e in opt.evaluators:
            (ag1, m1), (ag2, m2) = (kept[(task, grid, scope, first, e.name)],
                                    kept[(task, grid, scope, second, e.name)])
            row = {"task": task, "grid": grid, "evaluator": e.name, "scope": scope,
                   "first": first, "second": second, "n_metrics_first": ag1.n_metrics,
                   "n_metrics_second": ag2.n_metrics, "same_metrics": m1 == m2,
                   "reason": None}
            for stat in ("spearman", "kendall"):
                v1, v2 = getattr(ag1, stat), getattr(ag2, stat)
                r1, r2 = getattr(ag1, stat + "_reps"), getattr(ag2, stat + "_reps")
                row[f"{stat}_difference"] = _num(v2 - v1)
                row[f"{stat}_difference_ci"] = (None if r1 is None or r2 is None
                                                else correlation.percentile_ci(r2 - r1, level))
            if ag1.reason or ag2.reason:
                row["reason"] = f"{first}: {ag1.reason}" if ag1.reason else \
                    f"{second}: {ag2.reason}"
            elif confound:
                row["reason"] = confound
            if row["reason"]:   # no difference is reported for an undefined contrast
                for stat in ("spearman", "kendall"):
                    row[f"{stat}_difference"] = row[f"{stat}_difference_ci"] = None
            rows.append(row)
    return rows


def _sweep(opt, stats, level, agreement_rows) -> dict:
    by_key = {(c.task, c.fidelity, c.setting): c for c in opt.cells}
    curves = []
    for task in dict.fromkeys(c.task for c in opt.cells):
        cells = [c for c in opt.cells if c.task == task]
        for disc in sorted({c.discriminator for c in cells if c.adversarial}):
            for e in opt.evaluators:
                sign = -1.0 if e.lower_better else 1.0
                for f in sorted({c.fidelity for c in cells}):
                    adv = sorted((c for c in cells if c.fidelity == f and c.discriminator == disc),
                                 key=lambda c: c.adversarial_weight)
                    if not adv:
                        continue
                    base = by_key.get((task, f, "none"))
                    line = ([base] if base else []) + adv
                    got = [stats.get((c.name, e.name), (math.nan, None)) for c in line]
                    excl = [opt.exclusion(c, e) for c in line]
                    curves.append({
                        "task": task, "discriminator": disc, "evaluator": e.name, "fidelity": f,
                        "weights": [c.adversarial_weight for c in line],
                        "cells": [c.name for c in line],
                        "mean": [_num(sign * p) for p, _ in got],
                        "mean_ci": [_ci(r, level, sign) for _, r in got],
                        "quality": [_num(p) for p, _ in got],
                        "excluded": [None if x is None else x[1] for x in excl]})
    return {"curves": curves,
            "rank_agreement": [r for r in agreement_rows if r["scope"] == "weight"]}


# ---------------------------------------------------------------------------------------------
# agreement among evaluators; paired tests
# ---------------------------------------------------------------------------------------------
def evaluator_agreement(opt: OptimizationScores, stats: dict, task: str, n_perm: int,
                        seed: int) -> dict:
    """Kendall's W of the evaluators' rankings of the cells of one task (by mean score).

    W needs every evaluator to rank the same objects, so it is computed over the cells that
    every evaluator may judge (circularity and missing scores remove the others, listed in
    ``cells_left_out``); pairwise Spearman correlations use the cells both evaluators judge.
    """
    evs = opt.evaluators
    cells = [c for c in opt.cells if c.task == task]
    common = [c for c in cells if all((c.name, e.name) in stats for e in evs)]
    judged_by_all = {c.name for c in common}
    left = [{"cell": c.name, "not_judged_by": [e.name for e in evs if opt.exclusion(c, e)]}
            for c in cells if c.name not in judged_by_all]
    matrix = np.array([[stats[(c.name, e.name)][0] for c in common] for e in evs]
                      ).reshape(len(evs), len(common))
    conc = ranking.kendalls_w(matrix)
    loo = ranking.leave_one_out(matrix) if conc.reason is None else []
    pairwise = np.full((len(evs), len(evs)), None, dtype=object)
    counts = np.zeros((len(evs), len(evs)), dtype=int)
    for i, a in enumerate(evs):
        for j, b in enumerate(evs):
            both = [c for c in cells if (c.name, a.name) in stats and (c.name, b.name) in stats]
            counts[i, j] = len(both)
            if len(both) >= 2:
                pairwise[i, j] = _num(correlation.srcc([stats[(c.name, a.name)][0] for c in both],
                                                       [stats[(c.name, b.name)][0] for c in both]))
    from optiqa.stats.incomplete import incomplete_agreement

    every = np.array([[stats[(c.name, e.name)][0] if (c.name, e.name) in stats else np.nan
                       for c in cells] for e in evs]).reshape(len(evs), len(cells))
    incomplete = incomplete_agreement(every, n_perm=n_perm, seed=seed).to_json()
    return {"task": task, "n_evaluators": len(evs), "n_cells": len(common),
            "incomplete": incomplete,
            "cells": [c.name for c in common], "cells_left_out": left,
            "w": _num(conc.w), "chi2": _num(conc.chi2), "df": conc.df,
            "p_chi2": _num(conc.p_value),
            "p_permutation": _num(ranking.concordance_permutation_p(matrix, n_perm, seed)),
            "n_permutations": n_perm, "reason": conc.reason,
            "leave_one_out": [{"evaluator": e.name, "w_without": _num(r["w_without"]),
                               "spearman_with_others": _num(r["spearman_with_others"])}
                              for e, r in zip(evs, loo)],
            "pairwise": {"evaluators": [e.name for e in evs], "spearman": pairwise.tolist(),
                         "n_cells": counts.tolist()}}


def default_pairs(cells: list[Cell]) -> list[tuple[str, str]]:
    """Each adversarial cell against the cell of the same task and fidelity without one."""
    base = {(c.task, c.fidelity): c.name for c in cells if not c.adversarial}
    return [(c.name, base[(c.task, c.fidelity)]) for c in cells
            if c.adversarial and (c.task, c.fidelity) in base]


def paired_tests(opt: OptimizationScores, pairs, family: str = "exploratory") -> list[dict]:
    """Wilcoxon signed-rank test of cell A vs cell B per evaluator on the same test images.

    Differences are oriented (higher = better), so ``rank_biserial`` > 0 means A is better.
    ``p_holm``: Holm's adjustment over every test of the returned table, which is one family
    (``family``: ``planned`` for ``report.comparisons``, else ``exploratory``); every row names
    its family and :func:`test_family` describes it (size, smallest attainable p).
    """
    cells = {c.name: c for c in opt.cells}
    rows = []
    for a_name, b_name in pairs:
        for name in (a_name, b_name):
            if name not in cells:
                raise InputError(f"paired test names unknown cell {name!r}", option="pairs")
        a, b = cells[a_name], cells[b_name]
        for e in opt.evaluators:
            row = {"a": a.name, "b": b.name, "evaluator": e.name, "n_images": len(opt.images),
                   "n_nonzero": None, "t_plus": None, "t_minus": None, "p_value": None,
                   "p_holm": None, "rank_biserial": None, "median_difference": None,
                   "reason": None}
            excl = opt.exclusion(a, e) or opt.exclusion(b, e)
            if excl:
                row["reason"] = f"{excl[0]}: {excl[1]}"
                rows.append(row)
                continue
            qa, qb = opt.oriented(a, e), opt.oriented(b, e)
            test = ranking.wilcoxon_signed_rank(qa, qb)
            sign = -1.0 if e.lower_better else 1.0
            row.update(n_nonzero=test["n_nonzero"], t_plus=test["t_plus"],
                       t_minus=test["t_minus"], p_value=_num(test["p_value"]),
                       rank_biserial=_num(test["rank_biserial"]), reason=test["reason"],
                       median_difference=float(np.median(sign * (qa - qb))))
            rows.append(row)
    adjusted, fam = wilcoxon_family(family, [r["p_value"] for r in rows],
                                    [r["n_nonzero"] or 0 for r in rows])
    for row, p in zip(rows, adjusted):
        row.update(p_holm=p, family=family, family_size=fam.size,
                   smallest_p=wilcoxon_smallest_p(row["n_nonzero"] or 0))
    return rows


def test_family(rows: list[dict], family: str) -> dict:
    """The :class:`~optiqa.stats.multiplicity.TestFamily` of a table of paired tests, as JSON."""
    return wilcoxon_family(family, [r["p_value"] for r in rows],
                           [r["n_nonzero"] or 0 for r in rows])[1].to_json()


test_family.__test__ = False      # a name pytest would collect


# ---------------------------------------------------------------------------------------------
# everything
# ---------------------------------------------------------------------------------------------
def headlines(panel_rows: list[dict], n_images: int, n_seeds: int = 1,
              weight_name: str = "adversarial weight") -> list[dict]:
    """The answer, one sentence per task and setting (:func:`optiqa.stats.headline.headline`):
    without a discriminator, with one (pooled), then each adversarial setting (its weight
    called ``weight_name``)."""
    from optiqa.stats.headline import headline, setting_label
    from optiqa.stats.permutation import PanelAgreement

    def order(row):   # per task: none, pooled with, then each adversarial setting
        rank = 0 if row["group"] == "none" else 1 if row["scope"] == "adversarial" else 2
        return tasks.index(row["task"]), rank
    tasks = list(dict.fromkeys(r["task"] for r in panel_rows))
    out = []
    for row in sorted((r for r in panel_rows if r["scope"] in ("adversarial", "setting")
                       and not (r["scope"] == "adversarial" and r["group"] == "without")),
                      key=order):
        if row["scope"] == "adversarial" and len(row["settings"]) < 2:
            continue        # one adversarial setting: the same as its own row
        label = setting_label(row["scope"], row["group"], len(row["settings"]), weight_name)
        out.append({"scope": row["scope"], "group": row["group"], **headline(
            PanelAgreement.from_json(row), row["task"], label, n_seeds, n_images).to_json()})
    return out


def analyze(opt: OptimizationScores, assess: AssessmentScores, n_boot: int = 2000, seed: int = 0,
            pairs=None, level: float = 0.95, planned=(), grids: list[dict] | None = None,
            weight_name: str = "adversarial weight") -> dict:
    """The whole asymmetry analysis as JSON-able plain data (None where undefined, never NaN).

    ``pairs``: ``[(cell_a, cell_b), ...]`` for the exploratory paired tests (default: every
    adversarial cell against its counterpart without a discriminator); ``planned``: the planned
    comparisons (``report.comparisons``), Holm-adjusted as their own family. Deterministic for a
    given ``seed``. Cells that are replicates (``Cell.seed``) are averaged over their seeds
    per test image, and the bootstrap resamples the seeds too (:mod:`optiqa.stats.seeds`).
    ``grids``: the study's grids (:func:`optiqa.stats.groups.setting_groups`; default one grid
    of every cell). ``weight_name``: what an adversarial weight is, for the answer's sentences.
    """
    from optiqa.stats.seeds import collapse, spread_rows

    check_inputs(opt, assess)
    runs = opt
    opt, per_seed, n_seeds = collapse(opt)       # one cell per setting: the mean over seeds
    planned = [tuple(p) for p in planned]
    exploratory = paired_tests(opt, [p for p in (default_pairs(opt.cells) if pairs is None
                                                 else pairs) if tuple(p) not in planned])
    planned_rows = paired_tests(opt, planned, "planned")
    metrics = sorted({c.fidelity for c in opt.cells})
    asm = _assessment(assess, metrics, n_boot, seed, level)
    stats = _optimization(opt, n_boot, seed, per_seed)
    groups = setting_groups(opt.cells, grids)
    agreement, kept, panel = _agreement_rows(opt, groups, stats, asm, level, seed)
    n_images = len(opt.images)
    images_warning = (None if n_boot <= 0 or n_images >= MIN_RELIABLE_IMAGES else
                      "one test image: no bootstrap interval" if n_images < 2 else
                      f"only {n_images} test images: bootstrap intervals unreliable (fewer than "
                      f"{MIN_RELIABLE_IMAGES})")
    exclusions = [{"cell": c.name, "fidelity": c.fidelity, "evaluator": e.name, "kind": x[0],
                   "reason": x[1]}
                  for c in opt.cells for e in opt.evaluators for x in [opt.exclusion(c, e)] if x]
    return {
        "protocol": {
            "n_boot": n_boot, "seed": seed, "ci_level": level, "ci_method": "percentile bootstrap",
            "resampling": ("each replicate draws the test images with replacement" + (
                ", each cell's training seeds with replacement" if n_seeds > 1 else "")
                + " and, in the same replicate, the reference contents of every IQA dataset "
                "(cluster bootstrap); all statistics share the replicates"),
            "n_seeds": n_seeds,
            "n_images": n_images, "images_ci_warning": images_warning,
            "datasets": asm.datasets, "min_metrics": MIN_METRICS,
            "optimization_quality": ("mean over test images of the evaluator's score, negated for "
                                     "lower-better evaluators (higher = better); 'mean' columns "
                                     "keep the evaluator's own orientation"),
            "assessment_quality": ("SRCC with the human scores, metric sign flipped where its "
                                   "orientation differs from the targets' (positive = agrees); "
                                   "within-stratum mean where strata are given; mean over "
                                   "datasets"),
            "pooling": ("a pooled group of settings belongs to one grid (a full cross product of "
                        "fidelity metrics and settings) and averages a metric's optimization "
                        "quality over the group's settings, over the grid's metrics; a contrast "
                        "is reported only between groups that differ in the contrasted factor "
                        "alone"),
            "circularity": ("a cell trained with metric M is never judged by an evaluator of M's "
                            "family, nor by one that shares a feature extractor (backbone and "
                            "weights) with M or with the cell's discriminator "
                            "(optiqa.evaluators.circularity): those judgments are left out of "
                            "every statistic and marked 'excluded (circular)' in every table"),
            "evaluator_agreement": ("Kendall's W with tie correction over the cells every "
                                    "evaluator may judge, ranked by mean score; chi-square "
                                    "p-value (Friedman's approximation, rough below 7 cells) and "
                                    "a permutation p-value (n_boot permutations)"),
            "paired_tests": ("two-sided Wilcoxon signed-rank test on per-image oriented scores "
                             "(zeros dropped); effect size = matched-pairs rank-biserial "
                             "correlation (positive = a better); Holm-adjusted within its "
                             "family: the planned comparisons (report.comparisons) alone, the "
                             "exploratory table (every adversarial cell against its counterpart "
                             "without a discriminator) alone; median_difference = median over "
                             "images of a - b in the evaluator's own orientation"),
        },
        "cells": [{**c.__dict__, "setting": c.setting} for c in opt.cells],
        "evaluators": [dict(e.__dict__) for e in opt.evaluators],
        "exclusions": exclusions,
        "assessment": asm.rows,
        "optimization": _optimization_rows(opt, stats, level),
        "groups": groups,
        "rank_agreement": agreement,
        "seeds": {"n_seeds": n_seeds, "runs": [c.name for c in runs.cells],
                  "spread": spread_rows(opt, per_seed) if per_seed else []},
        "panel_agreement": panel,
        "headline": headlines(panel, n_images, n_seeds, weight_name),
        "contrasts": _contrast_rows(opt, groups, kept, level),
        "weight_sweep": _sweep(opt, stats, level, agreement),
        "evaluator_agreement": [evaluator_agreement(opt, stats, task, n_boot, _seed(seed, 2, i))
                                for i, task in enumerate(dict.fromkeys(c.task for c in opt.cells))],
        "paired_tests": exploratory,
        "planned_tests": planned_rows,
        "test_families": {"planned": test_family(planned_rows, "planned"),
                          "exploratory": test_family(exploratory, "exploratory")},
    }
