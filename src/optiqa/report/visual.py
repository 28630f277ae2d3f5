"""Visual comparisons for the report: the same crop from every model beside the input and truth.

For each of the first ``report.crop_images`` test images of each task and set, one square crop of
``report.crop_size`` HR pixels is taken where the ground truth has the most detail (the largest
sum of gradient magnitudes, so that the crop shows textures and edges rather than flat sky); the
input is shown enlarged with nearest-neighbour pixels. Rows are the fidelity losses, columns the
adversarial settings; the first row holds the input, the baselines and the ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from optiqa.report.document import Figure


def _load(path: Path) -> np.ndarray | None:
    return np.asarray(Image.open(path).convert("RGB")) if path.is_file() else None


def detail_crop(hr: np.ndarray, size: int) -> tuple[int, int]:
    """``(top, left)`` of the ``size x size`` window with the most gradient energy."""
    g = hr.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    h, w = energy.shape
    size = min(size, h, w)
    sums = (integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size]
            + integral[:-size, :-size])
    top, left = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(top), int(left)


@dataclass
class CropSource:
    """One test image's crop grid, as paths (the study's report stage resolves them; nothing
    here builds a path): the ground truth and the input (shown enlarged ``scale`` times), the
    baselines ``(label, path)`` (shown where the file exists), then one row per fidelity loss,
    ``(loss, [(setting label, path or None)])``."""

    task: str
    set_name: str
    key: str
    scale: int
    reference: Path
    input: Path
    baselines: list[tuple[str, Path]] = field(default_factory=list)
    rows: list[tuple[str, list[tuple[str, Path | None]]]] = field(default_factory=list)


def comparison_figures(sources: list[CropSource], size: int) -> list[Figure]:
    """One crop grid per :class:`CropSource`: the input, the baselines and the ground truth,
    then one row per fidelity loss; a ``size`` x ``size`` crop (HR pixels) where the ground truth
    has the most detail; a grid whose models have no images yet is left out."""
    from optiqa.report import figures

    figs = []
    for src in sources:
        hr = _load(src.reference)
        top, left = detail_crop(hr, size)
        s = min(size, *hr.shape[:2])

        def crop(img, scale=1):
            if img is None:
                return None
            y, x, n = top // scale, left // scale, max(1, s // scale)
            c = img[y:y + n, x:x + n]
            return np.kron(c, np.ones((scale, scale, 1), dtype=c.dtype)) if scale > 1 else c
        first = [("input" + (f" (x{src.scale} nearest)" if src.scale > 1 else ""),
                  crop(_load(src.input), src.scale))]
        for label, path in src.baselines:
            img = _load(path)
            if img is not None:
                first.append((label, crop(img)))
        first.append(("ground truth", crop(hr)))
        rows, labels, row_labels = [[im for _, im in first]], [[n for n, _ in first]], [""]
        for metric, settings in src.rows:
            rows.append([crop(_load(path)) if path is not None else None for _, path in settings])
            labels.append([label for label, _ in settings])
            row_labels.append(metric)
        if all(im is None for row in rows[1:] for im in row):
            continue
        png = figures.crop_grid(rows, row_labels, labels,
                                f"{src.task} / {src.set_name} / {src.key}: {s}x{s} crop at "
                                f"({top}, {left})")
        figs.append(Figure(f"{src.key} ({src.set_name}, {src.task})", png,
                           f"crops_{src.task}_{src.set_name}_{src.key}",
                           "Rows: fidelity loss; columns: adversarial setting; the same "
                           "crop everywhere (where the ground truth has most detail)."))
    return figs
