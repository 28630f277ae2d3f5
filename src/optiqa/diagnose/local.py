"""Local behaviour of a loss around the reference: 1-D scans along lines through it.

Along ``x(t) = clip(ref + t d, 0, 1)`` the rise ``r(t) = L(x(t)) - L(ref)`` of the loss
``L = metric.loss(., ref)`` tells whether the reference is the minimum along that line (it should
be at ``t = 0``) and how the valley is shaped. ``d`` is the difference between a restored image
and the reference (``t = 1`` is the restored image) or a random direction: white Gaussian noise
scaled to the same length ``||d||``. Clipping to [0, 1] bends the lines where the reference is
saturated, as every real image would be clipped.

Numbers per line: ``argmin`` (the ``t`` of the smallest loss on the grid; 0 when the reference is
the minimum along it) and the local exponent ``k = log2(r(2 s) / r(s))`` at a small ``s`` (default
``0.1``, with ``r`` averaged over ``+-s``): 2 for a smooth quadratic bowl (MSE), 1 for a cone
(a norm, e.g. L1 or a root of an energy), above 2 for a valley that is flat at the bottom, where
small errors cost almost nothing. ``flatness`` is ``r(0.25) / r(1)`` along the restored direction:
``1/16`` for a quadratic, ``1/4`` for a cone, near 0 when a quarter of the error is nearly free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from optiqa.core.errors import ConfigError, InputError
from optiqa.diagnose.recovery import per_image_loss
from optiqa.metrics import create_metric


@dataclass
class LineScan:
    """Loss rises along the restored direction and along random directions of equal length."""

    metric: str
    t: torch.Tensor                 # (T,) the grid
    restored_rise: torch.Tensor     # (T,) L(x(t)) - L(ref) towards the restored image
    random_rise: torch.Tensor       # (K, T) along K random directions
    restored_argmin: float
    random_argmin: list[float]
    restored_exponent: float | None
    random_exponent: list[float | None]
    flatness: float | None
    loss_at_reference: float

    @property
    def normaliser(self) -> float:
        """The rise at the restored image (``t = 1``), or 1 when it is not positive."""
        i = int(torch.argmin((self.t - 1).abs()))
        v = float(self.restored_rise[i])
        return v if v > 0 else 1.0

    @property
    def reference_is_minimum(self) -> bool:
        return self.restored_argmin == 0 and all(a == 0 for a in self.random_argmin)

    def as_row(self) -> dict:
        ex = [e for e in self.random_exponent if e is not None]
        return {"metric": self.metric, "loss_at_reference": self.loss_at_reference,
                "restored_argmin": self.restored_argmin,
                "random_argmin_max": max((abs(a) for a in self.random_argmin), default=0.0),
                "reference_is_minimum": self.reference_is_minimum,
                "restored_exponent": self.restored_exponent,
                "random_exponent_mean": sum(ex) / len(ex) if ex else None,
                "flatness": self.flatness}


def default_grid(lo: float = -1.0, hi: float = 1.5, step: float = 0.05) -> torch.Tensor:
    """``lo, lo + step, ..., hi`` with the points 0, +-0.1, +-0.2, 0.25 and 1 exactly on it."""
    n = int(round((hi - lo) / step))
    grid = torch.tensor([round(lo + i * step, 10) for i in range(n + 1)], dtype=torch.float64)
    extra = torch.tensor([0.0, 0.1, -0.1, 0.2, -0.2, 0.25, 1.0], dtype=torch.float64)
    return torch.unique(torch.cat([grid, extra]))


@torch.no_grad()
def _losses_along(metric, ref: torch.Tensor, direction: torch.Tensor, t: torch.Tensor,
                  batch: int) -> torch.Tensor:
    score = metric.reference_scorer(ref)
    out = []
    for chunk in t.split(batch):
        x = (ref + chunk.to(ref)[:, None, None, None] * direction).clamp(0, 1)
        out.append(per_image_loss(score(x), metric.info).double().cpu())
    return torch.cat(out)


def _rise_at(t: torch.Tensor, rise: torch.Tensor, value: float) -> float:
    return float(rise[int(torch.argmin((t - value).abs()))])


def local_exponent(t: torch.Tensor, rise: torch.Tensor, s: float = 0.1,
                   symmetric: bool = True) -> float | None:
    """``log2(r(2 s) / r(s))`` (``r`` averaged over ``+-s`` when ``symmetric``); ``inf`` when the
    loss does not rise at all up to ``s`` but does at ``2 s`` (a flat-bottomed valley, e.g. MAD,
    which is exactly 0 for distortions below its visibility threshold); None when neither rises
    or a rise is negative (the reference is not a minimum there)."""
    def r(v):
        return (_rise_at(t, rise, v) + _rise_at(t, rise, -v)) / 2 if symmetric else \
            _rise_at(t, rise, v)

    r1, r2 = r(s), r(2 * s)
    if r1 == 0 and r2 > 0:
        return math.inf
    if not (r1 > 0 and r2 > 0):
        return None
    return math.log2(r2 / r1)


def _argmin(t: torch.Tensor, rise: torch.Tensor) -> float:
    """The grid ``t`` of the smallest rise; ties (a flat valley) go to the one nearest 0."""
    lowest = rise.min()
    tied = (rise <= lowest + 1e-12 * max(1.0, float(lowest.abs()))).nonzero().flatten()
    return float(t[tied[torch.argmin(t[tied].abs())]])


def scan_lines(metric, ref: torch.Tensor, restored: torch.Tensor, n_random: int = 4,
               seed: int = 0, t: torch.Tensor | None = None, batch: int = 8,
               exponent_step: float = 0.1) -> LineScan:
    """The :class:`LineScan` of ``metric`` (name or module) between ``ref`` and ``restored``."""
    ref = ref[None] if ref.ndim == 3 else ref
    restored = restored[None] if restored.ndim == 3 else restored
    if ref.shape != restored.shape or ref.shape[0] != 1:
        raise InputError(f"one restored image and its reference of the same shape are needed, "
                         f"got {tuple(restored.shape)} and {tuple(ref.shape)}")
    if isinstance(metric, str):
        metric = create_metric(metric, device=ref.device)
    if n_random < 0:
        raise ConfigError(f"n_random must be >= 0, got {n_random}", option="n_random")
    ref, restored = ref.float(), restored.float()
    t = default_grid() if t is None else t.double()
    direction = restored - ref
    norm = direction.norm()
    if norm == 0:
        raise InputError("the restored image equals the reference: there is no line to scan")
    with torch.no_grad():
        at_ref = float(per_image_loss(metric.reference_scorer(ref)(ref), metric.info)[0])
    restored_rise = _losses_along(metric, ref, direction, t, batch) - at_ref
    g = torch.Generator().manual_seed(seed)
    random_rise = []
    for _ in range(n_random):
        d = torch.randn(ref.shape, generator=g).to(ref)
        random_rise.append(_losses_along(metric, ref, d * (norm / d.norm()), t, batch) - at_ref)
    random_rise = torch.stack(random_rise) if random_rise else torch.zeros(0, len(t))
    r1 = _rise_at(t, restored_rise, 1.0)
    return LineScan(
        metric=metric.info.name, t=t, restored_rise=restored_rise, random_rise=random_rise,
        restored_argmin=_argmin(t, restored_rise),
        random_argmin=[_argmin(t, r) for r in random_rise],
        # towards the restored image only: the other side (t < 0) is a different distortion
        restored_exponent=local_exponent(t, restored_rise, exponent_step, symmetric=False),
        random_exponent=[local_exponent(t, r, exponent_step) for r in random_rise],
        flatness=_rise_at(t, restored_rise, 0.25) / r1 if r1 > 0 else None,
        loss_at_reference=at_ref)
