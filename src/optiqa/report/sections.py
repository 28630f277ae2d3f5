"""The study report's own sections (the analysis' are in :mod:`optiqa.report.analysis`).

Each function renders typed inputs (the assessment and transfer result files as rows of
:mod:`optiqa.stats.rows.results`, the recovery test's rows, the training logs as
:class:`~optiqa.report.figures.TrainingCurve`) into a :class:`~optiqa.report.document.Document`;
the study's report stage (:mod:`optiqa.study.report`) reads the study folder, builds the rows
and calls them. Nothing here imports :mod:`optiqa.study`, reads a file, reads a dict by string
keys or parses a run name.
"""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.report.document import Document, Figure, Table
from optiqa.report.figures import TrainingCurve
from optiqa.stats.rows.results import AssessmentFile, InitInfo, TransferResult, ZeroShotResult


def ci_text(ci, digits=3) -> str:
    """``[lo, hi]`` of an interval, ``-`` when there is none."""
    return "-" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def rehearsal_section(doc: Document, rehearsed: str, substitutions: list[str]) -> None:
    """A rehearsal's page opens with what it is (a rehearsal of ``rehearsed``) and every
    substitution it made."""
    subs = list(substitutions)
    doc.para(f"This is a rehearsal of {rehearsed}: every cell, baseline, "
             "evaluator, assessment, transfer experiment and report section ran, shrunk, on a "
             "CPU, to show that the study runs end to end. Its numbers test the machinery and "
             "say nothing about the questions. Substitutions:", "note")
    doc.bullets(subs)


def assessment_section(doc: Document, assess: dict[str, AssessmentFile]) -> None:
    """The fidelity metrics as IQA models: one table per dataset (``assess/<dataset>.json`` as
    :class:`~optiqa.stats.rows.results.AssessmentFile`)."""
    doc.heading("Metrics as IQA models")
    if not assess:
        doc.para("No assessment results (the assess stage has not run).")
        return
    for name, a in assess.items():
        within = a.evaluation == "within"
        rows = []
        for res in a.results:
            row = [res.metric, res.n, res.srcc, ci_text(res.srcc_ci), res.krcc,
                   ci_text(res.krcc_ci)]
            if within:
                row.append(res.strata_constant_scores or 0)
            else:
                row += [res.plcc, ci_text(res.plcc_ci)]
            rows.append(row)
        headers = ["metric", "n", "SRCC", "95% CI", "KRCC", "95% CI"] + \
            (["groups with constant scores (SRCC 0)"] if within else ["PLCC", "95% CI"])
        warn = next((x.ci_warning for x in a.results if x.ci_warning), None)
        protocol = (f"{a.title}: {len(a.items)} items, {len(a.contents)} reference "
                    f"contents; target {a.target}. Scores correlated in the dataset's own "
                    "orientation (metric sign flipped where it differs): positive = agrees. ")
        protocol += ("SRCC/KRCC are means over (content, distortion) groups (the target is an "
                     "order within a group only); PLCC undefined. " if within else
                     "PLCC after the 4-parameter logistic fit (VQEG). ")
        protocol += (f"95% CIs: percentile bootstrap over reference contents "
                     f"({a.results[0].n_boot if a.results else 0} resamples).")
        if warn:
            protocol += f" Caution: {warn}."
        if a.label:
            protocol = f"{a.label.upper()}. " + protocol
        doc.table(Table(f"{a.title}", headers, rows, csv_name=f"iqa_{name}",
                        protocol=protocol))


def _gan_depth(info: InitInfo) -> str:
    """Which backbone stages a gan initialisation took from its discriminator."""
    k, n = info.trained_maps, info.maps
    return ("" if k is None else
            "; backbone frozen in D: its ImageNet weights" if k == 0 else
            f"; the {k - 1} of {n - 1} stages D trained" if k < n else
            "; every stage, trained by D")


