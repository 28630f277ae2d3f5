"""Evaluate a restoration model on test sets: per-image and mean scores, optional saved outputs.

The SR convention of the literature (EDSR, RCAN, SwinIR, BasicSR), stated in every table header:

- ground truth cropped at the bottom/right to a multiple of the scale;
- input: the set's ``LR_bicubic/X<scale>`` images when present, else made from the ground truth by
  MATLAB-style bicubic downscaling (:func:`optiqa.ops.resize.imresize`, exact on the interior
  of the benchmark LR files);
- the network output is clamped to [0, 1] and rounded to 8 bits (what a saved PNG holds);
- a border of ``scale`` pixels is removed from output and ground truth before *every* metric;
- PSNR and SSIM on the Y channel of BT.601 YCbCr (MATLAB ``rgb2ycbcr``): the registered
  ``psnr_y`` and ``ssim_y``; any other registered metric with ``-m`` (LPIPS, DISTS, ... on RGB);
- greyscale images (Set14 has two) are expanded to RGB and scored like the others, as the
  BasicSR / SwinIR test scripts do after their colour ``cv2.imread``.

Measured with the bicubic baseline (``optiqa evaluate bicubic``): Set5 x4 28.43 dB / 0.8113,
Set14 26.09 dB / 0.7049 (tables of the MATLAB era print 28.42 / 26.00).

Set layout (``../shared/data/sr``): ``<set>/HR/*.png`` and optionally ``<set>/LR_bicubic/X4``;
a plain folder of images is taken as the ground truth alone; a task test set made by
:func:`optiqa.data.testsets.make_testset` (a folder with ``manifest.json``) is checked and used
as made, and its table is titled with the task.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optiqa.core.errors import ConfigError, InputError
from optiqa.train.inference import LoadedGenerator, quantize_8bit, restore

DEFAULT_METRICS = ("psnr_y", "ssim_y")


@dataclass
class SetResult:
    name: str
    path: str
    lq_source: str
    keys: list[str] = field(default_factory=list)
    task: str | None = None  # the task of a made test set (optiqa.data.testsets)
    scores: dict[str, list[float]] = field(default_factory=dict)  # metric -> per image

    def mean(self, metric: str) -> float:
        vals = self.scores[metric]
        return sum(vals) / len(vals) if vals else math.nan


@dataclass
class EvaluationResult:
    model: str
    scale: int
    metrics: list[str]
    sets: list[SetResult]
    tile: int | None = None
    overlap: int | None = None

    @property
    def convention(self) -> str:
        return (f"x{self.scale}; output clamped and rounded to 8 bits; border crop {self.scale} px "
                f"(= scale) before every metric; psnr_y/ssim_y on BT.601 Y (MATLAB rgb2ycbcr)")

    def to_dict(self) -> dict:
        return {
            "model": self.model, "scale": self.scale, "metrics": self.metrics,
            "convention": self.convention, "tile": self.tile, "tile_overlap": self.overlap,
            "sets": {s.name: {
                "path": s.path, "task": s.task, "lq_source": s.lq_source, "images": len(s.keys),
                "mean": {m: s.mean(m) for m in self.metrics},
                "per_image": [{"image": k, **{m: s.scores[m][i] for m in self.metrics}}
                              for i, k in enumerate(s.keys)],
            } for s in self.sets},
        }


def create_metrics(names, device) -> dict:
    from optiqa.metrics import create_metric

    return {n: create_metric(n, device=device) for n in dict.fromkeys(names)}


def crop_border(img: torch.Tensor, border: int) -> torch.Tensor:
    return img[..., border:-border, border:-border] if border else img


@torch.inference_mode()
def evaluate_sets(loaded: LoadedGenerator, sets: dict[str, str], metrics=DEFAULT_METRICS,
                  device="cpu", tile: int | None = None, overlap: int = 32,
                  save_images: str | Path | None = None, progress: bool = True
                  ) -> EvaluationResult:
    """Score ``loaded`` on each test set (see the module docstring for the convention).

    Metrics are created (and their weights found) before any image is restored, so an unknown
    metric or missing weights fail fast. Outputs go to ``save_images/<set>/<image>.png``.
    """
    from tqdm import tqdm

    from optiqa.data.io import write_image
    from optiqa.data.testsets import open_test_set

    names = list(dict.fromkeys(list(DEFAULT_METRICS if metrics is None else metrics)))
    if not names:
        raise ConfigError("no metric to evaluate")
    scorers = create_metrics(names, device)
    scale = loaded.scale
    datasets = {name: open_test_set(path, scale) for name, path in sets.items()}
    results = []
    for name, ds in datasets.items():
        res = SetResult(name, str(sets[name]), ds.lq_source, scores={m: [] for m in names},
                        task=getattr(ds, "task", None))
        for i in tqdm(range(len(ds)), desc=f"evaluating {name}", unit="img",
                      disable=not progress or len(ds) < 4):
            item = ds[i]
            lq, gt = item["lq"][None].to(device), item["gt"][None].to(device)
            sr = quantize_8bit(restore(loaded.model, lq, tile, overlap, scale))
            if sr.shape != gt.shape:
                raise InputError(f"{name}/{item['key']}: output {tuple(sr.shape[-2:])} differs "
                                 f"from ground truth {tuple(gt.shape[-2:])}")
            if save_images:
                write_image(Path(save_images) / name / f"{item['key']}.png", sr[0])
            x, ref = crop_border(sr, scale), crop_border(gt, scale)
            for m, scorer in scorers.items():
                try:
                    res.scores[m].append(float(scorer(x, ref)[0]))
                except InputError as e:
                    raise InputError(f"{name}/{item['key']}: {m}: {e}") from None
            res.keys.append(item["key"])
        results.append(res)
    return EvaluationResult(loaded.describe(), scale, names, results, tile,
                            overlap if tile else None)


def format_results(result: EvaluationResult, per_image: bool = True) -> str:
    """Text tables, one per set, each titled with the evaluation convention."""
    from optiqa.metrics import list_metrics
    from optiqa.core.tables import format_table

    infos = list_metrics()
    headers = ["image"] + [_header(m, result.scale) for m in result.metrics]
    blocks = [f"model: {result.model}",
              f"convention: {result.convention}"
              + (f"; tiles {result.tile} px, overlap {result.overlap}" if result.tile else "")]
    for s in result.sets:
        rows = []
        if per_image:
            rows = [[k] + [s.scores[m][i] for m in result.metrics] for i, k in enumerate(s.keys)]
        rows.append([f"mean ({len(s.keys)})"] + [s.mean(m) for m in result.metrics])
        task = f" [task {s.task}]" if s.task else ""
        blocks.append(format_table(headers, rows,
                                   title=f"\n{s.name}{task}: {s.path} ({s.lq_source})"))
    blocks.append("orientation: " + "; ".join(f"{m} {infos[m].orientation}"
                                              for m in result.metrics))
    return "\n".join(blocks)


def _header(metric: str, scale: int) -> str:
    if metric == "psnr_y":
        return f"PSNR-Y dB (crop {scale})"
    if metric == "ssim_y":
        return f"SSIM-Y (crop {scale})"
    return f"{metric} (crop {scale})"
