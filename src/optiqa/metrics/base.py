"""The metric contract, full-reference and no-reference.

A metric is a frozen ``nn.Module``. A full-reference one (:class:`FRMetric`, ``info.kind ==
'fr'``): ``m(x, ref)`` returns per-image scores ``(N,)`` in the metric's published orientation,
``m.loss(x, ref)`` a scalar that is always minimised; argument order is always (distorted,
reference). A no-reference one (:class:`NRMetric`, ``info.kind == 'nr'``) is called as ``m(x)``
and ``m.loss(x)``. Calling either the other way raises. Inputs are RGB ``NCHW`` floats in [0, 1];
1-channel input is expanded to RGB; anything else raises :class:`~optiqa.core.errors.InputError`
(a ``ValueError``) that names the problem. Input validation lives in one place,
:func:`check_pair` / :func:`check_image`.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Union

import torch
from torch import nn

from optiqa.core.errors import InputError


@dataclass(frozen=True)
class MetricInfo:
    """Metadata of a metric, kept as data (see :mod:`optiqa.metrics.registry`).

    ``approach`` groups metrics by how they are built (``pixel``, ``ssim``, ``deep``, ...: what
    e.g. bf16 autocast depends on), unlike the circularity rule's families
    (:func:`optiqa.evaluators.family_of`); ``citation`` is the paper or implementation the
    metric follows. ``score_range`` is the (best-or-worst) interval the score lives in;
    ``min_size`` the smallest height/width the metric accepts; ``backbone`` names the backbone whose *pretrained* weights the
    metric needs (``None`` when it needs no downloaded weights); ``colour`` says what the metric
    looks at: ``rgb``, ``y`` (BT.601 luma), ``gray`` (MATLAB rgb2gray) or ``yiq``/``lmn``.
    """

    name: str
    lower_better: bool
    differentiable: bool
    score_range: tuple[float, float]
    approach: str
    citation: str
    min_size: int = 1
    colour: str = "rgb"
    backbone: str | None = None
    summary: str = ""
    kind: str = "fr"    # "fr": m(x, ref); "nr": m(x), no reference
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def orientation(self) -> str:
        return "lower is better" if self.lower_better else "higher is better"

    @property
    def family(self) -> str:
        """Old name of :attr:`approach` (kept for one release)."""
        warnings.warn("MetricInfo.family is now MetricInfo.approach (the circularity rule's "
                      "families are optiqa.evaluators.family_of); the old name goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        return self.approach

    @property
    def reference(self) -> str:
        """Old name of :attr:`citation` (kept for one release)."""
        warnings.warn("MetricInfo.reference is now MetricInfo.citation (a 'reference' is an "
                      "image here); the old name goes in 0.3", DeprecationWarning, stacklevel=2)
        return self.citation

    @property
    def perfect_score(self) -> float:
        """Score of an image compared with itself (inf/-inf where unbounded)."""
        lo, hi = self.score_range
        return lo if self.lower_better else hi


# MetricInfo(family=..., reference=...) as before 0.2.1: accepted for one release
_RENAMED = {"family": "approach", "reference": "citation"}
_dataclass_init = MetricInfo.__init__


@functools.wraps(_dataclass_init)
def _init_accepting_old_names(self, *args, **kwargs):
    for old, new in _RENAMED.items():
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"MetricInfo: give {new}= only (not also {old}=)")
            warnings.warn(f"MetricInfo({old}=...) is now MetricInfo({new}=...); the old name "
                          "goes in 0.3", DeprecationWarning, stacklevel=2)
            kwargs[new] = kwargs.pop(old)
    _dataclass_init(self, *args, **kwargs)


MetricInfo.__init__ = _init_accepting_old_names


@dataclass(frozen=True)
class MetricSpec:
    """A registry entry: the metric's info and how to build it."""

    info: MetricInfo
    # "module:callable" (built-ins, imported on first use) or a callable (user metrics);
    # called as factory(info=info, **kwargs)
    factory: Union[str, Callable]
    kwargs: dict = field(default_factory=dict)