def transfer_section(doc: Document, transfer: dict[str, TransferResult | ZeroShotResult],
                     zero_shot: dict[str, str], gan: dict[str, tuple[str, str]]) -> None:
    """The discriminators reused for IQA: ``transfer`` maps each experiment's name to its result
    (``transfer/<name>.json`` as a :class:`~optiqa.stats.rows.results.TransferResult`, or a
    :class:`~optiqa.stats.rows.results.ZeroShotResult` for those in ``zero_shot``);
    ``zero_shot`` maps the zero-shot ones to their cell, ``gan`` the gan-initialised ones to
    ``(experiment without its cell, cell)`` (the study parses its own names; this module does
    not)."""
    doc.heading("Discriminators reused for IQA")
    if not transfer:
        doc.para("No transfer results (the study has no transfer block, or the stage has not "
                 "run).")
        return
    rows = []
    for name, t in transfer.items():
        if name in zero_shot:
            flag = "*" if t.ci_warning else ""
            rows.append([zero_shot[name], "zero-shot logit", "-", t.srcc,
                         ci_text(t.srcc_ci) + flag, t.krcc, "-", "-"])
            continue
        srcc = t.test.srcc if t.test else None
        krcc = t.test.krcc if t.test else None
        init = t.init
        if init.startswith("gan:"):
            init = f"gan ({gan[name][1]}{_gan_depth(t.init_info)})"
        rows.append([gan[name][0] if name in gan else name, init, t.mode,
                     srcc.mean if srcc else None,
                     f"± {srcc.std:.3f}" if srcc and srcc.std is not None else "-",
                     krcc.mean if krcc else None, srcc.median if srcc else None,
                     srcc.n if srcc else None])
    first = next(iter(transfer.values()))
    probes = [t for n, t in transfer.items() if n not in zero_shot]
    protocol = f"{first.dataset}: {first.target}. "
    if probes:
        # generated from the experiments' own settings, not assumed
        how = sorted({"linear probes on frozen features" if t.mode == "frozen" else
                      f"the backbone fine-tuned with a {t.head} head" for t in probes})
        repeats = sorted({str(t.test.srcc.n if t.test and t.test.srcc else None)
                          for t in probes})
        protocol += (f"IQA models on the discriminator backbones: {' / '.join(how)}, trained on "
                     "content splits (test contents held out, early stopping on validation "
                     "contents); mean and standard deviation of the test SRCC over "
                     f"{' / '.join(repeats)} repeat(s). A gan initialisation uses only the "
                     "backbone stages its discriminator trained (random and imagenet: every "
                     "stage). ")
    if len(probes) < len(transfer):
        protocol += ("Zero-shot: the trained discriminator's own mean logit as a quality score "
                     "(higher = judged real), SRCC with a bootstrap CI over contents.")
    # only a zero-shot result has a bootstrap interval, and so a caution about it
    warn = next((t.ci_warning for n, t in transfer.items() if n in zero_shot and t.ci_warning),
                None)
    if warn:
        protocol += f" * {warn}."
    doc.table(Table("Transfer", ["experiment", "init", "mode", "SRCC (mean)", "± std / 95% CI",
                                 "KRCC (mean)", "SRCC (median)", "repeats"], rows,
                    csv_name="transfer", protocol=protocol))


def training_section(doc: Document, curves: list[TrainingCurve]) -> None:
    """Every run's logged losses (runs without a log left out)."""
    from optiqa.report import figures

    doc.heading("Training curves")
    if not curves:
        doc.para("No training logs yet.")
        return
    doc.figure(Figure("Training losses per run", figures.training_curves(curves),
                      "training_curves", "Every logged loss term over the iterations "
                      "(generator and discriminator terms; log scale where positive)."))


@dataclass
class RecoveryRow:
    """One fidelity loss minimised from one start (a row of the recovery test's
    ``recovery.csv``): its own value at the end, PSNR (RGB), SSIM-Y and the DISTS-style
    evaluator of the result, and the verdict."""

    metric: str
    start: str
    loss_result: float
    psnr: float
    ssim_y: float
    dists: float
    verdict: str


@dataclass
class Recovery:
    """The recovery test as the study ran it: its image, crop size and steps (the study config's
    ``recovery``), the DISTS-style evaluator's name, its rows and its figure (PNG bytes)."""

    image: str
    size: int
    steps: int
    dists: str
    rows: list[RecoveryRow]
    figure: bytes


def recovery_section(doc: Document, recovery: Recovery) -> None:
    """The recovery test of the fidelity metrics."""
    doc.heading("Why a metric fails as a loss: the recovery test")
    table = [[x.metric, x.start, x.loss_result, x.psnr, x.ssim_y, x.dists, x.verdict]
             for x in recovery.rows]
    doc.table(Table(f"Recovery of '{recovery.image}' ({recovery.size} px, {recovery.steps} Adam "
                    "steps)",
                    ["loss", "start", "loss value at the end", "PSNR (RGB)", "SSIM-Y",
                     recovery.dists, "verdict"], table, csv_name="recovery", digits=3,
                    protocol="Each fidelity metric, minimised over the pixels from each start "
                    "(Ding et al., IJCV 2021). Recovered: PSNR >= 35 dB. Exposed: not recovered, "
                    "yet the metric scores the result at least as well as the reference plus "
                    "noise at 35 dB. The image is a held-out test image."))
    doc.figure(Figure("Recovery test", recovery.figure, "recovery",
                      "Rows: fidelity losses; columns: starts and their results."))
