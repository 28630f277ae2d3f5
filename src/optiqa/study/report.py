"""``optiqa report STUDY_DIR`` (and the study's last stage): report.html, report.md, CSV tables.

Everything comes from the study folder's results (assessment files, evaluations, transfer
results, the analysis, the run folders' training logs and the saved images); nothing is
recomputed here except means and their bootstrap intervals, and the analysis when the results,
the human votes or the configuration changed since ``analysis.json`` was written (its key says
what it was computed from). Every table states its protocol.
"""
from __future__ import annotations

import time


from optiqa.report.document import Document, Figure, Table
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


def _ci_text(ci, digits=3) -> str:
    return "-" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


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
    _rehearsal(doc, r)           # a rehearsal says so, and what it replaced, first
    from optiqa.report.analysis import answer_section

    answer_section(doc, r)       # the answer first; the long tables follow as detail
    doc.heading("The study")
    _intro(doc, r)
    _assessment(doc, r)
    _optimization(doc, r)
    from optiqa.report.analysis import analysis_sections, human_section, recovery_section

    analysis_sections(doc, r)
    human_section(doc, r)
    recovery_section(doc, plan.cfg.recovery, plan.folder.recovery,
                     read_json(plan.folder.recovery_record))
    _transfer(doc, r)
    _visual(doc, r)
    _training(doc, r)
    if plan.cfg.rehearsal is not None:
        doc.stamp(REHEARSAL_STAMP)
    return doc.write(plan.folder.report)


REHEARSAL_STAMP = "REHEARSAL (shrunk CPU run, not results)"


def _rehearsal(doc: Document, r: StudyResults) -> None:
    """A rehearsal's page opens with what it is and every substitution it made."""
    from optiqa.core.rehearsal import recorded

    info = r.cfg.rehearsal
    if info is None:
        return
    subs = [*info.substitutions, *recorded(r.folder.rehearsal_record)]
    doc.para(f"This is a rehearsal of {info.source or r.cfg.name}: every cell, baseline, "
             "evaluator, assessment, transfer experiment and report section ran, shrunk, on a "
             "CPU, to show that the study runs end to end. Its numbers test the machinery and "
             "say nothing about the questions. Substitutions:", "note")
    doc.bullets(subs)


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


