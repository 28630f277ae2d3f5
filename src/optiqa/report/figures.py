"""The report's figures (matplotlib, Agg): each a function of typed inputs (the dataclasses
below, or arrays) returning PNG bytes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from optiqa.report.document import png


@dataclass
class ScatterPanel:
    """One scatter of :func:`scatter_panels`: points ``(x[i], y[i])`` named ``labels[i]``, a
    ``note`` written under the title."""

    title: str
    x: list[float]
    y: list[float]
    labels: list[str]
    note: str = ""


@dataclass
class WeightPanel:
    """One panel of :func:`weight_curves`: per series (a label) its own adversarial weights
    and one value per weight (None: not drawn)."""

    title: str
    series: dict[str, tuple[list[float], list[float | None]]] = field(default_factory=dict)
    ylabel: str = ""


@dataclass
class TrainingCurve:
    """One run's logged values over the iterations: ``terms`` maps each logged quantity (loss
    terms, learning rate, ...) to one value per iteration (None where not logged)."""

    run: str
    iterations: list[int]
    terms: dict[str, list[float | None]]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _small_multiples(n: int, cols: int, width: float, height: float):
    """``(fig, axes)`` for ``n`` panels in rows of ``cols`` (each ``width`` x ``height``
    inches), the unused axes of the last row switched off."""
    plt = _plt()
    rows, cols = _grid(n, cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


def scatter_panels(panels: list[ScatterPanel], xlabel: str, ylabel: str) -> bytes:
    """One scatter per :class:`ScatterPanel`."""
    fig, axes = _small_multiples(len(panels), 4, 3.6, 3.1)
    for ax, p in zip(axes.flat, panels):
        ax.scatter(p.x, p.y, s=28, color="#2b6cb0", zorder=3)
        for x, y, label in zip(p.x, p.y, p.labels):
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        # the note goes under the title, not inside the axes, where it would hide points; the
        # margins leave room for the point labels (which grow to the upper right)
        ax.set_title(p.title + (f"\n{p.note}" if p.note else ""), fontsize=8.5)
        ax.margins(x=0.3, y=0.15)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, axis="y")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def weight_positions(panel: WeightPanel) -> tuple[list[float], list[float], dict]:
    """Where a weight-curve panel draws: ``(ticks, tick weights, {label: (xs, ys)})``.

    Each series carries its own weights (``panel.series[label] = (weights, ys)``): losses
    trained at different weights (a sweep for one loss, two weights for the others) are drawn
    at their own x, never at another series' (which crashed or mislabelled points). Weight 0
    (no discriminator) sits at a third of the smallest positive weight, the log axis' left edge.
    """
    weights = sorted({float(w) for ws, _ in panel.series.values() for w in ws})
    positive = [w for w in weights if w > 0]
    floor = min(positive) / 3 if positive else 1e-3
    place = {w: (w if w > 0 else floor) for w in weights}
    series = {}
    for label, (ws, ys) in panel.series.items():
        if len(ws) != len(ys):
            raise ValueError(f"weight curve {label!r}: {len(ws)} weights but {len(ys)} values")
        series[label] = ([place[float(w)] for w in ws],
                         [math.nan if y is None else float(y) for y in ys])
    return [place[w] for w in weights], weights, series


def weight_curves(panels: list[WeightPanel], xlabel: str = "adversarial weight") -> bytes:
    """Per :class:`WeightPanel` one line per series over its own adversarial weights
    (log-scale x, a tick per weight; weight 0, "none", drawn at the left edge; see
    :func:`weight_positions`)."""
    fig, axes = _small_multiples(len(panels), 4, 3.6, 3.0)
    for ax, p in zip(axes.flat, panels):
        ticks, weights, series = weight_positions(p)
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", ms=3, lw=1.2, label=label)
        ax.set_xscale("log")
        # one tick per weight, labelled with it ("none" at the left edge), not decades
        ax.set_xticks(ticks, ["none" if v == 0 else f"{v:g}" for v in weights])
        ax.minorticks_off()
        ax.ticklabel_format(useOffset=False, axis="y")
        ax.set_title(p.title, fontsize=8.5)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(p.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    labels = dict.fromkeys(label for p in panels for label in p.series)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_lines()}
    if labels:
        fig.legend([handles[k] for k in labels if k in handles],
                   [k for k in labels if k in handles], loc="lower center",
                   ncol=min(6, len(labels)), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return png(fig)


def heatmap(matrix, labels: list[str], title: str, vmin: float = -1.0,
            vmax: float = 1.0) -> bytes:
    plt = _plt()
    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    im = ax.imshow(m, cmap="RdBu_r", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=7.5)
    ax.set_yticks(range(n), labels, fontsize=7.5)
    for i in range(n):
        for j in range(n):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                        color="white" if abs(m[i, j]) > 0.6 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return png(fig)


# not drawn: the iteration's bookkeeping and the sums of the drawn terms
NOT_DRAWN = {"stage", "lr", "seconds_per_iteration", "g_total", "d_total"}


def training_curves(curves: list[TrainingCurve], cols: int = 5) -> bytes:
    """Small multiples: every logged loss term of every run over the iterations."""
    fig, axes = _small_multiples(len(curves), cols, 3.2, 2.3)
    for ax, curve in zip(axes.flat, curves):
        terms = [k for k in curve.terms if k not in NOT_DRAWN]
        for k in terms:
            ax.plot(curve.iterations, curve.terms[k], lw=1.1, label=k)
        ax.set_title(curve.run, fontsize=7)
        ax.tick_params(labelsize=6.5)
        ax.set_yscale("log") if all((v or 0) > 0 for k in terms for v in curve.terms[k]) \
            and terms else None
        ax.legend(fontsize=6, loc="upper right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def crop_grid(rows: list[list], row_labels: list[str], labels: list[list[str]],
              title: str) -> bytes:
    """Image crops in a grid: ``rows[i][j]`` an ``(H, W, 3)`` uint8 array (or None: empty),
    titled ``labels[i][j]``; ``row_labels[i]`` on the left."""
    plt = _plt()
    nr, nc = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(nr, nc, figsize=(1.45 * nc + 0.8, 1.5 * nr + 0.4), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(nc):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = row[j] if j < len(row) else None
            if img is None:
                ax.axis("off")
                continue
            ax.imshow(img, interpolation="nearest")
            ax.set_title(labels[i][j], fontsize=6.5)
        axes[i][0].set_ylabel(row_labels[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return png(fig)


def agreement_heatmap(rho, p, col_labels: list[str], row_labels: list[str], title: str,
                      alpha: float = 0.05, notes=None) -> bytes:
    """Evaluator (rows) x setting (columns) rank agreement: colour = Spearman's rho, text = rho
    with ``*`` where the exact permutation p <= ``alpha``; blank where undefined. Column labels
    carry k and the descriptive-only flag; ``notes[i][j]`` (e.g. ``k = 4``) is written under a
    cell's value."""
    plt = _plt()
    m = np.array([[np.nan if v is None else v for v in row] for row in rho], dtype=float)
    rows, cols = m.shape
    fig, ax = plt.subplots(figsize=(2.2 + 1.0 * cols, 1.0 + 0.34 * rows))
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), col_labels, rotation=30, ha="right", fontsize=7.5)
    ax.set_yticks(range(rows), row_labels, fontsize=7.5)
    for i in range(rows):
        for j in range(cols):
            if np.isfinite(m[i, j]):
                star = "*" if p[i][j] is not None and p[i][j] <= alpha else ""
                note = notes[i][j] if notes and notes[i][j] else ""
                ax.text(j, i, f"{m[i, j]:+.2f}{star}" + (f" ({note})" if note else ""),
                        ha="center", va="center", fontsize=7,
                        color="white" if abs(m[i, j]) > 0.6 else "black")
            else:
                ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="#999")
    ax.set_title(title, fontsize=8.5)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Spearman rho")
    fig.tight_layout()
    return png(fig)
