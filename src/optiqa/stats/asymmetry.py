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

The inputs and shared helpers are in :mod:`optiqa.stats.asymmetry_base`, the tables in
:mod:`optiqa.stats.asymmetry_tables`; this module assembles them (:func:`analyze`).
"""
from __future__ import annotations

from optiqa.stats.asymmetry_base import (MIN_RELIABLE_IMAGES, AssessmentDataset, AssessmentScores,
                                         Cell, EvaluatorSpec, OptimizationScores, _assessment,
                                         _optimization, _seed, agreement_fields, check_inputs,
                                         model_means)
from optiqa.stats.asymmetry_tables import (_agreement_rows, _contrast_rows, _optimization_rows,
                                           _sweep, default_pairs, evaluator_agreement,
                                           paired_tests, test_family)
from optiqa.stats.groups import setting_groups
from optiqa.stats.ranking import MIN_METRICS
from optiqa.stats.rows import (Analysis, CellRow, EvaluatorRow, Exclusion, PanelRow, Protocol,
                               Seeds, TestFamilies)

__all__ = ["Cell", "EvaluatorSpec", "OptimizationScores", "AssessmentDataset", "AssessmentScores",
           "MIN_RELIABLE_IMAGES", "check_inputs", "agreement_fields", "model_means",
           "evaluator_agreement", "default_pairs", "paired_tests", "test_family", "headlines",
           "analyze", "setting_groups", "_optimization"]


# ---------------------------------------------------------------------------------------------
# everything
# ---------------------------------------------------------------------------------------------
def headlines(panel_rows: list[PanelRow], n_images: int, n_seeds: int = 1,
              weight_name: str = "adversarial weight") -> list:
    """The answer, one sentence per task and setting (:func:`optiqa.stats.headline.headline`):
    without a discriminator, with one (pooled), then each adversarial setting (its weight
    called ``weight_name``)."""
    from dataclasses import replace

    from optiqa.stats.headline import headline, setting_label

    def order(row):   # per task and grid: none, pooled with, then each adversarial setting
        rank = 0 if row.group == "none" else 1 if row.scope == "adversarial" else 2
        return tasks.index(row.task), grids.index(row.grid), rank
    tasks = list(dict.fromkeys(r.task for r in panel_rows))
    grids = list(dict.fromkeys(r.grid for r in panel_rows))
    out = []
    for row in sorted((r for r in panel_rows if r.scope in ("adversarial", "setting")
                       and not (r.scope == "adversarial" and r.group == "without")),
                      key=order):
        if row.scope == "adversarial" and len(row.settings) < 2:
            continue        # one adversarial setting: the same as its own row
        label = setting_label(row.scope, row.group, len(row.settings), weight_name)
        if len(grids) > 1:  # the same setting can be in several grids, over different losses
            label += f" in the '{row.grid}' grid"
        out.append(replace(headline(row.panel, row.task, label, n_seeds, n_images),
                           scope=row.scope, group=row.group, grid=row.grid))
    return out


def analyze(opt: OptimizationScores, assess: AssessmentScores, n_boot: int = 2000, seed: int = 0,
            pairs=None, level: float = 0.95, planned=(), grids: list[dict] | None = None,
            weight_name: str = "adversarial weight") -> Analysis:
    """The whole asymmetry analysis as one typed :class:`~optiqa.stats.rows.Analysis` (None where
    undefined, never NaN; ``.to_json()`` is what ``analysis.json`` holds).

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
    exclusions = [Exclusion(c.name, c.fidelity, e.name, x[0], x[1])
                  for c in opt.cells for e in opt.evaluators for x in [opt.exclusion(c, e)] if x]
    return Analysis(
        protocol=Protocol(
            n_boot=n_boot, seed=seed, ci_level=level, ci_method="percentile bootstrap",
            resampling=("each replicate draws the test images with replacement" + (
                ", each cell's training seeds with replacement" if n_seeds > 1 else "")
                + " and, in the same replicate, the reference contents of every IQA dataset "
                "(cluster bootstrap); all statistics share the replicates"),
            n_seeds=n_seeds, n_images=n_images, images_ci_warning=images_warning,
            datasets=asm.datasets, min_metrics=MIN_METRICS,
            optimization_quality=("mean over test images of the evaluator's score, negated for "
                                     "lower-better evaluators (higher = better); 'mean' columns "
                                     "keep the evaluator's own orientation"),
            assessment_quality=("SRCC with the human scores, metric sign flipped where its "
                                   "orientation differs from the targets' (positive = agrees); "
                                   "within-stratum mean where strata are given; mean over "
                                   "datasets"),
            pooling=("a pooled group of settings belongs to one grid (a full cross product of "
                        "fidelity metrics and settings) and averages a metric's optimization "
                        "quality over the group's settings, over the grid's metrics; a contrast "
                        "is reported only between groups that differ in the contrasted factor "
                        "alone"),
            circularity=("a cell trained with metric M is never judged by an evaluator of M's "
                            "family, nor by one that shares a feature extractor (backbone and "
                            "weights) with M or with the cell's discriminator "
                            "(optiqa.evaluators.circularity): those judgments are left out of "
                            "every statistic and marked 'excluded (circular)' in every table"),
            evaluator_agreement=("Kendall's W with tie correction over the cells every "
                                    "evaluator may judge, ranked by mean score; chi-square "
                                    "p-value (Friedman's approximation, rough below 7 cells) and "
                                    "a permutation p-value (n_boot permutations)"),
            paired_tests=("two-sided Wilcoxon signed-rank test on per-image oriented scores "
                             "(zeros dropped); effect size = matched-pairs rank-biserial "
                             "correlation (positive = a better); Holm-adjusted within its "
                             "family: the planned comparisons (report.comparisons) alone, the "
                             "exploratory table (every adversarial cell against its counterpart "
                             "without a discriminator) alone; median_difference = median over "
                             "images of a - b in the evaluator's own orientation"),
        ),
        cells=[CellRow.of(c) for c in opt.cells],
        evaluators=[EvaluatorRow(e.name, e.lower_better, e.family, e.kind) for e in opt.evaluators],
        exclusions=exclusions,
        assessment=asm.rows,
        optimization=_optimization_rows(opt, stats, level),
        groups=groups,
        rank_agreement=agreement,
        seeds=Seeds(n_seeds, [c.name for c in runs.cells],
                    spread_rows(opt, per_seed) if per_seed else []),
        panel_agreement=panel,
        headline=headlines(panel, n_images, n_seeds, weight_name),
        contrasts=_contrast_rows(opt, groups, kept, level),
        weight_sweep=_sweep(opt, stats, level, agreement),
        evaluator_agreement=[evaluator_agreement(opt, stats, task, n_boot, _seed(seed, 2, i))
                             for i, task in enumerate(dict.fromkeys(c.task for c in opt.cells))],
        paired_tests=exploratory,
        planned_tests=planned_rows,
        test_families=TestFamilies(test_family(planned_rows, "planned"),
                                   test_family(exploratory, "exploratory")),
    )