def _assessment(doc: Document, r: StudyResults) -> None:
    doc.heading("Metrics as IQA models")
    if not r.assess:
        doc.para("No assessment results (the assess stage has not run).")
        return
    for name, a in r.assess.items():
        within = a["evaluation"] == "within"
        rows = []
        for res in a["results"]:
            row = [res["metric"], res["n"]]
            row += [res.get("srcc"), _ci_text(res.get("srcc_ci")), res.get("krcc"),
                    _ci_text(res.get("krcc_ci"))]
            if within:
                row.append(res.get("strata_constant_scores", 0))
            else:
                row += [res.get("plcc"), _ci_text(res.get("plcc_ci"))]
            rows.append(row)
        headers = ["metric", "n", "SRCC", "95% CI", "KRCC", "95% CI"] + \
            (["groups with constant scores (SRCC 0)"] if within else ["PLCC", "95% CI"])
        warn = next((x.get("ci_warning") for x in a["results"] if x.get("ci_warning")), None)
        protocol = (f"{a['title']}: {len(a['items'])} items, {len(a['contents'])} reference "
                    f"contents; target {a['target']}. Scores correlated in the dataset's own "
                    "orientation (metric sign flipped where it differs): positive = agrees. ")
        protocol += ("SRCC/KRCC are means over (content, distortion) groups (the target is an "
                     "order within a group only); PLCC undefined. " if within else
                     "PLCC after the 4-parameter logistic fit (VQEG). ")
        protocol += (f"95% CIs: percentile bootstrap over reference contents "
                     f"({a['results'][0].get('n_boot', 0)} resamples).")
        if warn:
            protocol += f" Caution: {warn}."
        if a.get("label"):
            protocol = f"{a['label'].upper()}. " + protocol
        doc.table(Table(f"{a['title']}", headers, rows, csv_name=f"iqa_{name}",
                        protocol=protocol))


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
    from optiqa.study.names import parse_transfer_gan, parse_zeroshot

    doc.heading("Discriminators reused for IQA")
    if not r.transfer:
        doc.para("No transfer results (the study has no transfer block, or the stage has not "
                 "run).")
        return
    rows = []
    for name, t in r.transfer.items():
        if parse_zeroshot(name) is not None:
            flag = "*" if t.get("ci_warning") else ""
            rows.append([parse_zeroshot(name), "zero-shot logit", "-", t.get("srcc"),
                         _ci_text(t.get("srcc_ci")) + flag, t.get("krcc"), "-", "-"])
            continue
        test = t.get("test") or {}
        srcc, krcc = test.get("srcc") or {}, test.get("krcc") or {}
        init = t.get("init", "")
        if str(init).startswith("gan:"):
            info = t.get("init_info") or {}
            k, n = info.get("trained_maps"), info.get("maps")
            depth = ("" if k is None else
                     "; backbone frozen in D: its ImageNet weights" if k == 0 else
                     f"; the {k - 1} of {n - 1} stages D trained" if k < n else
                     "; every stage, trained by D")
            init = f"gan ({parse_transfer_gan(name)[1]}{depth})"
        gan = parse_transfer_gan(name)
        rows.append([gan[0] if gan else name, init,
                     t.get("mode"), srcc.get("mean"),
                     f"± {srcc['std']:.3f}" if srcc.get("std") is not None else "-",
                     krcc.get("mean"), srcc.get("median"), srcc.get("n")])
    first = next(iter(r.transfer.values()))
    probes = [t for n, t in r.transfer.items() if parse_zeroshot(n) is None]
    protocol = f"{first.get('dataset')}: {first.get('target', '')}. "
    if probes:
        # generated from the experiments' own settings, not assumed
        how = sorted({"linear probes on frozen features" if t.get("mode") == "frozen" else
                      f"the backbone fine-tuned with a {t.get('head')} head" for t in probes})
        repeats = sorted({str((t.get("test") or {}).get("srcc", {}).get("n")) for t in probes})
        protocol += (f"IQA models on the discriminator backbones: {' / '.join(how)}, trained on "
                     "content splits (test contents held out, early stopping on validation "
                     "contents); mean and standard deviation of the test SRCC over "
                     f"{' / '.join(repeats)} repeat(s). A gan initialisation uses only the "
                     "backbone stages its discriminator trained (random and imagenet: every "
                     "stage). ")
    if len(probes) < len(r.transfer):
        protocol += ("Zero-shot: the trained discriminator's own mean logit as a quality score "
                     "(higher = judged real), SRCC with a bootstrap CI over contents.")
    warn = next((t.get("ci_warning") for t in r.transfer.values() if t.get("ci_warning")), None)
    if warn:
        protocol += f" * {warn}."
    doc.table(Table("Transfer", ["experiment", "init", "mode", "SRCC (mean)", "± std / 95% CI",
                                 "KRCC (mean)", "SRCC (median)", "repeats"], rows,
                    csv_name="transfer", protocol=protocol))


def _training(doc: Document, r: StudyResults) -> None:
    from optiqa.report import figures

    curves = {}
    for name in [*r.plan.pretrain_jobs(), *(c.name for c in r.plan.cells)]:
        rows = r.folder.run(name).training_curves()
        if rows:
            curves[name] = rows
    doc.heading("Training curves")
    if not curves:
        doc.para("No training logs yet.")
        return
    doc.figure(Figure("Training losses per run", figures.training_curves(curves),
                      "training_curves", "Every logged loss term over the iterations "
                      "(generator and discriminator terms; log scale where positive)."))


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
