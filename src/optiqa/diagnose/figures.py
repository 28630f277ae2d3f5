"""Matplotlib figures of the diagnostics (object API only: no pyplot state, no backend change).

Every function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure` writes it.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from optiqa.core.tables import format_value

VERDICT_COLOURS = {"recovered": "#1a9850", "exposed": "#d73027", "stuck": "#878787"}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _show(ax, img: torch.Tensor, title: str | None = None, colour: str | None = None,
          fontsize: float = 7):
    """An RGB ``(3, H, W)`` image in [0, 1] without axes; an optional coloured frame."""
    ax.imshow(img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy(),
              interpolation="lanczos")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_edgecolor(colour)
            spine.set_linewidth(2.5)
    if title:
        ax.set_title(title, fontsize=fontsize, pad=2)


def save_figure(fig, path: str | os.PathLike, dpi: float | None = None,
                palette_colours: int | None = None) -> Path:
    """Write ``fig`` as PNG atomically; ``palette_colours`` quantises it to that many colours
    (Pillow's median cut), which makes a grid of photos 3-4x smaller for the docs."""
    from PIL import Image

    from optiqa.core.atomic import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, bbox_inches="tight", pad_inches=0.05)
    im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if palette_colours:
        im = im.quantize(colors=palette_colours, method=Image.Quantize.MEDIANCUT, dither=0)
    return atomic_write(path, lambda tmp: im.save(tmp, format="PNG", optimize=True))


def recovery_grid(report, reference: str, tile: float = 1.3):
    """Metrics (rows) x initial images (columns) for one reference: the starts on top, then what
    each metric made of them, framed by verdict (green recovered, red exposed, grey stuck) and
    labelled with PSNR (RGB) and PSNR-Y, SSIM-Y and DISTS of the result to the reference."""
    runs = [r for r in report.runs if r.reference == reference]
    starts = runs[0].starts
    dists_name = report.evaluators[-1]
    rows = {(r["metric"], r["start"]): r for r in report.rows if r["reference"] == reference}
    n_rows, n_cols = len(runs) + 1, len(starts) + 1
    # rows: a square image plus two lines of labels (~0.3 in) under it
    fig = _figure(tile * n_cols, (tile + 0.3) * n_rows + 0.55)
    axes = fig.subplots(n_rows, n_cols, squeeze=False,
                        gridspec_kw={"wspace": 0.05, "hspace": 0.3, "left": 0.01, "right": 0.99,
                                     "top": 1 - 0.3 / ((tile + 0.3) * n_rows + 0.55),
                                     "bottom": 0.3 / ((tile + 0.3) * n_rows + 0.55)})
    _show(axes[0, 0], report.references[reference], "reference", fontsize=8)
    for j, kind in enumerate(starts):
        r = rows[(runs[0].metric, kind)]
        _show(axes[0, j + 1], runs[0].initial[j], f"start: {kind}", fontsize=8)
        axes[0, j + 1].set_xlabel(f"{format_value(r['psnr_start'], 1)} / "
                                  f"{format_value(r['psnr_y_start'], 1)} dB", fontsize=6.5,
                                  labelpad=1.5)
    for i, run in enumerate(runs):
        ax = axes[i + 1, 0]
        ax.axis("off")
        ax.text(0.92, 0.5, run.metric, ha="right", va="center", fontsize=9, weight="bold",
                transform=ax.transAxes)
        for j, kind in enumerate(starts):
            r = rows[(run.metric, kind)]
            ax = axes[i + 1, j + 1]
            _show(ax, run.result[j], None, VERDICT_COLOURS[r["verdict"]])
            ax.set_xlabel(f"{format_value(r['psnr'], 1)} / {format_value(r['psnr_y'], 1)} dB\n"
                          f"SSIM-Y {format_value(r['ssim_y'], 2)}  D {format_value(r[dists_name], 2)}",
                          fontsize=6, labelpad=1.5, linespacing=1.1)
    o = report.options
    fig.suptitle(f"Recovery test: '{reference}', {o.steps} Adam steps", fontsize=9, y=1.0,
                 va="top")
    fig.text(0.5, 0.0,
             f"under each image: PSNR (RGB) / PSNR-Y of the result; SSIM-Y; D = {dists_name}\n"
             "frame: green recovered (PSNR >= 35 dB); red exposed (not recovered, yet the metric\n"
             "scores it at least as well as the reference + white noise at 35 dB); grey neither",
             ha="center", va="top", fontsize=6.5, linespacing=1.2)
    return fig


