"""``optiqa report STUDY_DIR`` (and the study's last stage): report.html, report.md, CSV tables.

Everything comes from the study folder's results (assessment files, evaluations, transfer
results, the analysis, the run folders' training logs and the saved images); nothing is
recomputed here except means and their bootstrap intervals, and the analysis when the results,
the human votes or the configuration changed since ``analysis.json`` was written (its key says
what it was computed from). Every table states its protocol.

This module is the report stage: it reads the study folder and parses the study's names; the
rendering is :mod:`optiqa.report` (``sections``, ``analysis``, ``visual``), which reads only
what it is given.
"""
from __future__ import annotations

import time

from optiqa.report.document import Document, Table
from optiqa.report.sections import ci_text as _ci_text
from optiqa.study.folder import read_json

TABLE_NOTE_Y = ("PSNR and SSIM on the Y channel of BT.601 YCbCr under the {protocol}; outputs "
                "rounded to 8 bits, a border of {border} removed before every evaluator; NR "
                "evaluators on the output alone")


def table_note_y(cfg) -> str:
    """The evaluation protocol of a study's tables (protocol, and the border = each task's
    scale)."""
    from optiqa.restore.scoring import border_words
    from optiqa.restore.protocol import PROTOCOLS

    scales = {name: t.scale for name, t in cfg.task_opts.items()}
    if len(set(scales.values())) == 1:
        scale = next(iter(scales.values()))
        border = f"{scale} px ({border_words(scale)})"
    else:
        border = "the task's scale in px (" + ", ".join(f"{n}: {s}" for n, s in scales.items()) + ")"
    return TABLE_NOTE_Y.format(protocol=PROTOCOLS[cfg.evaluators.protocol], border=border)




class StudyResults:
    """The results of a study folder, read once for the report."""

    def __init__(self, plan):
        from optiqa.study.assessment import assessment_files
        from optiqa.study.transfer import transfer_experiments, zero_shot_names
        from optiqa.study.evaluation import current_evaluations

        self.plan, self.cfg, self.folder = plan, plan.cfg, plan.folder
        # only what the current configuration produced: a file left by an earlier
        # configuration of the study (another grid, other test data) is not reported
        self.assess = {k: v for k, v in assessment_files(self.folder).items()
                       if k in {d.name.lower() for d in self.cfg.assessment.datasets}}
        names = [n for n, _, _ in transfer_experiments(self.cfg, self.folder, plan.cells)] \
            if self.cfg.transfer else []
        names += zero_shot_names(self.cfg, self.folder, plan.cells)
        self.transfer = {n: t for n in names if (t := read_json(self.folder.transfer(n)))}
        # the analysis of the results and votes as they are now: analysis.json when it is
        # current, else analysed again (so new votes or results never meet an old analysis)
        from optiqa.study.analysis import current_analysis

        self.analysis, self.analysis_missing = current_analysis(plan)
        self.evaluations = current_evaluations(plan)

    def per_image(self, name: str, metric: str) -> list[float]:
        """A model's scores for ``metric`` over every test image of every set."""
        ev = self.evaluations.get(name) or {}
        return [s for st in (ev.get("sets") or {}).values()
                for s in st["scores"].get(metric, [])]

    @property
    def n_images(self) -> int:
        ev = next(iter(self.evaluations.values()), None) or {}
        return sum(len(s["images"]) for s in (ev.get("sets") or {}).values())


