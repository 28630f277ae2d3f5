"""The study report's own sections (the analysis' are in :mod:`optiqa.report.analysis`).

Each function renders data it is given (assessment files, the optimization table's rows,
transfer results, training logs) into a :class:`~optiqa.report.document.Document`; the study's
report stage (:mod:`optiqa.study.report`) reads the study folder and calls them. Nothing here
imports :mod:`optiqa.study`, reads a file or parses a run name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optiqa.report.document import Document, Figure, Table


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


def assessment_section(doc: Document, assess: dict) -> None:
    """The fidelity metrics as IQA models: one table per dataset (``assess/<dataset>.json``)."""
    doc.heading("Metrics as IQA models")
    if not assess:
        doc.para("No assessment results (the assess stage has not run).")
        return
    for name, a in assess.items():
        within = a["evaluation"] == "within"
        rows = []
        for res in a["results"]:
            row = [res["metric"], res["n"]]
            row += [res.get("srcc"), ci_text(res.get("srcc_ci")), res.get("krcc"),
                    ci_text(res.get("krcc_ci"))]
            if within:
                row.append(res.get("strata_constant_scores", 0))
            else:
                row += [res.get("plcc"), ci_text(res.get("plcc_ci"))]
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


def transfer_section(doc: Document, transfer: dict, zero_shot: dict, gan: dict) -> None:
    """The discriminators reused for IQA: ``transfer`` maps each experiment's name to its result
    (``transfer/<name>.json``); ``zero_shot`` maps the zero-shot ones to their cell, ``gan``
    the gan-initialised ones to ``(experiment without its cell, cell)`` (the study parses its
    own names; this module does not)."""
    doc.heading("Discriminators reused for IQA")
    if not transfer:
        doc.para("No transfer results (the study has no transfer block, or the stage has not "
                 "run).")
        return
    rows = []
    for name, t in transfer.items():
        if name in zero_shot:
            flag = "*" if t.get("ci_warning") else ""
            rows.append([zero_shot[name], "zero-shot logit", "-", t.get("srcc"),
                         ci_text(t.get("srcc_ci")) + flag, t.get("krcc"), "-", "-"])
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
            init = f"gan ({gan[name][1]}{depth})"
        rows.append([gan[name][0] if name in gan else name, init,
                     t.get("mode"), srcc.get("mean"),
                     f"± {srcc['std']:.3f}" if srcc.get("std") is not None else "-",
                     krcc.get("mean"), srcc.get("median"), srcc.get("n")])
    first = next(iter(transfer.values()))
    probes = [t for n, t in transfer.items() if n not in zero_shot]
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
    if len(probes) < len(transfer):
        protocol += ("Zero-shot: the trained discriminator's own mean logit as a quality score "
                     "(higher = judged real), SRCC with a bootstrap CI over contents.")
    warn = next((t.get("ci_warning") for t in transfer.values() if t.get("ci_warning")), None)
    if warn:
        protocol += f" * {warn}."
    doc.table(Table("Transfer", ["experiment", "init", "mode", "SRCC (mean)", "± std / 95% CI",
                                 "KRCC (mean)", "SRCC (median)", "repeats"], rows,
                    csv_name="transfer", protocol=protocol))


def training_section(doc: Document, curves: dict[str, list[dict]]) -> None:
    """Every run's logged losses (``{run: train_log rows}``, runs without a log left out)."""
    from optiqa.report import figures

    doc.heading("Training curves")
    if not curves:
        doc.para("No training logs yet.")
        return
    doc.figure(Figure("Training losses per run", figures.training_curves(curves),
                      "training_curves", "Every logged loss term over the iterations "
                      "(generator and discriminator terms; log scale where positive)."))


@dataclass
class Recovery:
    """The recovery test as the study ran it: its image, crop size and steps (the study config's
    ``recovery``), its table (one row per loss and start) and its figure."""

    image: str
    size: int
    steps: int
    table: Path
    figure: Path


def recovery_section(doc: Document, recovery: Recovery) -> None:
    """The recovery test of the fidelity metrics."""
    import csv

    doc.heading("Why a metric fails as a loss: the recovery test")
    with open(recovery.table, newline="") as f:
        rows = list(csv.DictReader(f))
    dists = [k for k in rows[0] if k.startswith("dists") and not k.endswith("_start")][0] \
        if rows else "dists"
    table = [[x["metric"], x["start"], float(x["metric_result"]), float(x["psnr"]),
              float(x["ssim_y"]), float(x[dists]), x["verdict"]] for x in rows]
    doc.table(Table(f"Recovery of '{recovery.image}' ({recovery.size} px, {recovery.steps} Adam "
                    "steps)",
                    ["loss", "start", "loss value at the end", "PSNR (RGB)", "SSIM-Y", dists,
                     "verdict"], table, csv_name="recovery", digits=3,
                    protocol="Each fidelity metric, minimised over the pixels from each start "
                    "(Ding et al., IJCV 2021). Recovered: PSNR >= 35 dB. Exposed: not recovered, "
                    "yet the metric scores the result at least as well as the reference plus "
                    "noise at 35 dB. The image is a held-out test image."))
    doc.figure(Figure("Recovery test", Path(recovery.figure).read_bytes(), "recovery",
                      "Rows: fidelity losses; columns: starts and their results."))
