"""The metric registry: every metric's metadata and constructor, as data.

Nothing registers itself at import time: the table below is the single list of metric names, so
``list_metrics()`` needs no heavy imports and the family modules load only when a metric is created.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch

from optiqa import backbones
from optiqa.errors import UnknownNameError
from optiqa.metrics.base import FRMetric, MetricInfo

INF = float("inf")
# DISTS = sum alpha (1 - l) + beta (1 - s): the structure term s is a correlation in [-1, 1], and
# backbones with signed features (ConvNeXt, Swin, ViTs) also give texture terms l < 0, so the
# score can exceed 1 (anti-correlated images) though natural distortions stay in [0, 1].
DISTS_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class MetricSpec:
    info: MetricInfo
    factory: str  # "module:callable", called as callable(info=info, **kwargs)
    kwargs: dict = field(default_factory=dict)


def _spec(name, factory, *, lower_better, differentiable, score_range, family, reference,
          min_size=1, colour="rgb", backbone=None, summary="", **kwargs) -> MetricSpec:
    info = MetricInfo(name=name, lower_better=lower_better, differentiable=differentiable,
                      score_range=score_range, family=family, reference=reference,
                      min_size=min_size, colour=colour, backbone=backbone, summary=summary)
    return MetricSpec(info, factory, kwargs)


_P = "optiqa.metrics."

_CLASSICAL = [
    _spec("l1", _P + "pixel:L1", lower_better=True, differentiable=True, score_range=(0.0, 1.0),
          family="pixel", reference="mean absolute error", summary="mean |x - ref| over RGB"),
    _spec("mse", _P + "pixel:MSE", lower_better=True, differentiable=True, score_range=(0.0, 1.0),
          family="pixel", reference="mean squared error", summary="mean (x - ref)^2 over RGB"),
    _spec("psnr", _P + "pixel:PSNR", lower_better=False, differentiable=True,
          score_range=(0.0, INF), family="pixel", reference="peak signal-to-noise ratio",
          summary="10 log10(1 / MSE) on RGB, data range 1"),
    _spec("psnr_y", _P + "pixel:PSNR", lower_better=False, differentiable=True,
          score_range=(0.0, INF), family="pixel", colour="y",
          reference="PSNR on the BT.601 Y channel (SR convention)",
          summary="PSNR on BT.601 Y; SR tables add a border crop = scale", channel="y"),
    _spec("ssim", _P + "ssim:SSIM", lower_better=False, differentiable=True,
          score_range=(-1.0, 1.0), family="ssim", colour="gray", min_size=11,
          reference="Wang et al., Image quality assessment: from error visibility to structural "
                    "similarity, IEEE TIP 2004 (official ssim_index.m on the 8-bit grey image)"),
    _spec("ssim_y", _P + "ssim:SSIM", lower_better=False, differentiable=True,
          score_range=(-1.0, 1.0), family="ssim", colour="y", min_size=11,
          reference="SSIM on BT.601 Y, no downsampling (SR convention)", variant="y"),
    _spec("ms_ssim", _P + "ssim:MSSSIM", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), family="ssim", colour="gray", min_size=11,
          reference="Wang, Simoncelli & Bovik, Multi-scale structural similarity for image "
                    "quality assessment, Asilomar 2003"),
    _spec("cw_ssim", _P + "ssim:CWSSIM", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), family="ssim", colour="gray", min_size=64,
          reference="Sampat et al., Complex wavelet structural similarity, IEEE TIP 2009 "
                    "(cwssim_index.m: 4 levels, 8 orientations, K=0)"),
    _spec("gmsd", _P + "gmsd:GMSD", lower_better=True, differentiable=True,
          score_range=(0.0, INF), family="gradient", colour="gray", min_size=4,
          reference="Xue et al., Gradient magnitude similarity deviation, IEEE TIP 2014 "
                    "(official GMSD.m)"),
    _spec("nlpd", _P + "nlpd:NLPD", lower_better=True, differentiable=True,
          score_range=(0.0, INF), family="pyramid", colour="gray", min_size=17,
          reference="Laparra et al., Perceptual image quality assessment using a normalized "
                    "Laplacian pyramid, HVEI 2016 (official NLP_dist.m)"),
    _spec("fsim", _P + "fsim:FSIM", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), family="phase congruency", colour="yiq", min_size=16,
          reference="Zhang et al., FSIM: a feature similarity index for image quality "
                    "assessment, IEEE TIP 2011 (FSIMc)"),
    _spec("vsi", _P + "vsi:VSI", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), family="saliency", colour="lmn", min_size=16,
          reference="Zhang, Shen & Li, VSI: a visual saliency-induced index for perceptual "
                    "image quality assessment, IEEE TIP 2014"),
    _spec("vif", _P + "vif:VIF", lower_better=False, differentiable=True,
          score_range=(0.0, INF), family="information", colour="gray", min_size=32,
          reference="Sheikh & Bovik, Image information and visual quality, IEEE TIP 2006 "
                    "(wavelet-domain VIF, vifvec)"),
    _spec("mad", _P + "mad:MAD", lower_better=True, differentiable=True,
          score_range=(0.0, INF), family="most apparent distortion", colour="gray", min_size=34,
          reference="Larson & Chandler, Most apparent distortion: full-reference image quality "
                    "assessment and the role of strategy, J. Electronic Imaging 2010 "
                    "(official MAD_index.m, 2011 release)"),
]

_DEEP = [
    _spec("lpips_alex", _P + "deep:LPIPS", lower_better=True, differentiable=True,
          score_range=(0.0, INF), family="deep", backbone="alexnet", min_size=32,
          reference="Zhang et al., The unreasonable effectiveness of deep features as a "
                    "perceptual metric, CVPR 2018 (v0.1 linear heads)", net="alex"),
    _spec("lpips_vgg", _P + "deep:LPIPS", lower_better=True, differentiable=True,
          score_range=(0.0, INF), family="deep", backbone="vgg16", min_size=32,
          reference="Zhang et al., CVPR 2018 (LPIPS v0.1, VGG-16)", net="vgg"),
    _spec("dists", _P + "deep:DISTS", lower_better=True, differentiable=True,
          score_range=DISTS_RANGE, family="deep", backbone="vgg16", min_size=32,
          reference="Ding et al., Image quality assessment: unifying structure and texture "
                    "similarity, IEEE TPAMI 2020 (official alpha/beta)",
          backbone_name="vgg16", weights="official"),
]


def _dists_family() -> list[MetricSpec]:
    specs = []
    for bb in backbones.names():
        spec = backbones.spec(bb)
        specs.append(_spec(
            f"dists_{bb}", _P + "deep:DISTS", lower_better=True, differentiable=True,
            score_range=DISTS_RANGE, family="deep",
            backbone=bb if spec.needs_download else None, min_size=spec.min_size,
            reference=f"DISTS formula (Ding et al. 2020) on {spec.title} features; uniform "
                      "alpha/beta unless weights= is given",
            backbone_name=bb))
    return specs


REGISTRY: dict[str, MetricSpec] = {s.info.name: s for s in _CLASSICAL + _DEEP + _dists_family()}


def get_spec(name: str) -> MetricSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownNameError("metric", name, REGISTRY) from None


def create_metric(name: str, device: str | torch.device = "cpu", **kwargs) -> FRMetric:
    """Create a registered metric as a frozen module in eval mode on ``device``.

    ``kwargs`` go to the metric's constructor (e.g. ``weights=`` for the DISTS-style family).
    """
    spec = get_spec(name)
    module_name, attr = spec.factory.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    metric = factory(info=spec.info, **{**spec.kwargs, **kwargs})
    metric.requires_grad_(False)
    return metric.eval().to(device)


def list_metrics() -> dict[str, MetricInfo]:
    """All metric names with their :class:`MetricInfo`, in registry order."""
    return {name: spec.info for name, spec in REGISTRY.items()}


def metric_available_offline(name: str) -> bool:
    """True when the metric can be created without downloading anything."""
    bb = get_spec(name).info.backbone
    return bb is None or backbones.weights_available(bb)
