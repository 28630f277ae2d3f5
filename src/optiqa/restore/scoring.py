"""Evaluate restored images: a model on SR test sets, or a folder of images already restored.

The SR convention of the literature, stated in every table header:

- ground truth cropped at the bottom/right to a multiple of the scale;
- input: the set's ``LR_bicubic/X<scale>`` images when present, else made from the ground truth by
  MATLAB-style bicubic downscaling (:func:`optiqa.ops.resize.imresize`, exact on the interior
  of the benchmark LR files);
- the network output is clamped to [0, 1] and rounded to 8 bits (what a saved PNG holds);
- a border of ``scale`` pixels is removed from output and ground truth before *every* metric;
- ``psnr_y`` and ``ssim_y`` on the Y channel of BT.601 YCbCr under a named *protocol*
  (:mod:`optiqa.restore.protocol`): ``matlab`` (the default; the published MATLAB-era tables,
  reproduced within 0.006 dB and 0.0003 SSIM by the bicubic baseline) or ``basicsr`` (BasicSR's
  Python metrics); any other registered metric with ``-m`` (LPIPS, DISTS, ... on RGB);
- no-reference metrics (``create_metric(name).info.kind == 'nr'``: NIQE, BRISQUE, ...) are
  called on the cropped output alone, ``m(sr)``.

:func:`evaluate_images` scores a folder of restored images as they are (8-bit files), against a
folder of ground truth when one is given (full-reference metrics need it), with a border crop
given by the caller (none by default).

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
from optiqa.ops.rounding import quantize_8bit
from optiqa.restore.generator import LoadedGenerator, restore
from optiqa.restore.protocol import PROTOCOL_METRICS, PROTOCOLS, check_protocol, protocol_scores

DEFAULT_METRICS = ("psnr_y", "ssim_y")
DEFAULT_PROTOCOL = "matlab"


@dataclass
class SetResult:
    name: str
    path: str
    lq_source: str
    keys: list[str] = field(default_factory=list)
    task: str | None = None  # the task of a made test set (optiqa.data.testsets)
    scores: dict[str, list[float]] = field(default_factory=dict)  # metric -> per image
    greyscale: list[str] = field(default_factory=list)  # keys whose ground truth is greyscale

    def mean(self, metric: str) -> float:
        vals = self.scores[metric]
        return sum(vals) / len(vals) if vals else math.nan


@dataclass
class EvaluationResult:
    model: str
    scale: int | None            # None: restored images scored as given (no model)
    metrics: list[str]
    sets: list[SetResult]
    tile: int | None = None
    overlap: int | None = None
    protocol: str = DEFAULT_PROTOCOL
    crop: int | None = None      # border removed before every metric (default: the scale)
    kinds: dict[str, str] = field(default_factory=dict)  # metric -> "fr" / "nr"
    warnings: list[str] = field(default_factory=list)    # for stderr (skipped images, ...)
    # metrics asked for but not computed, with why (the circularity rule, given the model's
    # training loss: optiqa.evaluators.excluded_judges)
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def border(self) -> int:
        return self.crop if self.crop is not None else (self.scale or 0)

    @property
    def convention(self) -> str:
        what = (f"{scale_words(self.scale)}; output clamped and rounded to 8 bits" if self.scale
                else "restored images as stored (8-bit files)")
        return (f"{what}; border crop {self.border} px before every metric"
                + (f" ({border_words(self.scale)})" if self.scale and self.crop is None else "")
                + f"; psnr_y/ssim_y: {PROTOCOLS[self.protocol]}"
                + ("; NR metrics on the output alone" if "nr" in self.kinds.values() else ""))

    def to_dict(self) -> dict:
        return {
            "model": self.model, "scale": self.scale, "metrics": self.metrics,
            "protocol": self.protocol, "crop_border": self.border,
            "metric_kinds": {m: self.kinds.get(m, "fr") for m in self.metrics},
            "convention": self.convention, "tile": self.tile, "tile_overlap": self.overlap,
            "left_out": dict(self.left_out),
            "sets": {s.name: {
                "path": s.path, "task": s.task, "lq_source": s.lq_source, "images": len(s.keys),
                "greyscale": s.greyscale,
                "mean": {m: s.mean(m) for m in self.metrics},
                "per_image": [{"image": k, **{m: s.scores[m][i] for m in self.metrics}}
                              for i, k in enumerate(s.keys)],
            } for s in self.sets},
        }


def scale_words(scale: int) -> str:
    """``x4``, or for tasks that do not upscale (denoising, JPEG, deblurring) ``x1 (no
    upscaling)``."""
    return f"x{scale}" if scale != 1 else "x1 (no upscaling)"


def border_words(scale: int) -> str:
    """Why the border crop is ``scale`` pixels, in words fitting the task."""
    return "= scale" if scale != 1 else "the SR tables' border of scale px, kept at scale 1"


def create_metrics(names, device) -> dict:
    from optiqa.metrics import create_metric

    return {n: create_metric(n, device=device) for n in dict.fromkeys(names)}


def crop_border(img: torch.Tensor, border: int) -> torch.Tensor:
    return img[..., border:-border, border:-border] if border else img


def create_scorers(names: list[str], device, have_reference: bool, built: dict | None = None
                   ) -> tuple[dict, dict[str, str]]:
    """Modules for the metrics outside the protocol's ``psnr_y``/``ssim_y`` (created, with their
    weights found, before any image is read), and every metric's kind. ``built``: modules
    already created on ``device``, by name, used instead of creating them again."""
    if not names:
        raise ConfigError("no metric to evaluate" + ("" if have_reference else
                          ": without ground truth only no-reference metrics can be computed"),
                          option="metric")
    built = built or {}
    wanted = [n for n in names if n not in PROTOCOL_METRICS]
    scorers = {**create_metrics([n for n in wanted if n not in built], device),
               **{n: built[n] for n in wanted if n in built}}
    scorers = {n: scorers[n] for n in dict.fromkeys(wanted)}
    kinds = {n: ("fr" if n in PROTOCOL_METRICS else scorers[n].info.kind) for n in names}
    needs_ref = [n for n in names if kinds[n] != "nr"]
    if needs_ref and not have_reference:
        raise ConfigError(f"full-reference metric(s) {', '.join(needs_ref)} need the ground "
                          "truth (hr)", option="hr")
    return scorers, kinds


def score_image(res: SetResult, key: str, x: torch.Tensor, ref: torch.Tensor | None,
                greyscale: bool, names: list[str], scorers: dict, kinds: dict,
                protocol: str, references=None) -> None:
    """Append one image's scores (``x``, ``ref`` cropped, ``(1, 3, H, W)``) to ``res``.

    ``references``: an :class:`optiqa.assess.refcache.ReferenceCache` shared by calls that score
    other outputs against the same ground truth (the reference's share is then done once)."""
    try:
        prot = (protocol_scores(x, ref, protocol, greyscale)
                if ref is not None and any(n in PROTOCOL_METRICS for n in names) else {})
        for m in names:
            if m in prot:
                value = prot[m]
            elif kinds[m] == "nr":
                value = scorers[m](x)
            elif references is not None:
                value = references(m, scorers[m], (res.name, key), x, ref)
            else:
                value = scorers[m](x, ref)
            res.scores[m].append(float(value[0]))
    except InputError as e:
        raise InputError(f"{res.name}/{key}: {e}") from None
    res.keys.append(key)
    if greyscale:
        res.greyscale.append(key)


def gt_is_greyscale(ds, i: int, gt: torch.Tensor) -> bool:
    """Whether item ``i``'s ground truth is grey. A file: from its header (one channel), as
    MATLAB's ``size(im, 3) == 1`` decides in the published protocol (an RGB file with equal
    channels is compared as colour there). An image without a file (the built-in photos, which
    the old check scored as colour): from its pixels, all channels equal."""
    from optiqa.restore.protocol import is_greyscale_file, is_greyscale_image

    paths = getattr(getattr(ds, "gt", None), "paths", None)
    if paths and Path(paths[i]).is_file():
        return is_greyscale_file(paths[i])
    return is_greyscale_image(gt)


@torch.inference_mode()
def restore_and_score(model, scale: int, ds, res: SetResult, scorers: dict, kinds: dict,
                      protocol: str, device="cpu", tile: int | None = None, overlap: int = 32,
                      save_images: str | Path | None = None, progress: bool = True,
                      references=None) -> SetResult:
    """Restore every item of the test set ``ds`` with ``model`` (output clamped and rounded to 8
    bits), optionally save it as ``save_images/<res.name>/<key>.png``, and append its scores
    (border = ``scale``; :func:`score_image`, ``references`` passed on) to ``res``, which it
    returns."""
    from tqdm import tqdm

    from optiqa.data.io import write_image

    for i in tqdm(range(len(ds)), desc=f"evaluating {res.name}", unit="img",
                  disable=not progress or len(ds) < 4):
        item = ds[i]
        lq, gt = item["lq"][None].to(device), item["gt"][None].to(device)
        sr = quantize_8bit(restore(model, lq, tile, overlap, scale))
        if sr.shape != gt.shape:
            raise InputError(f"{res.name}/{item['key']}: output {tuple(sr.shape[-2:])} differs "
                             f"from ground truth {tuple(gt.shape[-2:])}")
        if save_images:
            write_image(Path(save_images) / res.name / f"{item['key']}.png", sr[0])
        score_image(res, item["key"], crop_border(sr, scale), crop_border(gt, scale),
                    gt_is_greyscale(ds, i, gt), list(res.scores), scorers, kinds, protocol,
                    references)
    return res


@torch.inference_mode()
def evaluate_sets(loaded: LoadedGenerator, sets: dict[str, str], metrics=DEFAULT_METRICS,
                  device="cpu", tile: int | None = None, overlap: int = 32,
                  save_images: str | Path | None = None, progress: bool = True,
                  protocol: str = DEFAULT_PROTOCOL) -> EvaluationResult:
    """Score ``loaded`` on each test set (see the module docstring for the convention).

    Metrics are created (and their weights found) before any image is restored, so an unknown
    metric or missing weights fail fast. Outputs go to ``save_images/<set>/<image>.png``.
    """
    from optiqa.data.testsets import open_test_set

    check_protocol(protocol)
    names = list(dict.fromkeys(list(DEFAULT_METRICS if metrics is None else metrics)))
    scorers, kinds = create_scorers(names, device, have_reference=True)
    scale = loaded.scale
    datasets = {name: open_test_set(path, scale) for name, path in sets.items()}
    results = []
    for name, ds in datasets.items():
        res = SetResult(name, str(sets[name]), ds.lq_source, scores={m: [] for m in names},
                        task=getattr(ds, "task", None))
        results.append(restore_and_score(loaded.model, scale, ds, res, scorers, kinds, protocol,
                                         device, tile, overlap, save_images, progress))
    return EvaluationResult(loaded.describe(), scale, names, results, tile,
                            overlap if tile else None, protocol=protocol, kinds=kinds)


@torch.inference_mode()
def evaluate_images(images, hr=None, metrics=None, device="cpu", crop: int = 0,
                    scale: int | None = None, protocol: str = DEFAULT_PROTOCOL,
                    progress: bool = True, name: str | None = None,
                    strict: bool = False) -> EvaluationResult:
    """Score a folder of restored images as they are stored, with no model.

    With ``hr`` (a folder of ground truth) each image pairs with the ground truth of the same
    name, or whose name followed by ``_``, ``-``, ``.`` or a space starts its own
    (``baby_RCAN_x4.png`` -> ``baby.png``; :func:`optiqa.data.io.pair_paths`), and ``metrics``
    defaults to ``psnr_y``/``ssim_y``; without it only no-reference metrics can be given. A
    ground truth larger than its image by less than ``scale`` pixels (a multiple-of-the-scale
    crop) is cropped at the bottom/right; any other size difference is an error. ``crop``
    pixels are removed on each side before every metric. ``hr`` may also be a benchmark set
    root (``<set>/HR``), as ``--set`` takes.

    A restored image without ground truth is skipped with a warning (``optiqa score``'s rule;
    the mean row counts the images scored); ``strict=True`` makes it an error.
    """
    from tqdm import tqdm

    from optiqa.data.io import list_images, match_pairs, read_image

    check_protocol(protocol)
    if crop < 0:
        raise ConfigError(f"crop border must be >= 0, got {crop}", option="crop_border")
    names = list(dict.fromkeys(list((DEFAULT_METRICS if hr is not None else ())
                                    if metrics is None else metrics)))
    scorers, kinds = create_scorers(names, device, have_reference=hr is not None)
    warnings, skipped = [], []
    if hr is not None:
        if (Path(hr) / "HR").is_dir():  # a set root, as --set takes it
            hr = Path(hr) / "HR"
        pairing = match_pairs(images, hr)
        pairs, skipped = pairing.pairs, [p.name for p in pairing.unmatched]
        if skipped:
            shown = ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else "")
            what = f"restored image(s) in {images} without ground truth in {hr}: {shown}"
            if strict or not pairs:
                raise InputError(f"{len(skipped)} {what}" if pairs else
                                 f"none of the restored images has ground truth; {what}",
                                 option=None if pairs else "hr")
            warnings.append(f"skipped {len(skipped)} {what}")
    else:
        pairs = [(p, None) for p in list_images(images)]
    source = f"ground truth from {hr}" if hr is not None else "no ground truth"
    if skipped:
        source += f"; {len(skipped)} image(s) without ground truth skipped"
    res = SetResult(name or Path(images).name, str(images), source,
                    scores={m: [] for m in names})
    cropped_gt = 0
    for path, ref_path in tqdm(pairs, desc=f"evaluating {res.name}", unit="img",
                               disable=not progress or len(pairs) < 4):
        x = read_image(path)[None].to(device)
        ref, grey = None, False
        if ref_path is not None:
            from optiqa.restore.protocol import is_greyscale_file

            ref, grey = read_image(ref_path)[None].to(device), is_greyscale_file(ref_path)
            ref, was_cropped = _fit_ground_truth(ref, x, path, ref_path, scale)
            cropped_gt += was_cropped
        if min(x.shape[-2:]) <= 2 * crop:
            raise InputError(f"{path}: {x.shape[-1]}x{x.shape[-2]} is too small for a border crop "
                             f"of {crop} px")
        score_image(res, path.stem, crop_border(x, crop),
                    None if ref is None else crop_border(ref, crop), grey, names, scorers, kinds,
                    protocol)
    if cropped_gt:
        res.lq_source += (f"; {cropped_gt} ground truth image(s) cropped at the bottom/right "
                          "to the output size")
    return EvaluationResult(f"restored images in {images}", None, names, [res],
                            protocol=protocol, crop=crop, kinds=kinds, warnings=warnings)


