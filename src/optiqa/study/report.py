"""``optiqa report STUDY_DIR`` (and the study's last stage): report.html, report.md, CSV tables.

The report stage gathers the inputs of :func:`optiqa.report.study.render` from the study folder
as typed rows (assessment and transfer files as :mod:`optiqa.stats.rows.results`, read strictly
where they are read, the analysis, the recovery test, every GAN cell's gradient ratio, the run
folders' training logs and the saved images), parses the study's run names and writes the
sentences only the study can write (its design, its held-out check, its evaluation protocol);
the rendering is :mod:`optiqa.report`, which reads only the typed inputs it is given. Nothing is
recomputed here except the analysis, when the results, the human votes or the configuration
changed since ``analysis.json`` was written (its key says what it was computed from).
"""
from __future__ import annotations

from optiqa.report.figures import TrainingCurve
from optiqa.report.sections import Recovery, RecoveryRow
from optiqa.report.study import EvaluatorPanel, Intro, Model, StudyReport
from optiqa.report.visual import CropSource
from optiqa.stats.rows.results import TransferResult, ZeroShotResult
from optiqa.study.folder import read_json, read_row

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


def write_report(plan) -> dict:
    """Write the report into ``<study>/report/``; returns the paths written."""
    from optiqa.report.study import render

    return render(study_report(plan)).write(plan.folder.report)


def study_report(plan) -> StudyReport:
    """The typed inputs of the report, read from the study folder."""
    from optiqa.study.analysis import current_analysis
    from optiqa.study.assessment import assessment_files
    from optiqa.study.evaluation import current_evaluations
    from optiqa.study.names import parse_transfer_gan, parse_zeroshot
    from optiqa.study.transfer import transfer_experiments, zero_shot_names

    cfg, folder = plan.cfg, plan.folder
    # only what the current configuration produced: a file left by an earlier configuration of
    # the study (another grid, other test data) is not reported
    assess = {k: v for k, v in assessment_files(folder).items()
              if k in {d.name.lower() for d in cfg.assessment.datasets}}
    names = [n for n, _, _ in transfer_experiments(cfg, folder, plan.cells)] \
        if cfg.transfer else []
    names += zero_shot_names(cfg, folder, plan.cells)
    transfer = {n: t for n in names if (t := read_row(
        ZeroShotResult if parse_zeroshot(n) is not None else TransferResult,
        folder.transfer(n))) is not None}
    # the analysis of the results and votes as they are now: analysis.json when it is current,
    # else analysed again (so new votes or results never meet an old analysis)
    analysis, missing = current_analysis(plan)
    evaluations = current_evaluations(plan)
    rehearsal = None
    if cfg.rehearsal is not None:
        from optiqa.core.rehearsal import recorded

        rehearsal = (cfg.rehearsal.source or cfg.name,
                     [*cfg.rehearsal.substitutions, *recorded(folder.rehearsal_record)])
    curves = [training_curve(name, rows)
              for name in [*plan.pretrain_jobs(), *(c.name for c in plan.cells)]
              if (rows := folder.run(name).training_curves())]
    return StudyReport(
        title=f"optiqa study: {cfg.name}", intro=intro(plan), analysis=analysis,
        analysis_missing=missing, assessments=assess,
        panel=evaluator_panel(plan, evaluations) if evaluations else None,
        models=evaluated_models(plan, evaluations), recovery=recovery(plan),
        transfer=transfer,
        zero_shot={n: cell for n in transfer if (cell := parse_zeroshot(n)) is not None},
        gan={n: parsed for n in transfer if (parsed := parse_transfer_gan(n)) is not None},
        crops=crop_sources(plan), crop_size=cfg.report.crop_size, curves=curves,
        rehearsal=rehearsal)


def training_curve(run: str, rows: list[dict]) -> TrainingCurve:
    """A run's training log (``train_log`` records, one per iteration) as a curve: every
    quantity of its first record, one value per iteration (None where a record lacks it)."""
    terms = [k for k in rows[0] if k != "iteration"]
    return TrainingCurve(run, [r["iteration"] for r in rows],
                         {k: [r.get(k) for r in rows] for k in terms})


def intro(plan) -> Intro:
    from optiqa.study.heldout import heldout_sentence

    cfg = plan.cfg
    return Intro(design=design_sentence(plan),
                 data=[f"training images: {cfg.data.train}"]
                 + [f"test set {name}: {path}" for name, path in cfg.data.test.items()],
                 root=str(plan.folder.root), note=cfg.report.note,
                 description=cfg.description,
                 heldout=heldout_sentence(read_json(plan.folder.heldout), cfg))


