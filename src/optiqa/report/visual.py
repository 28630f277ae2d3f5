"""Visual comparisons for the report: the same crop from every model beside the input and truth.

For each of the first ``report.crop_images`` test images of each task and set, one square crop of
``report.crop_size`` HR pixels is taken where the ground truth has the most detail (the largest
sum of gradient magnitudes, so that the crop shows textures and edges rather than flat sky); the
input is shown enlarged with nearest-neighbour pixels. Rows are the fidelity losses, columns the
adversarial settings; the first row holds the input, the baselines and the ground truth.
"""
from __future__ import annotations

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


def comparison_figures(results, baselines: dict[str, list[tuple[str, str]]]) -> list[Figure]:
    """One crop grid per test image: the input, ``baselines[task]`` (``(label, run)`` pairs,
    shown where the run has images) and the ground truth, then one row per fidelity loss.
    Image paths come from ``results.folder`` (the study folder's own methods)."""
    cfg, folder = results.cfg, results.folder
    size = cfg.report.crop_size
    cells = results.plan.cells
    figs = []
    for task, t in cfg.task_opts.items():
        for set_name in cfg.data.test:
            ref_dir = folder.test_set("reference", task, set_name)
            keys = sorted(p.stem for p in ref_dir.glob("*.png"))[:cfg.report.crop_images] \
                if ref_dir.is_dir() else []
            for key in keys:
                hr = _load(folder.test_image("reference", task, set_name, key))
                top, left = detail_crop(hr, size)
                s = min(size, *hr.shape[:2])

                def crop(img, scale=1):
                    if img is None:
                        return None
                    y, x, n = top // scale, left // scale, max(1, s // scale)
                    c = img[y:y + n, x:x + n]
                    return np.kron(c, np.ones((scale, scale, 1), dtype=c.dtype)) if scale > 1 \
                        else c
                lr = _load(folder.test_image("input", task, set_name, key))
                first = [("input" + (f" (x{t.scale} nearest)" if t.scale > 1 else ""),
                          crop(lr, t.scale))]
                for label, run in baselines.get(task, []):
                    img = _load(folder.run_image(run, task, set_name, key))
                    if img is not None:
                        first.append((label, crop(img)))
                first.append(("ground truth", crop(hr)))
                settings = list(dict.fromkeys(
                    (c.discriminator, c.adversarial_weight) for c in cells if c.task == task))
                rows, labels, row_labels = [[im for _, im in first]], [[n for n, _ in first]], [""]
                for metric in cfg.fidelity.metrics:
                    row, lab = [], []
                    for d, w in settings:
                        cell = next((c for c in cells if c.task == task and c.fidelity == metric
                                     and c.discriminator == d and c.adversarial_weight == w),
                                    None)
                        img = _load(folder.run_image(cell.name, task, set_name, key)) \
                            if cell else None
                        row.append(crop(img))
                        lab.append("no D" if d == "none" else f"{d} w={w:g}")
                    rows.append(row)
                    labels.append(lab)
                    row_labels.append(metric)
                if all(im is None for row in rows[1:] for im in row):
                    continue
                from optiqa.report import figures

                png = figures.crop_grid(rows, row_labels, labels,
                                        f"{task} / {set_name} / {key}: {s}x{s} crop at "
                                        f"({top}, {left})")
                figs.append(Figure(f"{key} ({set_name}, {task})", png,
                                   f"crops_{task}_{set_name}_{key}",
                                   "Rows: fidelity loss; columns: adversarial setting; the same "
                                   "crop everywhere (where the ground truth has most detail)."))
    return figs