def _fit_ground_truth(ref, x, path, ref_path, scale):
    """``ref`` cropped at the bottom/right to ``x``'s size when it exceeds it by less than
    ``scale`` pixels per side (the crop to a multiple of the scale); else the sizes must match."""
    (h, w), (H, W) = x.shape[-2:], ref.shape[-2:]
    if (h, w) == (H, W):
        return ref, False
    if scale and 0 <= H - h < scale and 0 <= W - w < scale:
        return ref[..., :h, :w], True
    raise InputError(f"{path}: size {w}x{h} differs from its ground truth {ref_path} ({W}x{H}; width x height)"
                     + ("" if scale else "; give the scale to allow a crop of the ground truth "
                        "to a multiple of it"))


def format_results(result: EvaluationResult, per_image: bool = True) -> str:
    """Text tables, one per set, each titled with the evaluation convention."""
    from optiqa.core.tables import format_table
    from optiqa.metrics import list_metrics

    infos = list_metrics()
    headers = ["image"] + [_header(m, result) for m in result.metrics]
    blocks = [f"model: {result.model}",
              f"convention: {result.convention}"
              + (f"; tiles {result.tile} px, overlap {result.overlap}" if result.tile else "")]
    for s in result.sets:
        rows = []
        if per_image:
            rows = [[k] + [s.scores[m][i] for m in result.metrics] for i, k in enumerate(s.keys)]
        rows.append([f"mean ({len(s.keys)})"] + [s.mean(m) for m in result.metrics])
        task = f" [task {s.task}]" if s.task else ""
        grey = (f"; greyscale ground truth: {', '.join(s.greyscale)}" if s.greyscale else "")
        blocks.append(format_table(headers, rows,
                                   title=f"\n{s.name}{task}: {s.path} ({s.lq_source}{grey})"))
    blocks.append("orientation: " + "; ".join(f"{m} {infos[m].orientation}"
                                              for m in result.metrics))
    if result.left_out:
        blocks.append("not computed (circular): " + "; ".join(
            f"{m} ({why})" for m, why in result.left_out.items()))
    return "\n".join(blocks)


def _header(metric: str, result: EvaluationResult) -> str:
    crop = f"crop {result.border}"
    if metric == "psnr_y":
        return f"PSNR-Y dB ({result.protocol}, {crop})"
    if metric == "ssim_y":
        return f"SSIM-Y ({result.protocol}, {crop})"
    if result.kinds.get(metric) == "nr":
        return f"{metric} (NR, {crop})"
    return f"{metric} ({crop})"
