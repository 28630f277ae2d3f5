"""The discriminator zoo: one entry point, :func:`create_discriminator`, over a data registry.

Types (``network_d.type`` in a config; the other ``network_d`` keys are the options):

=====================  ======  ===============================================================
type                   level   network
=====================  ======  ===============================================================
``patchgan``           patch   pix2pix 70x70 NLayerDiscriminator with spectral norm
                               (opts: ndf=64, n_layers=3, spectral_norm=True)
``unet``               patch   Real-ESRGAN's UNetDiscriminatorSN, one logit per pixel
                               (opts: num_feat=64, skip_connection=True)
``vgg``                image   ESRGAN's VGG-style discriminator, exact at 128x128, pooled to 4x4
                               otherwise (opts: num_feat=64, spectral_norm=False)
``backbone``           either  a backbone from ``optiqa.backbones`` + SN head (opts: backbone,
                               head=image|patch, pretrained=True, freeze_backbone=False,
                               stage=-1, head_channels=256, spectral_norm=True, bn_eval=True)
``<backbone>_image``   image   shorthand for ``backbone`` with that backbone and head="image",
``<backbone>_patch``   patch   e.g. ``vgg16_patch``, ``dinov2_s14_image`` (same other opts)
=====================  ======  ===============================================================

``patch_stage`` is accepted as another name for ``stage``.
Every discriminator takes RGB ``NCHW`` images in [0, 1] and has ``.level`` in {"image", "patch"}:
image-level ones return ``(N,)`` logits, patch-level ones ``(N, 1, h, w)``.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from optiqa.models import backbones
from optiqa.core.checkpoints import load_into, read_checkpoint, unwrap_state_dict
from optiqa.core.errors import ConfigError
from optiqa.core.registry import Registry


@dataclass(frozen=True)
class DiscriminatorSpec:
    name: str
    factory: str          # "module:callable"
    level: str | None     # None: decided by the ``head`` option
    summary: str
    kwargs: dict = field(default_factory=dict)  # fixed options (aliases)


_S = "optiqa.nets.disc_scratch:"
_B = "optiqa.nets.disc_backbone:BackboneDiscriminator"

_SCRATCH = [
    DiscriminatorSpec("patchgan", _S + "PatchGANDiscriminator", "patch",
                      "pix2pix 70x70 PatchGAN (NLayer, n_layers=3, ndf=64), spectral norm"),
    DiscriminatorSpec("unet", _S + "UNetDiscriminatorSN", "patch",
                      "Real-ESRGAN U-Net discriminator with spectral norm, per-pixel logits"),
    DiscriminatorSpec("vgg", _S + "VGGStyleDiscriminator", "image",
                      "ESRGAN VGG-style discriminator (128x128; other sizes pooled to 4x4)"),
    DiscriminatorSpec("backbone", _B, None,
                      "optiqa.backbones feature extractor + spectral-norm image or patch head"),
]


def _resolve_backbone_alias(name: str) -> DiscriminatorSpec | None:
    """``<backbone>_image`` / ``<backbone>_patch`` for any backbone, also a user's."""
    bb, _, head = name.rpartition("_")
    if head not in ("image", "patch") or bb not in backbones.REGISTRY:
        return None
    what = "pooled features -> one logit" if head == "image" else \
        "1x1 convs -> one logit per location"
    return DiscriminatorSpec(name, _B, head, f"{backbones.spec(bb).title} + {what}",
                             {"backbone": bb, "head": head})


REGISTRY: Registry[DiscriminatorSpec] = Registry(
    "discriminator", {s.name: s for s in _SCRATCH}, resolver=_resolve_backbone_alias,
    resolvable=lambda: [f"{bb}_{h}" for bb in backbones.names() for h in ("image", "patch")])
OPTION_ALIASES = {"patch_stage": "stage"}


def list_discriminators() -> dict[str, DiscriminatorSpec]:
    """All discriminator types with their spec, in registry order."""
    return dict(REGISTRY.items())


def get_spec(type: str) -> DiscriminatorSpec:  # noqa: A002 - BasicSR's key name
    return REGISTRY.get(type)


def _factory(spec: DiscriminatorSpec):
    if callable(spec.factory):
        return spec.factory
    module_name, attr = spec.factory.split(":")
    return getattr(importlib.import_module(module_name), attr)


