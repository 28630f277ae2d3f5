"""The whole analysis as one typed row, :class:`Analysis`: what the analyze stage writes to
``analysis.json`` and the report reads (:func:`optiqa.stats.asymmetry.analyze` builds it)."""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.stats.headline import Headline
from optiqa.stats.multiplicity import TestFamily
from optiqa.stats.rows.agreement import (Contrast, EvaluatorAgreement, PanelRow, RankAgreement,
                                         Seeds, SettingGroup, WeightSweep)
from optiqa.stats.rows.base import Row
from optiqa.stats.rows.human import Human
from optiqa.stats.rows.tables import (AssessmentRow, CellRow, EvaluatorRow, Exclusion,
                                      ModelMean, OptimizationRow, PairedTest)


@dataclass
class DatasetInfo(Row):
    """One IQA dataset of the assessment side: its size, how SRCC is computed (``pooled`` over
    the items or ``within`` strata), the targets' orientation and a caution about its
    bootstrap."""

    OMIT_IF_NONE = ("strata_used", "strata_excluded")

    name: str
    n_items: int
    n_contents: int
    evaluation: str
    target_lower_better: bool
    ci_warning: str | None
    strata_used: int | None = None
    strata_excluded: dict | None = None


@dataclass
class Protocol(Row):
    """How every number of the analysis was computed, in the words the report's tables quote.
    ``adversarial_weight`` and ``weight_name`` are added by the study's analyze stage."""

    OMIT_IF_NONE = ("adversarial_weight", "weight_name")

    n_boot: int
    seed: int
    ci_level: float
    ci_method: str
    resampling: str
    n_seeds: int
    n_images: int
    images_ci_warning: str | None
    datasets: list[DatasetInfo]
    min_metrics: int
    optimization_quality: str
    assessment_quality: str
    pooling: str
    circularity: str
    evaluator_agreement: str
    paired_tests: str
    adversarial_weight: str | None = None
    weight_name: str | None = None


@dataclass
class TestFamilies(Row):
    """The two families of paired tests, each Holm-adjusted alone."""

    __test__ = False    # not a pytest test class

    planned: TestFamily
    exploratory: TestFamily


@dataclass
class Summary(Row):
    """What the analysis read: the analyze stage's one-line summary."""

    cells: int
    evaluators: int
    images: int
    datasets: int
    human_votes: int


@dataclass
class Analysis(Row):
    """``analysis.json``. :func:`optiqa.stats.asymmetry.analyze` fills every part up to
    ``test_families``; the study's analyze stage adds ``model_means`` (baselines included),
    ``human``, ``summary`` and its cache ``key``."""

    OMIT_IF_NONE = ("model_means", "human", "summary", "key")

    protocol: Protocol
    cells: list[CellRow]
    evaluators: list[EvaluatorRow]
    exclusions: list[Exclusion]
    assessment: list[AssessmentRow]
    optimization: list[OptimizationRow]
    groups: list[SettingGroup]
    rank_agreement: list[RankAgreement]
    seeds: Seeds
    panel_agreement: list[PanelRow]
    headline: list[Headline]
    contrasts: list[Contrast]
    weight_sweep: WeightSweep
    evaluator_agreement: list[EvaluatorAgreement]
    paired_tests: list[PairedTest]
    planned_tests: list[PairedTest]
    test_families: TestFamilies
    model_means: list[ModelMean] | None = None
    human: Human | None = None
    summary: Summary | None = None
    key: str | None = None
