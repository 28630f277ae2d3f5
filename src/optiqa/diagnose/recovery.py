"""The recovery test: can a metric, used as a loss, bring back the reference it compares with?

Ding, Ma, Wang & Simoncelli, "Comparison of full-reference image quality models for optimization
of image processing systems", IJCV 129, 2021, Sec. 3: start from an image that is not the
reference and optimise its pixels to minimise ``metric.loss(x, ref)``; a metric whose optimum is
reached by an image far from the reference (judged by PSNR/SSIM/DISTS) is "exposed". Its
counterexamples show what the metric is blind to (mean luminance for GMSD, chroma for metrics
on the grey image, ...).

Every metric here runs one optimisation over a batch of starts (white noise, a constant grey
image, a blurred and a JPEG version of the reference), with Adam and a cosine-decayed step size.

**Pixel range.** Pixels are kept in [0, 1] by projection (``bounds="project"``, the default):
after each Adam step they are clamped, as in the authors' released code
(``pred.data.clamp_(0, 1)``). The other common choice, ``x = sigmoid(p)`` with Adam on ``p``
(``bounds="sigmoid"``), cannot represent the 0 and 255 values that photographs contain (the
logits run off to infinity) and multiplies every gradient by ``x (1 - x)``, which stalls dark and
bright pixels; with the same budget it recovers much less (``docs/diagnostics.md`` has the
numbers and the command).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch

from optiqa.core.errors import ConfigError, InputError
from optiqa.metrics import create_metric, list_metrics, metric_available_offline
from optiqa.metrics.base import loss_from_scores
from optiqa.metrics.registry import get_spec

log = logging.getLogger(__name__)

START_KINDS = ("noise", "constant", "blur", "jpeg")
BOUNDS = ("project", "sigmoid")
# bounds="sigmoid" starts from logit(clip(x, eps, 1 - eps)): 0 and 1 have no finite logit
SIGMOID_EPS = 1e-3
# A result at least this close to the reference (PSNR on RGB, so that a wrong colour counts)
# counts as recovered.
RECOVERED_PSNR = 35.0
# The anchor: the reference plus white Gaussian noise at that PSNR (std 10^(-35/20) = 0.0178 on
# [0, 1]), a distortion every metric should find small. A result that is not recovered but that
# the metric scores at least as well as the anchor exposes the metric: it prefers an image
# further from the reference. Comparing losses (rather than "how far the loss fell") treats
# metrics whose loss spans orders of magnitude (MSE) and bounded ones (SSIM) alike.
ANCHOR_PSNR = RECOVERED_PSNR
# DISTS to judge the results: the published one needs pretrained VGG-16 weights; without them the
# DISTS form on the fixed-seed random VGG-16 ("VGG-16-R") is used, and every table says which.
DISTS_EVALUATORS = ("dists", "dists_vgg16_r")


@dataclass(frozen=True)
class RecoveryOptions:
    """What the recovery test does; every field is recorded with the results.

    ``starts``: initial images, any of :data:`START_KINDS`: ``noise`` (i.i.d. uniform [0, 1] per
    pixel and channel, from ``seed``), ``constant`` (every pixel ``constant``), ``blur`` (Gaussian
    blur of the reference, ``blur_sigma`` pixels), ``jpeg`` (the reference through Pillow JPEG at
    ``jpeg_quality``). ``steps`` Adam steps at ``lr``, cosine-decayed to ``lr * final_lr_fraction``.
    ``dists``: the DISTS-style evaluator (``None``: ``dists`` if its weights are here, else
    ``dists_vgg16_r``). ``bounds``: how pixels stay in [0, 1] (see the module docstring).
    """

    starts: tuple[str, ...] = START_KINDS
    steps: int = 300
    lr: float = 0.05
    final_lr_fraction: float = 0.01
    seed: int = 0
    constant: float = 0.5
    blur_sigma: float = 4.0
    jpeg_quality: int = 10
    dists: str | None = None
    bounds: str = "project"
    device: str = "cpu"

    def __post_init__(self):
        if self.bounds not in BOUNDS:
            raise ConfigError(f"bounds must be one of {', '.join(BOUNDS)}, got {self.bounds!r}",
                              option="bounds")
        unknown = [s for s in self.starts if s not in START_KINDS]
        if unknown or not self.starts:
            raise ConfigError(f"unknown initial image(s) {unknown}; choose from "
                              f"{', '.join(START_KINDS)}", option="starts")
        if len(set(self.starts)) != len(self.starts):
            raise ConfigError(f"initial images repeat: {list(self.starts)}", option="starts")
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}", option="steps")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}", option="lr")
        if not 0 <= self.constant <= 1:
            raise ConfigError(f"constant must lie in [0, 1], got {self.constant}",
                              option="constant")


def initial_images(ref: torch.Tensor, options: RecoveryOptions) -> torch.Tensor:
    """The starts of :class:`RecoveryOptions` for one reference ``(1, 3, H, W)``: ``(S, 3, H, W)``."""
    from optiqa.data.distortions import gaussian_blur, jpeg

    out = []
    for kind in options.starts:
        if kind == "noise":
            g = torch.Generator().manual_seed(options.seed)
            img = torch.rand(ref.shape, generator=g).to(ref)
        elif kind == "constant":
            img = torch.full_like(ref, options.constant)
        elif kind == "blur":
            img = gaussian_blur(ref, options.blur_sigma, None)
        else:
            img = jpeg(ref, options.jpeg_quality, None)
        out.append(img.clamp(0, 1))
    return torch.cat(out)


def dists_evaluator(name: str | None = None) -> str:
    """The DISTS metric that judges results: ``name``, or the first of :data:`DISTS_EVALUATORS`
    whose weights are on this machine."""
    if name is not None:
        return name
    return next(n for n in DISTS_EVALUATORS if metric_available_offline(n))


def classical_metrics() -> list[str]:
    """The differentiable metrics that need no network (family other than ``deep``)."""
    return [n for n, i in list_metrics().items()
            if i.kind == "fr" and i.differentiable and i.approach != "deep"]


@dataclass
class RecoveryRun:
    """One metric's optimisation over the starts of one reference (tensors on the CPU)."""

    reference: str
    metric: str
    starts: tuple[str, ...]
    initial: torch.Tensor          # (S, 3, H, W)
    result: torch.Tensor           # (S, 3, H, W)
    losses: torch.Tensor           # (steps + 1, S): metric.loss of each start, before each step
    seconds: float
    seed: int = 0