# ---------------------------------------------------------------------------------------------
def write_report(plan) -> dict:
    """Write the report into ``<study>/report/``; returns the paths written."""
    r = StudyResults(plan)
    doc = Document(f"optiqa study: {plan.cfg.name}")
    from optiqa.report import sections

    if plan.cfg.rehearsal is not None:   # a rehearsal says so, and what it replaced, first
        from optiqa.core.rehearsal import recorded

        info = plan.cfg.rehearsal
        sections.rehearsal_section(doc, info.source or plan.cfg.name,
                                   [*info.substitutions, *recorded(plan.folder.rehearsal_record)])
    from optiqa.report.analysis import answer_section

    answer_section(doc, r)       # the answer first; the long tables follow as detail
    doc.heading("The study")
    _intro(doc, r)
    sections.assessment_section(doc, r.assess)
    _optimization(doc, r)
    from optiqa.report.analysis import analysis_sections, human_section, recovery_section

    analysis_sections(doc, r)
    human_section(doc, r)
    recovery_section(doc, plan.cfg.recovery, plan.folder.recovery,
                     read_json(plan.folder.recovery_record))
    _transfer(doc, r)
    _visual(doc, r)
    curves = {name: rows for name in [*plan.pretrain_jobs(), *(c.name for c in plan.cells)]
              if (rows := plan.folder.run(name).training_curves())}
    sections.training_section(doc, curves)
    if plan.cfg.rehearsal is not None:
        doc.stamp(REHEARSAL_STAMP)
    return doc.write(plan.folder.report)


REHEARSAL_STAMP = "REHEARSAL (shrunk CPU run, not results)"


def _intro(doc: Document, r: StudyResults) -> None:
    cfg = r.cfg
    if cfg.report.note:
        doc.para(cfg.report.note.strip(), "note")
    if cfg.description:
        doc.para(cfg.description.strip())
    doc.para(design_sentence(r.plan))
    from optiqa.study.heldout import heldout_sentence

    held = heldout_sentence(read_json(r.folder.heldout), cfg)
    sets = [f"training images: {cfg.data.train}"] + [
        f"test set {name}: {path}" for name, path in cfg.data.test.items()]
    doc.para((held or "Held-out data: NOT CHECKED for this configuration (rerun the study: "
              "the check runs before any work).") + " Data: " + "; ".join(sets) + ".",
             "protocol")
    doc.para(f"Generated {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC from "
             f"{r.folder.root}; rerun `optiqa report {r.folder.root}` to regenerate it.")


def design_sentence(plan) -> str:
    """What was trained, generated from the cells and grids (never from the full cross product
    when ``grids`` trains a part of it), and what each cell's objective holds."""
    from optiqa.study.analysis import pixel_weight
    from optiqa.study.cells import study_grids

    cfg, cells = plan.cfg, plan.cells
    grids = study_grids(cfg)
    parts = [f"'{g['name']}': {len(g['fidelity'])} fidelity loss(es) x {len(g['settings'])} "
             f"setting(s) ({', '.join(g['settings'])})" for g in grids]
    text = (f"{len(cells)} trained models (cells) over tasks {', '.join(cfg.tasks)} in "
            f"{len(grids)} grid(s): " + "; ".join(parts) + ". ")
    kept = sorted({pixel_weight(c.train_config) for c in cells} - {0.0})
    with_pixel = sum(pixel_weight(c.train_config) > 0 for c in cells)
    text += (f"{with_pixel} of {len(cells)} cells keep an L1 pixel term (train.pixel_opt, weight "
             f"{', '.join(f'{w:g}' for w in kept)}) beside their fidelity loss: the pixel family "
             "is one of their loss families, so pixel evaluators do not judge them. "
             if with_pixel else "Each cell's objective is its fidelity loss (plus the "
             "adversarial term where it has a discriminator), with no pixel term. ")
    if any(c.adversarial for c in cells):
        from optiqa.study.gradient_ratios import weight_sentence

        text += f"Adversarial weights: {weight_sentence(cfg)}. "
    return text + f"Evaluators: {', '.join(cfg.evaluators.metrics)}."


