"""Rows of the human judgments in ``analysis.json``: the raters' Bradley-Terry fit
(:class:`optiqa.judge.fit.HumanScores`, as its ``to_dict`` writes it), the crops they judged,
each evaluator's rank correlation with them, and people as the evaluator of the assessment vs
optimization question."""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.stats.rows.agreement import RankCorrelation, SettingGroup
from optiqa.stats.rows.base import Row


@dataclass
class HumanRun(Row):
    """One model's Bradley-Terry score (log odds, None without votes), interval, rank, votes."""

    run: str
    label: str
    score: float | None
    ci_low: float | None
    ci_high: float | None
    rank: int | None
    votes: int
    wins: int


@dataclass
class HumanRater(Row):
    rater: str
    votes: int
    repeats: int
    consistent: int
    consistency: float | None
    agreement: float | None
    median_response_ms: float | None


@dataclass
class HumanPair(Row):
    run_a: str
    run_b: str
    votes: int
    wins_a: int


@dataclass
class HumanFit(Row):
    """The fit of the raters' votes (:class:`optiqa.judge.fit.HumanScores`)."""

    runs: list[HumanRun]
    raters: list[HumanRater]
    pairs: list[HumanPair]
    n_votes: int
    n_repeat_votes: int
    consistency: float | None
    connected: bool
    n_boot: int
    seed: int
    alpha: float
    ci_level: float
    model: str
    scale: str
    message: str
    notes: list[str]
    resampled: str
    n_raters: int
    n_images: int
    has_votes: bool


@dataclass
class HumanCrops(Row):
    """The crops the raters judged (``[image, [x, y, w, h]]``) and the evaluators that could
    not score them (with why)."""

    n: int
    crops: list[list]
    unscored: dict[str, str]


@dataclass
class HumanVsEvaluator(RankCorrelation):
    """How one evaluator's ranking of the judged ``cells`` of a task agrees with the raters'."""

    evaluator: str
    task: str
    cells: list[str]
    stimuli: str
    n: int


@dataclass
class HumanPoint(Row):
    """One fidelity metric: its assessment SRCC and the mean human score of its models."""

    metric: str
    assessment: float
    optimization: float


@dataclass
class HumanAgreement(SettingGroup, RankCorrelation):
    """People as the evaluator: rank agreement of assessment and human optimization quality
    over the group's fidelity metrics whose every cell was judged."""

    points: list[HumanPoint]
    n: int


@dataclass
class Human(Row):
    """The human judgments part of the analysis; without votes only the fit and its message."""

    OMIT_IF_NONE = ("crops", "by_evaluator", "rank_agreement")

    has_votes: bool
    message: str
    fit: HumanFit
    crops: HumanCrops | None = None
    by_evaluator: list[HumanVsEvaluator] | None = None
    rank_agreement: list[HumanAgreement] | None = None
