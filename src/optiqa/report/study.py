"""The whole study report from typed inputs: :class:`StudyReport` in, a
:class:`~optiqa.report.document.Document` out (:func:`render`).

The study's report stage (:mod:`optiqa.study.report`) reads the study folder, parses the
study's names and fills a :class:`StudyReport`: the :class:`~optiqa.stats.rows.Analysis`, the
evaluated models with the evaluators each may not judge (:class:`Model`), the paths of the crops
(:class:`~optiqa.report.visual.CropSource`) and the sentences only the study can write (its
design, its held-out check, its evaluation protocol). Everything here renders what it is given;
nothing imports :mod:`optiqa.study`, reads the study folder's layout or parses a run name.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from optiqa.report.document import Document, Table
from optiqa.report.figures import TrainingCurve
from optiqa.report.gradient_ratios import GradientRatioRow, gradient_ratio_table
from optiqa.report.sections import Recovery, ci_text
from optiqa.report.visual import CropSource
from optiqa.stats.rows import Analysis
from optiqa.stats.rows.results import AssessmentFile, TransferResult, ZeroShotResult

REHEARSAL_STAMP = "REHEARSAL (shrunk CPU run, not results)"


@dataclass
class Model:
    """One evaluated model of the evaluator table: a cell (its fidelity loss, discriminator and
    adversarial weight, None without a discriminator) or a baseline (``fidelity`` None), and the
    evaluators that may not judge it (``{evaluator: reason}``, the circularity rule)."""

    name: str
    fidelity: str | None = None
    discriminator: str | None = None
    adversarial_weight: float | None = None
    excluded: dict[str, str] = field(default_factory=dict)


@dataclass
class Intro:
    """The study's opening paragraphs: its note and description, what was trained (``design``),
    the held-out check (None: not checked), its data, and the folder it was generated from."""

    design: str
    data: list[str]
    root: str
    note: str | None = None
    description: str | None = None
    heldout: str | None = None


@dataclass
class EvaluatorPanel:
    """The evaluator table's settings: evaluators ``(name, lower_better)`` in column order, the
    number of test images and bootstrap replicates, whether adversarial weights are gradient
    ratios (``adversarial.relative``), the evaluation protocol's note, every GAN cell's
    gradient ratio (:mod:`optiqa.report.gradient_ratios`) and the sentence that says what the
    study's adversarial weights are."""

    evaluators: list[tuple[str, bool]]
    n_images: int
    bootstrap: int
    relative: bool = False
    protocol_note: str = ""
    ratios: list[GradientRatioRow] = field(default_factory=list)
    weights: str = ""


@dataclass
class StudyReport:
    """Everything the study report shows (:func:`render`)."""

    title: str
    intro: Intro
    analysis: Analysis | None = None      # None before the analyze stage
    analysis_missing: str | None = None   # why there is no analysis
    # assess/<dataset>.json per dataset
    assessments: dict[str, AssessmentFile] = field(default_factory=dict)
    panel: EvaluatorPanel | None = None
    models: list[Model] = field(default_factory=list)  # baselines first, then the cells
    recovery: Recovery | None = None
    # transfer/<experiment>.json (a ZeroShotResult for the experiments in zero_shot)
    transfer: dict[str, TransferResult | ZeroShotResult] = field(default_factory=dict)
    zero_shot: dict[str, str] = field(default_factory=dict)   # experiment -> cell
    # experiment -> (name without cell, cell)
    gan: dict[str, tuple[str, str]] = field(default_factory=dict)
    crops: list[CropSource] = field(default_factory=list)
    crop_size: int = 96
    curves: list[TrainingCurve] = field(default_factory=list)   # runs with a training log
    rehearsal: tuple[str, list[str]] | None = None     # (what it rehearses, substitutions)