def describe_discriminator(network_d: Mapping | None) -> dict:
    """``{'level', 'backbone', 'architecture'}`` of a ``network_d`` mapping, without building it:
    image- or patch-level, the optiqa backbone (None for the scratch ones) and whether that
    network is convolutional or a Transformer (the scratch discriminators are convolutional)."""
    if not network_d:
        return {"level": None, "backbone": None, "architecture": None}
    spec = get_spec(network_d["type"])
    opts = {**dict(network_d), **spec.kwargs}
    backbone = opts.get("backbone") if "backbone" in inspect.signature(
        _factory(spec)).parameters else None
    level = spec.level or opts.get("head", "image")
    architecture = backbones.spec(backbone).architecture if backbone else "conv"
    return {"level": level, "backbone": backbone, "architecture": architecture}


def discriminator_options(d_type: str) -> set[str]:
    """The option names ``create_discriminator(d_type, ...)`` accepts (without building it)."""
    params = inspect.signature(_factory(get_spec(d_type))).parameters
    aliases = {a for a, canonical in OPTION_ALIASES.items() if canonical in params}
    return set(params) | aliases


def create_discriminator(type: str, **opts) -> nn.Module:  # noqa: A002 - BasicSR's key name
    """Build the discriminator ``type`` with options ``opts`` (see the module table).

    Unknown types raise :class:`UnknownNameError`, unknown or conflicting options
    :class:`ConfigError`, both before any weights are built. ``create_discriminator(**network_d)``
    works directly on a BasicSR-style ``network_d`` mapping.
    """
    spec = get_spec(type)
    opts = dict(opts)
    for alias, canonical in OPTION_ALIASES.items():
        if alias in opts:
            if canonical in opts:
                raise ConfigError(f"discriminator {type!r}: give either {alias!r} or "
                                  f"{canonical!r}, not both")
            opts[canonical] = opts.pop(alias)
    for key, fixed in spec.kwargs.items():
        if key in opts and opts[key] != fixed:
            raise ConfigError(f"discriminator {type!r} fixes {key}={fixed!r}; got {key}="
                              f"{opts[key]!r} (use type 'backbone' to choose it)")
        opts[key] = fixed
    factory = _factory(spec)
    params = inspect.signature(factory).parameters
    unknown = sorted(set(opts) - set(params))
    if unknown:
        valid = sorted(set(params) - set(spec.kwargs))
        raise ConfigError(f"discriminator {type!r}: unknown option(s) {', '.join(unknown)}; "
                          f"valid options: {', '.join(valid)}")
    if "backbone" in params and "backbone" not in opts:
        raise ConfigError(f"discriminator {type!r} needs a 'backbone' option; valid backbones: "
                          f"{', '.join(backbones.names())}")
    return factory(**opts)


def convert_legacy_spectral_norm(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """Rename keys of ``torch.nn.utils.spectral_norm`` (BasicSR, Real-ESRGAN checkpoints) to
    those of ``torch.nn.utils.parametrizations.spectral_norm`` used here.

    ``X.weight_orig -> X.parametrizations.weight.original``, ``X.weight_u -> ...weight.0._u``,
    ``X.weight_v -> ...weight.0._v``; both store the unnormalised weight and the same power-
    iteration vectors, so the converted network computes the same function. Other keys pass.
    """
    renames = {"weight_orig": "parametrizations.weight.original",
               "weight_u": "parametrizations.weight.0._u",
               "weight_v": "parametrizations.weight.0._v"}
    out = {}
    for key, value in state_dict.items():
        prefix, dot, leaf = key.rpartition(".")
        out[prefix + dot + renames[leaf] if leaf in renames else key] = value
    return out


def load_discriminator_checkpoint(model: nn.Module, path_or_state, strict: bool = True,
                                  what: str | None = None) -> int:
    """Load a discriminator checkpoint (a path or a state dict, optionally wrapped BasicSR-style
    as ``{'params': ...}``) with legacy spectral-norm keys converted; mismatches raise
    :class:`~optiqa.core.checkpoints.CheckpointError` naming the keys. Returns the tensor count."""
    source = str(path_or_state) if isinstance(path_or_state, (str, Path)) else "checkpoint"
    state = read_checkpoint(path_or_state) if isinstance(path_or_state, (str, Path)) \
        else path_or_state
    params, _ = unwrap_state_dict(state, "auto", source)
    return load_into(model, convert_legacy_spectral_norm(params), strict,
                     what or f"discriminator {type(model).__name__}", source)
