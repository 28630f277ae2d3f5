"""Rows of the analysis' per-model tables: the cells and evaluators it read, the judgments left
out, the per-cell means, the assessment side, the paired tests (:mod:`optiqa.stats.asymmetry`)."""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.stats.rows.base import Row


@dataclass
class CellRow(Row):
    """One trained model as the analysis read it (:class:`optiqa.stats.asymmetry.Cell`, with its
    ``setting``: ``none`` or ``<discriminator>@<weight>``)."""

    name: str
    fidelity: str
    discriminator: str
    level: str | None
    backbone_kind: str | None
    adversarial_weight: float
    task: str
    discriminator_features: str | None
    seed: int | None
    unit: str | None
    extra_families: list[str]
    setting: str

    @classmethod
    def of(cls, cell) -> "CellRow":
        return cls(cell.name, cell.fidelity, cell.discriminator, cell.level, cell.backbone_kind,
                   cell.adversarial_weight, cell.task, cell.discriminator_features, cell.seed,
                   cell.unit, list(cell.extra_families), cell.setting)


@dataclass
class EvaluatorRow(Row):
    """One judge of the trained models: orientation, family (circularity rule), FR or NR."""

    name: str
    lower_better: bool
    family: str
    kind: str


@dataclass
class ModelMean(Row):
    """A model's mean score by one evaluator (own orientation) with its percentile bootstrap
    interval over the test images."""

    model: str
    evaluator: str
    mean: float | None
    mean_ci: list[float] | None


@dataclass
class Exclusion(Row):
    """A (cell, evaluator) judgment left out of every statistic: ``kind`` ``circular`` (the
    circularity rule) or ``missing`` (no scores)."""

    cell: str
    fidelity: str
    evaluator: str
    kind: str
    reason: str


@dataclass
class Judgment(Row):
    """Why one judgment is left out (``kind`` ``circular`` or ``missing``)."""

    kind: str
    reason: str


@dataclass
class OptimizationRow(Row):
    """One cell's mean score by one evaluator: ``mean`` in the evaluator's orientation,
    ``quality`` oriented (higher = better), each with its bootstrap interval; an excluded
    judgment has no number and says why (``excluded``)."""

    cell: str
    task: str
    fidelity: str
    setting: str
    discriminator: str
    adversarial_weight: float
    evaluator: str
    n_images: int
    mean: float | None
    mean_ci: list[float] | None
    quality: float | None
    quality_ci: list[float] | None
    excluded: Judgment | None


@dataclass
class DatasetSrcc(Row):
    """A metric's SRCC on one IQA dataset (oriented: positive = agrees) and its interval."""

    srcc: float | None
    srcc_ci: list[float] | None


@dataclass
class AssessmentRow(Row):
    """A fidelity metric's quality as an IQA model: the mean over datasets of its oriented
    SRCC (``per_dataset``), None with a ``reason`` when not assessed."""

    metric: str
    quality: float | None
    quality_ci: list[float] | None
    per_dataset: dict[str, DatasetSrcc]
    reason: str | None


@dataclass
class PairedTest(Row):
    """Wilcoxon signed-rank test of model A against model B by one evaluator on the same test
    images (differences oriented higher = better; ``rank_biserial`` > 0: A better), with Holm's
    adjustment over its ``family`` (``planned`` or ``exploratory``)."""

    a: str
    b: str
    evaluator: str
    n_images: int
    n_nonzero: int | None = None
    t_plus: float | None = None
    t_minus: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    rank_biserial: float | None = None
    median_difference: float | None = None
    reason: str | None = None
    family: str | None = None
    family_size: int | None = None
    smallest_p: float | None = None
