"""The asymmetry analysis' inputs and the helpers its tables share (:mod:`optiqa.stats.asymmetry`).

The inputs are typed: :class:`Cell` (one trained model), :class:`EvaluatorSpec`,
:class:`OptimizationScores` (per-image scores of every cell by every evaluator, and the
circularity rule that decides which judgments count) and :class:`AssessmentScores`
(per-item scores of every fidelity metric on IQA datasets); :func:`check_inputs` names what is
missing or inconsistent instead of guessing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from optiqa.core.errors import InputError
from optiqa.stats import correlation, ranking
from optiqa.stats.groups import BACKBONE_KINDS, LEVELS
from optiqa.stats.ranking import Agreement
from optiqa.stats.rows import AssessmentRow, DatasetInfo, DatasetSrcc, ModelMean

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
class EvaluatorSpec:
    """What the statistics know of one evaluator of the trained models (an FR or NR metric):
    its name, orientation, family and kind. The evaluator panel itself, with the metric
    objects and the circularity rule, is :class:`optiqa.evaluators.panel.Evaluator`."""

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
    evaluators: list[EvaluatorSpec]
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

    def exclusion(self, cell: Cell, evaluator: EvaluatorSpec) -> tuple[str, str] | None:
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

    def oriented(self, cell: Cell, evaluator: EvaluatorSpec) -> np.ndarray:
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
def agreement_fields(ag: Agreement, level: float = 0.95, optimization=None, assessment=None,
                     seed: int = 0) -> dict:
    """The agreement fields of a :class:`~optiqa.stats.rows.RankAgreement` from an
    :class:`~optiqa.stats.ranking.Agreement`: percentile CIs and, given the two quality vectors,
    the exact permutation tests of rho and tau (:func:`optiqa.stats.permutation.rank_test`:
    p-values, attainable values, and the ``descriptive_only`` flag below 5 metrics); None where
    undefined, never NaN."""
    from optiqa.stats.permutation import DESCRIPTIVE_BELOW, rank_test

    out = {"n_metrics": ag.n_metrics, "spearman": _num(ag.spearman), "kendall": _num(ag.kendall),
           "spearman_ci": None, "kendall_ci": None, "reason": ag.reason, "ci_warning": None,
           "descriptive_only": ag.n_metrics < DESCRIPTIVE_BELOW,
           "spearman_test": None, "kendall_test": None}
    if ag.reason is None and optimization is not None:
        for stat in ("spearman", "kendall"):
            out[f"{stat}_test"] = rank_test(assessment, optimization, stat, seed=seed)
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
    rows: list              # AssessmentRow per metric
    datasets: list          # DatasetInfo per IQA dataset
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
        infos.append(DatasetInfo(name=ds.name, **info,
                                 target_lower_better=ds.target_lower_better,
                                 ci_warning=warning if n_boot > 0 else None))
        per_ds.append((ds.name, point, reps))
    quality, reps_out, rows = {}, {}, []
    for j, m in enumerate(metrics):
        row = AssessmentRow(m, None, None, {}, not_assessed.get(m))
        if m in assessed:
            k = assessed.index(m)
            q = float(np.mean([p[k] for _, p, _ in per_ds]))
            r = (None if any(rp is None for _, _, rp in per_ds)
                 else np.mean([rp[:, k] for _, _, rp in per_ds], axis=0))
            row.per_dataset = {name: DatasetSrcc(_num(p[k]), _ci(
                None if rp is None else rp[:, k], level)) for name, p, rp in per_ds}
            if not math.isfinite(q):
                undefined = [name for name, p, _ in per_ds if not math.isfinite(p[k])]
                not_assessed[m] = row.reason = ("SRCC undefined (constant scores) on "
                                                + ", ".join(undefined))
            else:
                quality[m], reps_out[m] = q, r
                row.quality, row.quality_ci = q, _ci(r, level)
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
                level: float = 0.95, evaluators: list[str] | None = None) -> list[ModelMean]:
    """Mean per-image score of every model and evaluator (own orientation) with its percentile
    bootstrap interval over images, from the same replicates as the analysis (baselines
    included): the one source of the report's evaluator table.

    ``evaluators``: the whole panel, in order. Each model then takes one column per evaluator
    of the panel whether it has that evaluator's scores or not (a judgment left out, e.g. a
    circular one that was never computed, is a column of zeros whose mean is not returned).
    The replicate means are one matrix product ``counts @ scores`` and the points one mean
    over the rows, and both give a column's last bits according to its place among the
    matrix's columns (BLAS and NumPy's SIMD loops block the columns); with the panel's layout
    a model's numbers do not depend on which other judgments exist."""
    layout = [(m, e) for m, per in scores.items()
              for e in (per if evaluators is None else evaluators)]
    if not layout:
        return []
    columns = [np.asarray(scores[m][e], np.float64) if e in scores[m] else None
               for m, e in layout]
    n = next((len(c) for c in columns if c is not None), 0)
    matrix = np.stack([np.zeros(n) if c is None else c for c in columns], axis=1)
    point, reps = _image_means(matrix, n_boot, seed)
    return [ModelMean(m, e, _num(point[j]),
                      None if reps is None else _ci(reps[:, j], level))
            for j, (m, e) in enumerate(layout) if columns[j] is not None]