def spectrum_figure(spectra, title: str = ""):
    """Radially averaged power spectra of loss gradients, relative to white (1 = flat)."""
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    for s in spectra:
        keep = s.frequencies > 0
        ax.loglog(s.frequencies[keep], s.relative_power[keep], label=s.metric, lw=1.4)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("spatial frequency (cycles / pixel)")
    ax.set_ylabel("gradient power / white-spectrum level")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or "Which frequencies each loss pushes", fontsize=9)
    return fig


def band_share_figure(spectra):
    """Stacked shares of gradient energy per octave band, one bar per metric."""
    fig = _figure(max(4.0, 0.45 * len(spectra) + 2.0), 3.8)
    ax = fig.subplots()
    names = [s.metric for s in spectra]
    bands = spectra[0].band_labels
    shares = np.array([s.band_shares for s in spectra])  # (metrics, bands)
    cmap = _cmap("viridis")
    bottom = np.zeros(len(spectra))
    for k, label in enumerate(bands):
        ax.bar(names, shares[:, k], bottom=bottom, color=cmap(k / max(1, len(bands) - 1)),
               label=label, width=0.8)
        bottom += shares[:, k]
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of gradient energy")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=6, title="band (cycles/pixel)", title_fontsize=6,
              bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.set_title("Gradient energy per octave band", fontsize=9)
    return fig


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def local_figure(scans, cols: int = 4):
    """Loss along lines through the reference, one panel per metric: the line to the restored
    image (thick) and random directions of the same length (thin), rises divided by the rise at
    the restored image."""
    n = len(scans)
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    fig = _figure(2.4 * cols, 2.0 * rows + 0.5)
    fig.set_layout_engine("constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, scan in zip(axes, scans):
        t = scan.t.numpy()
        norm = scan.normaliser
        for k, curve in enumerate(scan.random_rise):
            ax.plot(t, curve.numpy() / norm, color="0.6", lw=0.8,
                    label="random directions" if k == 0 else None)
        ax.plot(t, scan.restored_rise.numpy() / norm, color="#d73027", lw=1.8,
                label="towards restored")
        ax.axvline(0, color="k", lw=0.6, ls=":")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{scan.metric}: min at t={scan.restored_argmin:+.2f}, "
                     f"k={format_value(scan.restored_exponent, 2)}", fontsize=7.5)
        ax.tick_params(labelsize=6)
        ax.grid(True, lw=0.3, alpha=0.5)
    for ax in axes[n:]:
        ax.axis("off")
    axes[0].legend(fontsize=6, loc="upper center")
    fig.supxlabel("t  (x = ref + t d;  t = 1 is the restored image)", fontsize=8)
    fig.supylabel("loss(x) - loss(ref), / its value at t = 1", fontsize=8)
    return fig


def mad_figure(result):
    """The reference, the initial image and the four MAD images with both metrics' values."""
    fig = _figure(9.0, 2.15)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, 6, squeeze=False)[0]
    _show(axes[0], result.reference[0], "reference", fontsize=7)
    a, b = result.metric_a, result.metric_b
    _show(axes[1], result.initial[0], f"initial (MSE {result.initial_mse:.2g})\n"
          f"{a} {result.initial_values[a]:.3g}, {b} {result.initial_values[b]:.3g}", fontsize=6)
    for ax, img in zip(axes[2:], result.images):
        _show(ax, img.image[0],
              f"{img.minmax} {img.optimized}, {img.fixed} fixed\n"
              f"{a} {img.values[a]:.3g}, {b} {img.values[b]:.3g}", fontsize=6)
    fig.suptitle(f"MAD competition: {a} vs {b} (values are distances to the reference: 0 = "
                 "identical)", fontsize=8)
    fig.get_layout_engine().set(h_pad=0.02, w_pad=0.02)
    return fig


def eigen_figure(result):
    """The reference, the top and bottom eigendistortions and the reference plus each."""
    fig = _figure(7.5, 2.1)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, 5, squeeze=False)[0]
    _show(axes[0], result.reference[0], "reference", fontsize=7)
    for k, (ax_d, ax_i, which) in enumerate(((axes[1], axes[2], "top"),
                                            (axes[3], axes[4], "bottom"))):
        d = result.distortions[k]
        shown = 0.5 + 0.5 * d / d.abs().max().clamp_min(1e-12)
        note = "" if result.converged[k] else " (not converged)"
        _show(ax_d, shown[0], f"{which} eigendistortion\neigenvalue {result.eigenvalues[k]:.3g}"
              f"{note}", fontsize=6.5)
        _show(ax_i, result.perturbed[k][0], f"reference + {which}, RMS {result.epsilon:.2g}\n"
              f"loss {result.perturbed_losses[k]:.3g}", fontsize=6.5)
    fig.suptitle(f"Eigendistortions of {result.metric} (Hessian of its loss at the reference)",
                 fontsize=8)
    return fig