@dataclass
class RecoveryReport:
    """Runs, one table row per (reference, metric, start), and how they were obtained."""

    runs: list[RecoveryRun]
    rows: list[dict]
    options: RecoveryOptions
    evaluators: tuple[str, ...]    # metrics that judge the results: psnr, psnr_y, ssim_y, DISTS
    references: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0           # wall-clock time of the whole test
    cpu_seconds: float = 0.0       # CPU time of this process over the test (all threads)

    def run(self, reference: str, metric: str) -> RecoveryRun:
        return next(r for r in self.runs if r.reference == reference and r.metric == metric)


def _cosine_lr(step: int, steps: int, lr: float, final_fraction: float) -> float:
    """``lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2`` (SGDR without restarts)."""
    lr_min = lr * final_fraction
    return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))


def optimise_pixels(metric, ref: torch.Tensor, starts: torch.Tensor, steps: int, lr: float,
                    final_lr_fraction: float = 0.01, progress=None, bounds: str = "project"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``metric.loss(x_i, ref)`` for every start ``x_i`` at once; projected Adam
    (``bounds="project"``) or Adam on logits (``bounds="sigmoid"``).

    The batch loss is the sum of the per-start losses, so each start follows its own gradient
    (Adam's moments are per pixel, hence per start). The reference side of the metric is computed
    once (:meth:`~optiqa.metrics.FRMetric.reference_scorer`; same values as ``metric.loss``).
    Returns ``(result, losses)`` with ``losses`` of shape ``(steps + 1, S)``: the loss of each
    start before every step and of the result.
    """
    score = metric.reference_scorer(ref)
    info = metric.info
    sigmoid = bounds == "sigmoid"
    if sigmoid:
        p = torch.logit(starts.detach().clamp(SIGMOID_EPS, 1 - SIGMOID_EPS)).requires_grad_(True)
    else:
        p = starts.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)
    history = []
    for step in range(steps + 1):
        x = torch.sigmoid(p) if sigmoid else p
        per_start = per_image_loss(score(x), info)
        history.append(per_start.detach().cpu())
        if step == steps:
            break
        for group in opt.param_groups:
            group["lr"] = _cosine_lr(step, steps, lr, final_lr_fraction)
        opt.zero_grad(set_to_none=True)
        per_start.sum().backward()
        opt.step()
        if not sigmoid:
            with torch.no_grad():
                p.clamp_(0, 1)
        if progress is not None:
            progress.update(1)
    if not torch.isfinite(history[-1]).all():
        raise InputError(f"{info.name}: the loss became non-finite during the recovery test")
    return x.detach(), torch.stack(history)


def per_image_loss(scores: torch.Tensor, info) -> torch.Tensor:
    """``metric.loss`` of each image on its own, ``(N,)`` (the loss is the batch mean of these)."""
    return torch.stack([loss_from_scores(s, info) for s in scores.unbind()])


def _as_batch(ref: torch.Tensor) -> torch.Tensor:
    if ref.ndim == 3:
        ref = ref[None]
    if ref.ndim != 4 or ref.shape[0] != 1 or ref.shape[1] != 3:
        raise InputError(f"a reference must be one RGB image (3, H, W), got {tuple(ref.shape)}")
    return ref.float()


def run_recovery(metrics, references: dict[str, torch.Tensor],
                 options: RecoveryOptions = RecoveryOptions(), progress: bool = False
                 ) -> RecoveryReport:
    """The recovery test of every metric in ``metrics`` on every reference (name -> image)."""
    if not metrics:
        raise ConfigError("no metric given", option="metric")
    if not references:
        raise InputError("no reference image given")
    refs = {name: _as_batch(img).to(options.device) for name, img in references.items()}
    for name in metrics:
        info = get_spec(name).info  # an unknown name raises with a did-you-mean
        if info.kind != "fr" or not info.differentiable:
            raise ConfigError(f"{name}: the recovery test needs a differentiable full-reference "
                              "metric", option="metric")
    evaluators = ("psnr", "psnr_y", "ssim_y", dists_evaluator(options.dists))
    judge = {n: create_metric(n, device=options.device) for n in evaluators}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(metrics) * len(refs) * options.steps, unit="step",
                   desc="recovery", leave=False)
    t_all, cpu_all = time.perf_counter(), time.process_time()
    runs, rows = [], []
    try:
        for ref_name, ref in refs.items():
            starts = initial_images(ref, options)
            # the judges' scores of the starts are the same for every metric: computed once
            # (the DISTS judge: 4 images through VGG-16 per metric otherwise)
            judged_starts = _judged(judge, starts, ref)
            for name in metrics:
                metric = create_metric(name, device=options.device)
                if min(ref.shape[-2:]) < metric.min_size:
                    raise InputError(f"{ref_name}: {ref.shape[-1]}x{ref.shape[-2]} is too small "
                                     f"for {name} (needs {metric.min_size}x{metric.min_size})")
                if bar is not None:
                    bar.set_postfix_str(f"{ref_name}/{name}")
                t0 = time.perf_counter()
                result, losses = optimise_pixels(metric, ref, starts, options.steps, options.lr,
                                                 options.final_lr_fraction, bar, options.bounds)
                run = RecoveryRun(ref_name, name, tuple(options.starts), starts.cpu(),
                                  result.cpu(), losses, time.perf_counter() - t0, options.seed)
                runs.append(run)
                rows += _rows(run, metric, ref, judge, result, starts, judged_starts)
                log.info("recovery %s/%s: %.1f s", ref_name, name, run.seconds)
    finally:
        if bar is not None:
            bar.close()
    return RecoveryReport(runs, rows, options, evaluators,
                          {k: v.cpu()[0] for k, v in refs.items()}, time.perf_counter() - t_all,
                          time.process_time() - cpu_all)


@torch.no_grad()
def _judged(judge, images, ref) -> dict[str, list]:
    """``{judge: scores of images (N, 3, H, W) against ref}``, ``None`` where too small."""
    return {col: (m(images, ref.expand_as(images)).tolist() if min(ref.shape[-2:]) >= m.min_size
                  else [None] * len(images)) for col, m in judge.items()}


@torch.no_grad()
def _rows(run: RecoveryRun, metric, ref, judge, result, starts, judged_starts) -> list[dict]:
    refs = ref.expand_as(result)
    own_result, own_start = metric(result, refs), metric(starts, refs)
    own_ref = metric(ref, ref)[0]
    loss_ref = float(loss_from_scores(own_ref[None], metric.info))
    anchor = anchor_image(ref, run.seed)
    own_anchor = metric(anchor, ref)[0]
    loss_anchor = float(loss_from_scores(own_anchor[None], metric.info))
    judged = _judged(judge, result, ref)
    scores = {col: (judged[col], judged_starts[col]) for col in judge}
    out = []
    for i, kind in enumerate(run.starts):
        loss_start, loss_result = float(run.losses[0, i]), float(run.losses[-1, i])
        span = loss_start - loss_ref
        progress = 1.0 if span == 0 else (loss_start - loss_result) / span
        row = {"reference": run.reference, "metric": run.metric, "start": kind,
               "metric_result": float(own_result[i]), "metric_start": float(own_start[i]),
               "metric_at_reference": float(own_ref), "metric_anchor": float(own_anchor),
               "loss_result": loss_result, "loss_anchor": loss_anchor, "progress": progress,
               "prefers_result": loss_result < loss_ref - 1e-6 * max(1.0, abs(loss_ref))}
        for col, (res, st) in scores.items():
            row[col], row[f"{col}_start"] = res[i], st[i]
        row["verdict"] = verdict(row)
        row["seconds"] = run.seconds
        out.append(row)
    return out


def verdict(row: dict) -> str:
    """``recovered`` (PSNR >= 35 dB on RGB); ``exposed`` (not recovered, yet the metric scores the
    result at least as well as the anchor, the reference plus white noise at 35 dB PSNR, or
    better than the reference itself); ``stuck`` (neither: the metric itself still rates the
    result worse than the anchor, so the optimisation did not reach the metric's optimum
    within the budget, or it sits in a local minimum)."""
    if row["psnr"] >= RECOVERED_PSNR:
        return "recovered"
    if row["loss_result"] <= row["loss_anchor"] or row["prefers_result"]:
        return "exposed"
    return "stuck"


def anchor_image(ref: torch.Tensor, seed: int = 0, psnr: float = ANCHOR_PSNR) -> torch.Tensor:
    """``clip(ref + s N(0, 1))`` with ``s = 10^(-psnr / 20)``: white noise at ``psnr`` dB (a
    little above it after clipping)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(ref.shape, generator=g).to(ref)
    return (ref + 10 ** (-psnr / 20) * noise).clamp(0, 1)