def optimization_rows(r: StudyResults, evaluators: list[str]):
    """Rows (model, setting, mean per evaluator with CI) and the cells the circularity rule
    excludes: their number is omitted and ``excluded (circular)`` written in its place, the same
    in HTML (also greyed), Markdown, CSV and ``analysis.json``."""
    from optiqa.evaluators import EXCLUDED_MARK
    from optiqa.study.analysis import excluded_evaluators

    rows, muted = [], set()
    # one source for every interval: the analysis' own image replicates (analysis.json)
    from optiqa.stats.rows import ModelMean

    means = {(x.model, x.evaluator): (x.mean, x.mean_ci)
             for x in ModelMean.many((r.analysis or {}).get("model_means"))}
    baselines = [n for n in r.evaluations if n not in {c.name for c in r.plan.cells}]
    for name in baselines + [c.name for c in r.plan.cells]:
        if name not in r.evaluations:
            continue
        cell = next((c for c in r.plan.cells if c.name == name), None)
        excluded = excluded_evaluators(r.cfg, cell) if cell else {}
        row = [name, cell.fidelity if cell else "(baseline)",
               cell.discriminator if cell else "-",
               cell.adversarial_weight if cell and cell.adversarial else None]
        for j, m in enumerate(evaluators):
            if m in excluded:
                row += [EXCLUDED_MARK, "-"]
                muted |= {(len(rows), 4 + 2 * j), (len(rows), 5 + 2 * j)}
                continue
            mean, ci = means.get((name, m), (None, None))
            row += [mean, _ci_text(ci)]
        rows.append(row)
    return rows, muted


def _optimization(doc: Document, r: StudyResults) -> None:
    from optiqa.metrics import list_metrics

    doc.heading("Metrics as training losses")
    if not r.evaluations:
        doc.para("No evaluations yet (the evaluate stage has not run).")
        return
    evaluators = list(r.cfg.evaluators.metrics)
    infos = list_metrics()
    rows, muted = optimization_rows(r, evaluators)
    headers = ["model", "fidelity loss", "discriminator",
               "adv. ratio r" if r.cfg.adversarial.relative else "adv. weight"]
    for m in evaluators:
        headers += [f"{m} ({'↓' if infos[m].lower_better else '↑'})", "95% CI"]
    protocol = (f"Mean over {r.n_images} test images with a percentile bootstrap 95% CI "
                f"over images ({r.cfg.assessment.bootstrap} replicates, the analysis' own: "
                "analysis.json model_means; '-' before the analyze stage). "
                + table_note_y(r.cfg) + ". 'excluded (circular)': the "
                "evaluator is of the model's loss family or shares a feature extractor "
                "(backbone and weights) with its loss or its discriminator "
                "(optiqa.evaluators.circularity), or the model keeps a pixel term and the "
                "evaluator is a pixel metric, so that judgment is neither shown nor used. "
                "↑ higher is better, ↓ lower is better.")
    doc.table(Table("Evaluator panel on the restored test images", headers, rows,
                    csv_name="optimization", protocol=protocol, muted=muted))
    from optiqa.study.gradient_ratios import gradient_ratio_table

    ratios = gradient_ratio_table(r.folder, r.cfg, r.plan.cells)   # every GAN cell's
    if ratios is not None:
        doc.table(ratios)


def _transfer(doc: Document, r: StudyResults) -> None:
    """The transfer section, with the study's names parsed here (the renderer does not)."""
    from optiqa.report.sections import transfer_section
    from optiqa.study.names import parse_transfer_gan, parse_zeroshot

    zero_shot = {n: cell for n in r.transfer if (cell := parse_zeroshot(n)) is not None}
    gan = {n: parsed for n in r.transfer if (parsed := parse_transfer_gan(n)) is not None}
    transfer_section(doc, r.transfer, zero_shot, gan)


def _visual(doc: Document, r: StudyResults) -> None:
    from optiqa.report.visual import comparison_figures
    from optiqa.study import names

    doc.heading("Visual comparison")
    # the model-free baseline, the shared pre-training and the shared start, where evaluated
    baselines = {task: [(kind, names.baseline_name(kind, task))
                        for kind in (names.BICUBIC, names.PRETRAIN, names.START)]
                 for task in r.cfg.task_opts}
    figs = comparison_figures(r, baselines)
    if not figs:
        doc.para("No restored images yet.")
    for fig in figs:
        doc.figure(fig)


def run_stage(ctx) -> dict:
    """The report stage as the runner calls it: the written files."""
    return {k: str(v) for k, v in write_report(ctx.plan).items()}