# Values a hair outside [0, 1] come from float rounding (e.g. 1.0000001 after a colour transform);
# anything further out is an input error.
RANGE_TOLERANCE = 1e-5


def check_image_tensor(x, what: str = "input") -> torch.Tensor:
    """Validate one ``NCHW`` image tensor's type, rank, channels and dtype; expand grey to RGB."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(f"{what}: expected a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{what}: expected a floating-point tensor in [0, 1], got dtype {x.dtype} "
                         "(convert integer images with x.float() / 255)")
    c = x.shape[1]
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif c != 3:
        raise InputError(f"{what}: expected 1 or 3 channels (RGB, NCHW), got {c} channels "
                         f"in shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{what}: empty batch")
    return x


def check_values(*tensors: torch.Tensor, names=("distorted", "reference")) -> None:
    """Raise if any tensor holds NaN/inf or values outside [0, 1].

    One ``aminmax`` per tensor and a single host sync: NaN propagates into min/max, so the fast
    path costs no extra pass; the slow diagnosis runs only when something is wrong.
    """
    stats = torch.stack([torch.stack(torch.aminmax(t.detach().float())) for t in tensors])
    lo_hi = stats.cpu()
    for (lo, hi), t, name in zip(lo_hi.tolist(), tensors, names):
        if lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE:
            continue
        td = t.detach()
        if torch.isnan(td).any():
            raise InputError(f"{name}: tensor contains NaN values")
        if torch.isinf(td).any():
            raise InputError(f"{name}: tensor contains infinite values")
        raise InputError(f"{name}: values must lie in [0, 1], found range [{lo:.4g}, {hi:.4g}] "
                         "(scale 0-255 images by 1/255)")


def check_pair(x, ref, min_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (distorted, reference) pair and return both as RGB ``NCHW``.

    Checks: tensor type, 4-D, floating dtype, 1 or 3 channels (1 is expanded), equal shapes,
    height and width at least ``min_size``, finite values in [0, 1].
    """
    x = check_image_tensor(x, "distorted")
    ref = check_image_tensor(ref, "reference")
    if x.shape != ref.shape:
        raise InputError(f"distorted and reference shapes differ: {tuple(x.shape)} vs "
                         f"{tuple(ref.shape)}")
    h, w = x.shape[-2:]
    if min(h, w) < min_size:
        raise InputError(f"image of {w}x{h} is too small for this metric: it needs at least "
                         f"{min_size}x{min_size}")
    check_values(x, ref)
    return x, ref


def check_image(x, min_size: int = 1) -> torch.Tensor:
    """Validate one image batch for a no-reference metric and return it as RGB ``NCHW``."""
    x = check_image_tensor(x, "image")
    h, w = x.shape[-2:]
    if min(h, w) < min_size:
        raise InputError(f"image of {w}x{h} is too small for this metric: it needs at least "
                         f"{min_size}x{min_size}")
    check_values(x, names=("image",))
    return x


def loss_from_scores(scores: torch.Tensor, info: MetricInfo) -> torch.Tensor:
    """Turn per-image scores into a scalar to *minimise*, from the metric's orientation.

    Bounded metrics are shifted so that the loss is 0 at ``x == ref``
    (``1 - SSIM``, ``DISTS - 0``); unbounded higher-better metrics are negated (``-PSNR``).
    """
    best = info.perfect_score
    mean = scores.mean()
    if info.lower_better:
        return mean - best if math.isfinite(best) else mean
    return best - mean if math.isfinite(best) else -mean