def render(r: StudyReport) -> Document:
    """The report: the answer first, then the study, its tables and figures as detail."""
    from optiqa.report import sections
    from optiqa.report.analysis import analysis_sections, answer_section
    from optiqa.report.human import human_section
    from optiqa.report.visual import comparison_figures

    doc = Document(r.title)
    if r.rehearsal is not None:   # a rehearsal says so, and what it replaced, first
        sections.rehearsal_section(doc, *r.rehearsal)
    answer_section(doc, r.analysis)   # the answer first; the long tables follow as detail
    doc.heading("The study")
    intro_section(doc, r.intro)
    sections.assessment_section(doc, r.assessments)
    optimization_section(doc, r.panel, r.models, r.analysis)
    analysis_sections(doc, r.analysis, r.analysis_missing)
    human_section(doc, None if r.analysis is None else r.analysis.human, r.intro.root)
    if r.recovery is not None:
        sections.recovery_section(doc, r.recovery)
    sections.transfer_section(doc, r.transfer, r.zero_shot, r.gan)
    doc.heading("Visual comparison")
    figs = comparison_figures(r.crops, r.crop_size)
    if not figs:
        doc.para("No restored images yet.")
    for fig in figs:
        doc.figure(fig)
    sections.training_section(doc, r.curves)
    if r.rehearsal is not None:
        doc.stamp(REHEARSAL_STAMP)
    return doc


def intro_section(doc: Document, intro: Intro) -> None:
    if intro.note:
        doc.para(intro.note.strip(), "note")
    if intro.description:
        doc.para(intro.description.strip())
    doc.para(intro.design)
    doc.para((intro.heldout or "Held-out data: NOT CHECKED for this configuration (rerun the "
              "study: the check runs before any work).") + " Data: " + "; ".join(intro.data)
             + ".", "protocol")
    doc.para(f"Generated {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC from "
             f"{intro.root}; rerun `optiqa report {intro.root}` to regenerate it.")


def optimization_rows(models: list[Model], evaluators: list[str], means) -> tuple[list, set]:
    """Rows (model, setting, mean per evaluator with CI) and the cells the circularity rule
    excludes: their number is omitted and ``excluded (circular)`` written in its place, the same
    in HTML (also greyed), Markdown, CSV and ``analysis.json``. ``means``: the analysis'
    :class:`~optiqa.stats.rows.ModelMean` rows, the one source of every number and interval."""
    from optiqa.evaluators import EXCLUDED_MARK

    by_key = {(x.model, x.evaluator): (x.mean, x.mean_ci) for x in means or []}
    rows, muted = [], set()
    for model in models:
        row = [model.name, model.fidelity or "(baseline)", model.discriminator or "-",
               model.adversarial_weight]
        for j, m in enumerate(evaluators):
            if m in model.excluded:
                row += [EXCLUDED_MARK, "-"]
                muted |= {(len(rows), 4 + 2 * j), (len(rows), 5 + 2 * j)}
                continue
            mean, ci = by_key.get((model.name, m), (None, None))
            row += [mean, ci_text(ci)]
        rows.append(row)
    return rows, muted


def optimization_section(doc: Document, panel: EvaluatorPanel | None, models: list[Model],
                         analysis: Analysis | None) -> None:
    """The evaluator panel on every evaluated model (``panel`` None: nothing evaluated yet)."""
    doc.heading("Metrics as training losses")
    if panel is None or not models:
        doc.para("No evaluations yet (the evaluate stage has not run).")
        return
    names = [name for name, _ in panel.evaluators]
    rows, muted = optimization_rows(models, names,
                                    None if analysis is None else analysis.model_means)
    headers = ["model", "fidelity loss", "discriminator",
               "adv. ratio r" if panel.relative else "adv. weight"]
    for name, lower_better in panel.evaluators:
        headers += [f"{name} ({'↓' if lower_better else '↑'})", "95% CI"]
    protocol = (f"Mean over {panel.n_images} test images with a percentile bootstrap 95% CI "
                f"over images ({panel.bootstrap} replicates, the analysis' own: "
                "analysis.json model_means; '-' before the analyze stage). "
                + panel.protocol_note + ". 'excluded (circular)': the "
                "evaluator is of the model's loss family or shares a feature extractor "
                "(backbone and weights) with its loss or its discriminator "
                "(optiqa.evaluators.circularity), or the model keeps a pixel term and the "
                "evaluator is a pixel metric, so that judgment is neither shown nor used. "
                "↑ higher is better, ↓ lower is better.")
    doc.table(Table("Evaluator panel on the restored test images", headers, rows,
                    csv_name="optimization", protocol=protocol, muted=muted))
    ratios = gradient_ratio_table(panel.ratios, panel.weights)
    if ratios is not None:
        doc.table(ratios)
