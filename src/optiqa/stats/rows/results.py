"""Rows of the result files the report reads besides ``analysis.json``: the assess stage's
``assess/<dataset>.json`` (:class:`AssessmentFile`, one :class:`MetricAssessment` per metric)
and the transfer stage's ``transfer/<name>.json`` (:class:`TransferResult` for an IQA model on
a backbone, :class:`ZeroShotResult` for a discriminator's own logit).

They describe the files as :func:`optiqa.assess.benchmark.assess`,
:func:`optiqa.transfer.experiment.run_transfer` and :func:`optiqa.transfer.zeroshot.run_zero_shot`
write them (the volatile keys ``seconds``, ``from_store``, ``summary_from_store`` dropped by the
study's ``write_json``, accepted when present). Reading is strict (:class:`~optiqa.stats.rows.
base.Row`): a misspelt or missing key is an :class:`~optiqa.core.errors.InputError` naming the
row and the key. Fields that only one kind of evaluation writes (``within`` strata) are optional
and left out of ``to_json`` while None, so a file reads back to the JSON it came from.
"""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.stats.rows.base import Row

_VOLATILE = ("seconds", "from_store", "summary_from_store")


@dataclass(kw_only=True)
class CorrelationStats(Row):
    """One score's correlation with a dataset's targets (:func:`optiqa.assess.benchmark.
    statistics`): SRCC, KRCC and, pooled, PLCC/RMSE after the logistic fit, with cluster
    bootstrap intervals over contents; ``within``: means over strata (``strata_*``, ``note``)."""

    OMIT_IF_NONE = ("strata_used", "strata_excluded", "strata_constant_scores", "note",
                    *_VOLATILE)

    n: int
    srcc: float | None
    krcc: float | None
    plcc: float | None
    rmse: float | None
    srcc_ci: list[float] | None
    krcc_ci: list[float] | None
    plcc_ci: list[float] | None
    rmse_ci: list[float] | None
    fit_params: list[float] | None
    fit_error: str | None
    n_boot: int
    ci_level: float
    n_contents: int
    ci_warning: str | None
    sign: int
    strata_used: int | None = None
    strata_excluded: dict[str, int] | None = None
    strata_constant_scores: int | None = None
    note: str | None = None
    seconds: float | None = None
    from_store: bool | int | None = None
    summary_from_store: bool | None = None


@dataclass
class MetricAssessment(CorrelationStats):
    """One metric on one IQA dataset (an entry of ``assess/<dataset>.json``'s ``results``)."""

    OMIT_IF_NONE = (*CorrelationStats.OMIT_IF_NONE, "scores")

    dataset: str
    metric: str
    evaluation: str
    target: str
    metric_orientation: str
    label: str | None
    missing: int
    fingerprint: str
    scores: list[float] | None = None


@dataclass
class AssessmentFile(Row):
    """``assess/<dataset>.json``: the dataset (its items, targets, content groups and strata,
    which the analysis resamples) and every metric's :class:`MetricAssessment`."""

    dataset: str
    title: str
    label: str | None
    target: str
    target_lower_better: bool
    evaluation: str
    identity: dict
    items: list[str]
    targets: list[float]
    groups: list[str]
    strata: list[str] | None
    static: list[bool]
    contents: list[str]
    results: list[MetricAssessment]


@dataclass
class RepeatStats(Row):
    """One statistic over the transfer protocol's repeats (:func:`optiqa.transfer.protocol.
    summarize_repeats`): mean, sample standard deviation (ddof=1), median, range, count."""

    mean: float
    std: float
    median: float
    min: float
    max: float
    n: int


@dataclass
class RepeatSummary(Row):
    """SRCC, PLCC and KRCC over the repeats (None where no repeat has a finite value)."""

    srcc: RepeatStats | None
    plcc: RepeatStats | None
    krcc: RepeatStats | None


@dataclass
class CrossSummary(RepeatSummary):
    """A cross-database test set of a transfer experiment, over the repeats."""

    dataset_key: str
    label: str | None
    target: str
    evaluation: str


@dataclass
class InitInfo(Row):
    """Where a transfer backbone's weights came from (:func:`optiqa.transfer.init.
    create_backbone`): ``random`` (its seed), ``imagenet`` (the weights file), ``gan`` (the
    discriminator's checkpoint and how many of the backbone's ``maps`` it trained)."""

    OMIT_IF_NONE = ("seed", "weights", "sha256", "checkpoint", "iteration", "run", "network_d",
                    "maps", "trained_maps")

    init: str
    seed: int | None = None
    weights: str | None = None
    sha256: str | None = None
    checkpoint: str | None = None
    iteration: int | None = None
    run: str | None = None
    network_d: dict | None = None
    maps: int | None = None
    trained_maps: int | None = None


@dataclass
class TransferResult(Row):
    """``transfer/<name>.json`` of an IQA model on a backbone (:func:`optiqa.transfer.
    experiment.run_transfer`): its settings, the test contents' statistics over the repeats,
    each repeat's record (``per_repeat``) and the cross-database sets."""

    OMIT_IF_NONE = ("key", "study_name", *_VOLATILE)

    stage: str
    kind: str
    backbone: str
    backbone_title: str
    init: str
    init_info: InitInfo
    mode: str
    head: str
    dataset: str
    dataset_key: str
    label: str | None
    target: str
    evaluation: str
    options: dict
    test: RepeatSummary | None
    cross: dict[str, CrossSummary]
    per_repeat: list[dict]
    features: dict | None
    sign: str
    plcc_note: str
    std_note: str
    key: str | None = None
    study_name: str | None = None
    seconds: float | None = None
    from_store: bool | None = None


@dataclass
class ZeroShotResult(CorrelationStats):
    """``transfer/zeroshot__<cell>.json``: a trained discriminator's mean logit over crops as a
    quality score (:func:`optiqa.transfer.zeroshot.run_zero_shot`), correlated as a metric is."""

    OMIT_IF_NONE = (*CorrelationStats.OMIT_IF_NONE, "study_name")

    stage: str
    zero_shot: bool
    run: str
    checkpoint: str
    iteration: int | None
    network_d: dict
    level: str | None
    checkpoint_sha256: str
    crop: int
    grid: int
    max_crops_per_image: int
    dataset: str
    dataset_key: str
    label: str | None
    target: str
    evaluation: str
    sign_note: str
    plcc_note: str
    key: str
    score_mean: float
    score_std: float
    study_name: str | None = None