class Metric(nn.Module):
    """The base class of every optiqa metric module (``isinstance(m, Metric)``; a tuple of the
    two kinds before 0.2.1). What full- and no-reference metric modules share: ``info``, the minimum input side, the
    float32-without-autocast default of :meth:`compute` (``runs_under_autocast`` opts out), the
    weight files a result cache hashes, and the repr."""

    runs_under_autocast = False

    def __init__(self, info: MetricInfo | None = None):
        super().__init__()
        self.info = info

    @property
    def min_size(self) -> int:
        return self.info.min_size if self.info is not None else 1

    @property
    def _name(self) -> str:
        return repr(self.info.name) if self.info is not None else type(self).__name__

    def _precision(self, x: torch.Tensor):
        if self.runs_under_autocast or not torch.is_autocast_enabled(x.device.type):
            return contextlib.nullcontext()
        return torch.autocast(device_type=x.device.type, enabled=False)

    def _cast(self, *tensors):
        return tensors if self.runs_under_autocast else tuple(t.float() for t in tensors)

    def weight_files(self) -> list:
        """The files whose contents decide this metric's scores (pretrained weights, trained
        heads, model files), so that a result cache can hash them. Default: none."""
        return []

    def extra_repr(self) -> str:
        return f"name={self.info.name!r}" if self.info is not None else ""


class FRMetric(Metric):
    """Base class of every full-reference metric module.

    Subclasses implement :meth:`compute` on validated RGB tensors. By default ``compute`` runs in
    float32 with autocast disabled: classical metrics subtract nearly equal moments
    (``E[x^2] - E[x]^2``) and lose all precision in bf16. Deep metrics set
    ``runs_under_autocast = True`` to let their backbone use the caller's autocast.
    """

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if ref is None:
            raise InputError(f"{self._name} is a full-reference metric: call it as m(x, ref) "
                             "with the reference image")
        x, ref = check_pair(x, ref, self.min_size)
        with self._precision(x):
            return self.compute(*self._cast(x, ref))

    def compute(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- one reference, many distorted versions -------------------------------------------
    def prepare_reference(self, ref: torch.Tensor):
        """Reference-side work of :meth:`compute` for one validated reference ``(1, 3, H, W)``.

        IQA databases distort each reference many times (KADID-10k: 125 times); metrics whose
        reference side is costly (DISTS features, SSIM moments) override this and
        :meth:`compute_prepared` so that it is done once. The default shares nothing.
        """
        return ref

    def compute_prepared(self, x: torch.Tensor, prepared) -> torch.Tensor:
        """Scores of ``x`` against a :meth:`prepare_reference` result (default: :meth:`compute`)."""
        return self.compute(x, prepared.expand(x.shape[0], -1, -1, -1))

    def reference_scorer(self, ref: torch.Tensor):
        """``score(x)`` for distorted images ``x (N, 3, H, W)`` of one reference ``ref``, doing
        the reference's share of the work once; equals ``self(x, ref.expand_as(x))`` up to float
        rounding, with the same input validation."""
        if ref.ndim != 4 or ref.shape[0] != 1:
            raise InputError(f"reference_scorer takes one reference (1, C, H, W), "
                             f"got shape {tuple(ref.shape)}")
        ref = check_pair(ref, ref, self.min_size)[1]
        with self._precision(ref):
            prepared = self.prepare_reference(*self._cast(ref))

        def score(x: torch.Tensor) -> torch.Tensor:
            x = check_pair(x, ref.expand(x.shape[0], -1, -1, -1), self.min_size)[0]
            with self._precision(x):
                return self.compute_prepared(*self._cast(x), prepared)

        return score

    def loss(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Scalar training loss, minimised at ``x == ref`` whatever the metric's orientation."""
        return loss_from_scores(self(x, ref), self.info)


class NRMetric(Metric):
    """Base class of every no-reference metric module: ``m(x)`` -> ``(N,)`` scores.

    Subclasses implement :meth:`compute` on validated RGB tensors; it runs in float32 with
    autocast disabled unless ``runs_under_autocast``. A metric that is not differentiable sets
    ``info.differentiable = False`` and :meth:`loss` refuses.
    """

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if ref is not None:
            raise InputError(f"{self._name} is a no-reference metric: call it as m(x), without "
                             "a reference image")
        x = check_image(x, self.min_size)
        with self._precision(x):
            return self.compute(*self._cast(x))

    def compute(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def loss(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar training loss (always minimised); only for differentiable NR metrics."""
        if self.info is not None and not self.info.differentiable:
            raise InputError(f"{self._name} is not differentiable and cannot be a training loss")
        return loss_from_scores(self(x, ref), self.info)