def design_sentence(plan) -> str:
    """What was trained, generated from the cells and grids (never from the full cross product
    when ``grids`` trains a part of it), and what each cell's objective holds."""
    from optiqa.study.judges import pixel_weight
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


def evaluated_models(plan, evaluations: dict) -> list[Model]:
    """Every evaluated model, baselines first, each with the evaluators that may not judge it
    (:func:`optiqa.study.judges.excluded_evaluators`)."""
    from optiqa.study.judges import excluded_evaluators

    cells = {c.name: c for c in plan.cells}
    models = [Model(n) for n in evaluations if n not in cells]
    models += [Model(c.name, c.fidelity, c.discriminator,
                     c.adversarial_weight if c.adversarial else None,
                     excluded_evaluators(plan.cfg, c))
               for c in plan.cells if c.name in evaluations]
    return models


def evaluator_panel(plan, evaluations: dict) -> EvaluatorPanel:
    from optiqa.metrics import list_metrics
    from optiqa.study.gradient_ratios import ratio_rows, weight_sentence

    cfg = plan.cfg
    infos = list_metrics()
    first = next(iter(evaluations.values()), None) or {}
    n_images = sum(len(s["images"]) for s in (first.get("sets") or {}).values())
    return EvaluatorPanel([(m, infos[m].lower_better) for m in cfg.evaluators.metrics],
                          n_images, cfg.assessment.bootstrap, cfg.adversarial.relative,
                          table_note_y(cfg), ratio_rows(plan.folder, plan.cells),
                          weight_sentence(cfg))  # every GAN cell's ratio


def recovery(plan) -> Recovery | None:
    """The recovery test's rows and figure, read from its files when the study ran it (its
    completion record exists)."""
    import csv

    done = read_json(plan.folder.recovery_record)
    if plan.cfg.recovery is None or done is None:
        return None
    opts = plan.cfg.recovery
    with open(plan.folder.recovery / "recovery.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # the DISTS-style evaluator is the CSV's column named dists* (its start value: *_start)
    dists = [k for k in rows[0] if k.startswith("dists") and not k.endswith("_start")][0] \
        if rows else "dists"
    return Recovery(opts.image, opts.size, opts.steps, dists,
                    [RecoveryRow(x["metric"], x["start"], float(x["metric_result"]),
                                 float(x["psnr"]), float(x["ssim_y"]), float(x[dists]),
                                 x["verdict"]) for x in rows],
                    (plan.folder.recovery / done["figure"]).read_bytes())


def crop_sources(plan) -> list[CropSource]:
    """The crop grids of the visual comparison: the first ``report.crop_images`` test images of
    every task and set, with the model-free baseline, the shared pre-training and the shared
    start where evaluated, and one row per fidelity loss over the task's settings."""
    from optiqa.study import names

    cfg, folder, cells = plan.cfg, plan.folder, plan.cells
    out = []
    for task, t in cfg.task_opts.items():
        baselines = [(kind, names.baseline_name(kind, task))
                     for kind in (names.BICUBIC, names.PRETRAIN, names.START)]
        settings = list(dict.fromkeys((c.discriminator, c.adversarial_weight)
                                      for c in cells if c.task == task))
        for set_name in cfg.data.test:
            ref_dir = folder.test_set("reference", task, set_name)
            keys = sorted(p.stem for p in ref_dir.glob("*.png"))[:cfg.report.crop_images] \
                if ref_dir.is_dir() else []
            for key in keys:
                rows = []
                for metric in cfg.fidelity.metrics:
                    row = []
                    for d, w in settings:
                        cell = next((c for c in cells if c.task == task and c.fidelity == metric
                                     and c.discriminator == d and c.adversarial_weight == w),
                                    None)
                        row.append(("no D" if d == "none" else f"{d} w={w:g}",
                                    folder.run_image(cell.name, task, set_name, key)
                                    if cell else None))
                    rows.append((metric, row))
                out.append(CropSource(
                    task, set_name, key, t.scale,
                    folder.test_image("reference", task, set_name, key),
                    folder.test_image("input", task, set_name, key),
                    [(label, folder.run_image(run, task, set_name, key))
                     for label, run in baselines], rows))
    return out


def run_stage(ctx) -> dict:
    """The report stage as the runner calls it: the written files."""
    return {k: str(v) for k, v in write_report(ctx.plan).items()}
