"""Tables, images and manifests that the diagnostics write (text, CSV, JSON, PNG)."""
from __future__ import annotations

import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from optiqa.core.tables import format_table, write_csv, write_json

DISTS_NOTE = {
    "dists": "DISTS (Ding et al. 2020, official weights)",
    "dists_vgg16_r": "DISTS form on VGG-16-R (fixed-seed random VGG-16 weights, uniform "
                     "alpha/beta): a stand-in, the pretrained VGG-16 weights are not on this "
                     "machine",
}


def _num(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def safe_name(name: str) -> str:
    """A file-name-safe form of a reference or metric name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def environment() -> dict:
    """Where a result came from: machine, library versions, date (for the JSON records)."""
    import torch

    import optiqa

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_1_5_15min": list(load) if load else None,
            "machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "optiqa": getattr(optiqa, "__version__", None)}


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# -- recovery ------------------------------------------------------------------------------
RECOVERY_COLUMNS = ("reference", "metric", "start", "metric_start", "metric_result",
                    "metric_at_reference", "metric_anchor", "progress", "prefers_result",
                    "psnr_start", "psnr",
                    "psnr_y_start", "psnr_y", "ssim_y_start", "ssim_y")


def recovery_header(report) -> list[str]:
    o = report.options
    dists = report.evaluators[-1]
    return [
        f"Recovery test (Ding et al., IJCV 2021): {o.steps} Adam steps, lr {o.lr:g} cosine-decayed "
        f"to {o.lr * o.final_lr_fraction:g}, "
        + ("pixels projected on [0, 1]" if o.bounds == "project" else "x = sigmoid(p), Adam on p")
        + "; starts: "
        + f"{', '.join(o.starts)} (noise: uniform, seed {o.seed}; constant {o.constant:g}; blur "
        f"sigma {o.blur_sigma:g} px; JPEG quality {o.jpeg_quality})",
        "metric values in each metric's published orientation; progress = (loss(start) - "
        "loss(result)) / (loss(start) - loss(reference)), > 1: the metric prefers the result to "
        "the reference itself",
        "PSNR on RGB; PSNR-Y and SSIM-Y on the BT.601 Y channel; no border crop; "
        f"{dists}: {DISTS_NOTE.get(dists, dists)}",
        "anchor: the reference plus white Gaussian noise at 35 dB PSNR; verdict: recovered = "
        "PSNR (RGB) >= 35 dB; exposed = not recovered, yet the metric scores the result at least "
        "as well as the anchor (it prefers an image further from the reference); stuck = "
        "neither (the metric still rates the result worse than the anchor)",
    ]


def recovery_table(report) -> str:
    dists = report.evaluators[-1]
    headers = ["reference", "metric", "start", "metric", "at ref", "anchor", "progress", "PSNR",
               "PSNR-Y", "SSIM-Y", dists, "verdict"]
    rows = [[r["reference"], r["metric"], r["start"], _num(r["metric_result"]),
             _num(r["metric_at_reference"]), _num(r["metric_anchor"]), _num(r["progress"]),
             _num(r["psnr"]),
             _num(r["psnr_y"]),
             _num(r["ssim_y"]), _num(r[dists]), r["verdict"]] for r in report.rows]
    seconds = {(r.reference, r.metric): r.seconds for r in report.runs}
    lines = recovery_header(report) + [""] + [format_table(headers, rows, digits=4)]
    lines += ["", "time per metric (all starts in one batch): " + ", ".join(
        f"{m} {s:.1f} s" for (_, m), s in seconds.items()) + f"; total {report.seconds:.1f} s "
        f"wall-clock, {report.cpu_seconds:.1f} s CPU ({torch_threads()} threads)"]
    return "\n".join(lines)


def write_recovery(report, folder: str | os.PathLike, palette_colours: int | None = None,
                   images: bool = True) -> list[Path]:
    """``recovery.txt``, ``recovery.csv``, ``recovery.json``, ``recovery_<ref>.png`` (the grid)
    and, with ``images``, ``images/<ref>/{reference,start_<kind>,<metric>_<kind>}.png``."""
    from optiqa.data.io import write_image
    from optiqa.diagnose.figures import recovery_grid, save_figure

    folder = Path(folder)
    dists = report.evaluators[-1]
    columns = list(RECOVERY_COLUMNS) + [f"{dists}_start", dists, "verdict", "seconds"]
    written = [
        write_csv(folder / "recovery.csv", columns,
                  [[r[c] for c in columns] for r in report.rows]),
        _write_text(folder / "recovery.txt", recovery_table(report) + "\n"),
        write_json(folder / "recovery.json", {
            "options": {**vars(report.options), "starts": list(report.options.starts)},
            "evaluators": list(report.evaluators), "dists_note": DISTS_NOTE.get(dists, dists),
            "seconds": report.seconds, "cpu_seconds": report.cpu_seconds,
            "environment": environment(),
            "rows": [{k: _num(v) for k, v in r.items()} for r in report.rows],
            "losses": {f"{r.reference}/{r.metric}": r.losses.tolist() for r in report.runs}}),
    ]
    for ref_name in report.references:
        fig = recovery_grid(report, ref_name)
        written.append(save_figure(fig, folder / f"recovery_{safe_name(ref_name)}.png",
                                   palette_colours=palette_colours))
    if images:
        for ref_name, ref in report.references.items():
            sub = folder / "images" / safe_name(ref_name)
            written.append(write_image(sub / "reference.png", ref))
            runs = [r for r in report.runs if r.reference == ref_name]
            for j, kind in enumerate(runs[0].starts):
                written.append(write_image(sub / f"start_{kind}.png", runs[0].initial[j]))
            for run in runs:
                for j, kind in enumerate(run.starts):
                    written.append(write_image(sub / f"{safe_name(run.metric)}_{kind}.png",
                                               run.result[j]))
    return written


def _write_text(path: Path, text: str) -> Path:
    from optiqa.core.atomic import atomic_write_text

    return atomic_write_text(path, text)


# -- gradient spectrum ---------------------------------------------------------------------
def spectrum_table(spectra, header: str = "") -> str:
    labels = spectra[0].band_labels
    headers = ["metric", "||grad||"] + [f"{lab}" for lab in labels]
    rows = [[s.metric, s.gradient_norm] + [float(v) for v in s.band_shares] for s in spectra]
    rows.append(["(white)", None] + [float(v) for v in spectra[0].white_shares])
    lines = [header] if header else []
    lines += ["share of the loss gradient's energy per octave band of radial frequency "
              "(cycles/pixel); '(white)': the shares of a white-noise gradient", ""]
    return "\n".join(lines + [format_table(headers, rows, digits=3)])


def write_spectrum(spectra, folder: str | os.PathLike, header: str = "",
                   image_note: dict | None = None, palette_colours: int | None = None
                   ) -> list[Path]:
    """``spectrum.txt``, ``spectrum.csv`` (band shares), ``spectrum_radial.csv`` (relative power
    per ring), ``spectrum.json`` and the figures ``spectrum.png``, ``spectrum_bands.png``."""
    from optiqa.diagnose.figures import band_share_figure, save_figure, spectrum_figure

    folder = Path(folder)
    rows = [s.as_row() for s in spectra]
    cols = list(rows[0])
    radial_cols = ["frequency"] + [s.metric for s in spectra]
    radial = [[float(f)] + [float(s.relative_power[i]) for s in spectra]
              for i, f in enumerate(spectra[0].frequencies)]
    return [
        _write_text(folder / "spectrum.txt", spectrum_table(spectra, header) + "\n"),
        write_csv(folder / "spectrum.csv", cols, [[r[c] for c in cols] for r in rows]),
        write_csv(folder / "spectrum_radial.csv", radial_cols, radial),
        write_json(folder / "spectrum.json", {"header": header, "images": image_note or {},
                                              "environment": environment(), "rows": rows}),
        save_figure(spectrum_figure(spectra, header), folder / "spectrum.png",
                    palette_colours=palette_colours),
        save_figure(band_share_figure(spectra), folder / "spectrum_bands.png",
                    palette_colours=palette_colours),
    ]


# -- local behaviour -----------------------------------------------------------------------
def local_table(scans, header: str = "") -> str:
    headers = ["metric", "loss(ref)", "argmin t (restored)", "max |argmin t| (random)",
               "ref is minimum", "k restored", "k random", "flatness r(.25)/r(1)"]
    rows = []
    for s in scans:
        r = s.as_row()
        rows.append([r["metric"], r["loss_at_reference"], r["restored_argmin"],
                     r["random_argmin_max"], r["reference_is_minimum"], r["restored_exponent"],
                     r["random_exponent_mean"], r["flatness"]])
    lines = [header] if header else []
    lines += ["loss along x = clip(ref + t d): d = restored - ref, or white Gaussian noise of the "
              "same length; k = log2(r(2s) / r(s)) at s = 0.1 (2: quadratic bowl, 1: cone, > 2: "
              "flat-bottomed, inf: no rise at all up to s); flatness 1/16 for a quadratic, 1/4 "
              "for a cone", ""]
    return "\n".join(lines + [format_table(headers, rows, digits=3)])


def write_local(scans, folder: str | os.PathLike, header: str = "",
                image_note: dict | None = None, palette_colours: int | None = None
                ) -> list[Path]:
    """``local.txt``, ``local.csv``, ``local.json`` (with every curve) and ``local.png``."""
    from optiqa.diagnose.figures import local_figure, save_figure

    folder = Path(folder)
    rows = [s.as_row() for s in scans]
    cols = list(rows[0])
    curves = {s.metric: {"t": s.t.tolist(), "restored": s.restored_rise.tolist(),
                         "random": s.random_rise.tolist()} for s in scans}
    return [
        _write_text(folder / "local.txt", local_table(scans, header) + "\n"),
        write_csv(folder / "local.csv", cols, [[r[c] for c in cols] for r in rows]),
        # an exponent can be inf (a flat-bottomed valley): JSON gets Infinity, as Python reads it
        write_json(folder / "local.json", {"header": header, "images": image_note or {},
                                           "environment": environment(), "rows": rows,
                                           "curves": curves}),
        save_figure(local_figure(scans), folder / "local.png", palette_colours=palette_colours),
    ]


# -- MAD competition and eigendistortions ----------------------------------------------------
MANIFEST_SCHEMA = "optiqa.diagnose.stimuli/1"


def write_mad(result, folder: str | os.PathLike, palette_colours: int | None = None
              ) -> list[Path]:
    """Images, ``manifest.json`` (for a pairwise-judgment app), ``mad.txt`` and ``mad.png``.

    In the manifest, each comparison pairs the two images that one metric holds equal (same
    distance to the reference) while the other metric pushed them apart; if people find them
    clearly different, the metric that holds them equal is the weaker one.
    """
    from optiqa.data.io import write_image
    from optiqa.diagnose.figures import mad_figure, save_figure

    folder = Path(folder)
    a, b = result.metric_a, result.metric_b
    written = [write_image(folder / "reference.png", result.reference[0]),
               write_image(folder / "initial.png", result.initial[0])]
    images = {}
    for img in result.images:
        file = f"{img.minmax}_{safe_name(img.optimized)}.png"
        written.append(write_image(folder / file, img.image[0]))
        images[img.name] = {"file": file, "optimized": img.optimized, "direction": img.minmax,
                            "held_fixed": img.fixed, "distances": img.values,
                            "fixed_relative_drift": img.fixed_drift, "tradeoff": img.tradeoff,
                            "steps": img.steps_run}
    comparisons = [{"reference": "reference.png", "first": images[f"min_{opt}"]["file"],
                    "second": images[f"max_{opt}"]["file"], "equal_according_to": fixed,
                    "pushed_apart_by": opt,
                    "question": "Which of the two images is closer to the reference?"}
                   for opt, fixed in ((a, b), (b, a))]
    o = result.options
    manifest = {"schema": MANIFEST_SCHEMA, "kind": "mad_competition",
                "method": "Wang & Simoncelli, J. Vision 2008, synthesised with plenoptic",
                "metrics": [a, b], "reference": "reference.png", "initial": {
                    "file": "initial.png", "mse": result.initial_mse,
                    "distances": result.initial_values},
                "images": images, "comparisons": comparisons,
                "options": vars(o), "environment": environment()}
    written.append(write_json(folder / "manifest.json", manifest))
    written.append(_write_text(folder / "mad.txt", mad_table(result) + "\n"))
    written.append(save_figure(mad_figure(result), folder / "mad.png",
                               palette_colours=palette_colours))
    return written


def mad_table(result) -> str:
    a, b = result.metric_a, result.metric_b
    headers = ["image", a, b, "held fixed", "its drift"]
    rows = [["initial", result.initial_values[a], result.initial_values[b], "-", None]]
    rows += [[img.name, img.values[a], img.values[b], img.fixed, img.fixed_drift]
             for img in result.images]
    return "\n".join([
        f"MAD competition {a} vs {b}: distances to the reference (metric.loss(x, ref) - "
        f"metric.loss(ref, ref), 0 = identical); initial image: reference + Gaussian noise, "
        f"std {result.options.noise_std:g} (MSE {result.initial_mse:.3g} after clipping)", "",
        format_table(headers, rows, digits=4)])


def write_eigen(result, folder: str | os.PathLike, palette_colours: int | None = None
                ) -> list[Path]:
    """Images (the distortions, shown at full contrast, and the reference plus each),
    ``manifest.json``, ``eigen.txt`` and ``eigen.png``."""
    from optiqa.data.io import write_image
    from optiqa.diagnose.figures import eigen_figure, save_figure

    folder = Path(folder)
    written = [write_image(folder / "reference.png", result.reference[0])]
    images = {}
    for k, which in enumerate(("top", "bottom")):
        d = result.distortions[k][0]
        shown = 0.5 + 0.5 * d / d.abs().max().clamp_min(1e-12)
        written.append(write_image(folder / f"{which}_distortion.png", shown))
        written.append(write_image(folder / f"reference_plus_{which}.png",
                                   result.perturbed[k][0]))
        images[which] = {"file": f"reference_plus_{which}.png",
                         "distortion_file": f"{which}_distortion.png",
                         "hessian_eigenvalue": result.eigenvalues[k],
                         "curvature_sign": result.curvature_signs[k],
                         "converged": result.converged[k],
                         "loss": result.perturbed_losses[k]}
    manifest = {"schema": MANIFEST_SCHEMA, "kind": "eigendistortion",
                "method": "Berardino et al., NeurIPS 2017: extreme eigenvectors of the Hessian "
                          "of metric.loss(., ref) at the reference, by plenoptic's power method",
                "metric": result.metric, "reference": "reference.png",
                "distortion_rms": result.epsilon, "images": images,
                "comparisons": [{"reference": "reference.png", "first": "reference_plus_top.png",
                                 "second": "reference_plus_bottom.png",
                                 "question": "Which of the two images differs more from the "
                                             "reference?",
                                 "expected_by_metric": "reference_plus_top.png"}],
                "options": vars(result.options), "environment": environment()}
    written.append(write_json(folder / "manifest.json", manifest))
    written.append(_write_text(folder / "eigen.txt", eigen_table(result) + "\n"))
    written.append(save_figure(eigen_figure(result), folder / "eigen.png",
                               palette_colours=palette_colours))
    return written


def eigen_table(result) -> str:
    headers = ["distortion", "|Hessian eigenvalue|", "curvature sign", "converged",
               f"loss at RMS {result.epsilon:.3g}"]
    rows = [[which, result.eigenvalues[k], result.curvature_signs[k], result.converged[k],
             result.perturbed_losses[k]] for k, which in enumerate(("top", "bottom"))]
    return "\n".join([
        f"Eigendistortions of {result.metric} at the reference (Hessian of metric.loss; unit "
        "vectors; 'converged': plenoptic's power method met its stop criterion)", "",
        format_table(headers, rows, digits=4)])
