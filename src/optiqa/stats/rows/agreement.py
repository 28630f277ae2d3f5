"""Rows of the rank agreement between assessment and optimization (:mod:`optiqa.stats.asymmetry`):
the pooled groups of settings, the agreement per evaluator and group with its permutation tests,
the panel's median, the contrasts between groups, the weight sweep, the seed spread and the
agreement among the evaluators."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from optiqa.stats.incomplete import IncompleteAgreement
from optiqa.stats.permutation import PanelAgreement, PermutationTest
from optiqa.stats.replicates import SeedSpread
from optiqa.stats.rows.base import Row


@dataclass
class SettingGroup(Row):
    """Settings pooled in one grid of one task (:func:`optiqa.stats.groups.setting_groups`):
    ``scope`` ``setting`` / ``adversarial`` / ``level`` / ``backbone`` / ``weight``, the group's
    name in it, its settings and the grid's fidelity metrics."""

    task: str
    grid: str | None
    scope: str
    group: str
    settings: list[str]
    fidelity: list[str]
    adversarial_weight: float | None


@dataclass
class LeftOut(Row):
    """The grid's metrics left out of one rank agreement, by reason."""

    circular: list[str]
    missing_scores: list[str]
    not_trained: list[str]
    not_assessed: list[str]


@dataclass
class AgreementPoint(Row):
    """One metric of a rank agreement: its optimization quality (oriented mean over the group's
    cells; ``optimization_raw`` in the evaluator's own orientation) and its assessment SRCC."""

    metric: str
    cells: list[str]
    optimization: float
    optimization_ci: list[float] | None
    optimization_raw: float
    assessment: float
    assessment_ci: list[float] | None


@dataclass(kw_only=True)
class RankCorrelation(Row):
    """Spearman's rho and Kendall's tau-b between two rankings of the same objects, each with its
    exact permutation test (:func:`optiqa.stats.permutation.rank_test`); None with a ``reason``
    when undefined, ``descriptive_only`` below 5 objects. The fields every rank agreement of
    the analysis shares (keyword-only, so that they follow each row's own fields)."""

    spearman: float | None
    kendall: float | None
    reason: str | None
    descriptive_only: bool
    spearman_test: PermutationTest | None
    kendall_test: PermutationTest | None


@dataclass
class RankAgreement(SettingGroup, RankCorrelation):
    """Spearman's rho and Kendall's tau-b between assessment and optimization quality over the
    ``metrics`` one evaluator may judge in one group, with percentile intervals and the exact
    permutation tests (``descriptive_only`` below 5 metrics)."""

    evaluator: str
    n_metrics: int
    spearman_ci: list[float] | None
    kendall_ci: list[float] | None
    ci_warning: str | None
    metrics: list[str]
    left_out: LeftOut
    points: list[AgreementPoint]


@dataclass
class PanelRow(SettingGroup, PanelAgreement):
    """The evaluator panel's median rho in one group and its permutation test: a
    :class:`~optiqa.stats.permutation.PanelAgreement` flattened beside the group (its fields
    are the panel's, ``metrics`` the group's judged metrics)."""

    metrics: list[str]

    @property
    def panel(self) -> PanelAgreement:
        """The panel's agreement alone (the headline's input)."""
        return PanelAgreement(**{f.name: getattr(self, f.name) for f in fields(PanelAgreement)})


@dataclass
class Contrast(Row):
    """Difference (second - first) of one evaluator's rank agreement between two pooled groups
    of one grid, with a paired bootstrap interval; None with a ``reason`` when undefined or
    confounded."""

    task: str
    grid: str | None
    evaluator: str
    scope: str
    first: str
    second: str
    n_metrics_first: int
    n_metrics_second: int
    same_metrics: bool
    reason: str | None
    spearman_difference: float | None
    spearman_difference_ci: list[float] | None
    kendall_difference: float | None
    kendall_difference_ci: list[float] | None


@dataclass
class SweepCurve(Row):
    """One fidelity loss's evaluator scores over the adversarial weights of one discriminator
    (the first point: no discriminator, where trained); ``excluded[i]``: why point i is not
    drawn (circularity), else None."""

    task: str
    discriminator: str
    evaluator: str
    fidelity: str
    weights: list[float]
    cells: list[str]
    mean: list[float | None]
    mean_ci: list[list[float] | None]
    quality: list[float | None]
    excluded: list[str | None]


@dataclass
class WeightSweep(Row):
    """The curves over the adversarial weights and the rank agreement per weight group."""

    curves: list[SweepCurve]
    rank_agreement: list[RankAgreement]


@dataclass
class SpreadRow(Row):
    """Seed-to-seed spread next to the spread between losses
    (:class:`~optiqa.stats.replicates.SeedSpread`, flattened) for one task, setting and evaluator
    over the ``losses`` it may judge. With unequal seeds per loss only ``n_units`` and the
    ``reason`` are set."""

    task: str
    setting: str
    evaluator: str
    losses: list[str]
    n_units: int
    n_seeds: int | None
    between_sd: float | None = None
    seed_sd: float | None = None
    icc: float | None = None
    icc_mean: float | None = None
    f: float | None = None
    p_value: float | None = None
    reason: str | None = None

    @classmethod
    def of(cls, task: str, setting: str, evaluator: str, losses: list[str],
           spread: SeedSpread) -> "SpreadRow":
        return cls(task, setting, evaluator, losses, **asdict(spread))


@dataclass
class Seeds(Row):
    """Training seeds (``train.seeds``): how many per cell, the runs read, the spread rows."""

    n_seeds: int
    runs: list[str]
    spread: list[SpreadRow]


@dataclass
class CellLeftOut(Row):
    """A cell left out of Kendall's W, and the evaluators that may not judge it."""

    cell: str
    not_judged_by: list[str]


@dataclass
class LeaveOneOut(Row):
    """W without one evaluator, and that evaluator's Spearman with the others' consensus."""

    evaluator: str
    w_without: float | None
    spearman_with_others: float | None


@dataclass
class Pairwise(Row):
    """Spearman between every two evaluators over the cells both may judge (and their count)."""

    evaluators: list[str]
    spearman: list[list[float | None]]
    n_cells: list[list[int]]


@dataclass
class EvaluatorAgreement(Row):
    """Agreement among the evaluators on one task: Kendall's W over the cells every evaluator may
    judge (chi-square and permutation p), its incomplete-ranking form over the cells each may
    judge (:class:`~optiqa.stats.incomplete.IncompleteAgreement`), leave-one-out and pairs."""

    task: str
    n_evaluators: int
    n_cells: int
    incomplete: IncompleteAgreement
    cells: list[str]
    cells_left_out: list[CellLeftOut]
    w: float | None
    chi2: float | None
    df: int
    p_chi2: float | None
    p_permutation: float | None
    n_permutations: int
    reason: str | None
    leave_one_out: list[LeaveOneOut]
    pairwise: Pairwise
