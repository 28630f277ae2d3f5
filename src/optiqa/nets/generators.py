"""Restoration generators: one entry point, :func:`create_generator`, over a registry kept as data.

=================  ===================================================================
type               network (options override the preset; see each module's docstring)
=================  ===================================================================
``swinir``         SwinIR classical SR x4: embed 180, 6 RSTBs x 6 layers, 6 heads, window 8,
                   MLP ratio 2, pixelshuffle upsampler, img_range 1, DIV2K mean
``swinir_light``   SwinIR lightweight SR x4: embed 60, 4 RSTBs x 6 layers, pixelshuffledirect
``rrdbnet``        ESRGAN RRDBNet: num_feat 64, num_block 23, num_grow_ch 32, x4 (two nearest x2)
``srresnet``       BasicSR MSRResNet: num_feat 64, num_block 16 (smaller for CPU runs)
``bicubic``        no parameters: MATLAB-style bicubic upsampling (the baseline row of SR tables)
=================  ===================================================================

Every generator maps ``lr`` (RGB ``NCHW`` in [0, 1]) to ``(N, 3, H*scale, W*scale)`` and has
``.scale``; ``create_generator(**network_g)`` works on a BasicSR-style ``network_g`` mapping.
:func:`load_generator_checkpoint` loads our run checkpoints and the official releases (SwinIR's
``params``/``params_ema`` files; BasicSR, ESRGAN-2018 and ESRGAN-2019 RRDBNet files).
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from optiqa.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    factory: str  # "module:callable"
    summary: str
    options: str | None = None  # "module:Class" whose signature lists the valid options


_N = "optiqa.nets."
REGISTRY: dict[str, GeneratorSpec] = {s.name: s for s in [
    GeneratorSpec("swinir", _N + "swinir:swinir", "SwinIR classical SR (embed 180, 6x6, window 8)",
                  _N + "swinir:SwinIR"),
    GeneratorSpec("swinir_light", _N + "swinir:swinir_light",
                  "SwinIR lightweight SR (embed 60, 4x6, pixelshuffledirect)",
                  _N + "swinir:SwinIR"),
    GeneratorSpec("rrdbnet", _N + "rrdbnet:RRDBNet", "ESRGAN RRDBNet (64 feat, 23 RRDB, gc 32)"),
    GeneratorSpec("srresnet", _N + "srresnet:srresnet", "MSRResNet (BasicSR), small for CPU",
                  _N + "srresnet:MSRResNet"),
    GeneratorSpec("bicubic", _N + "generators:BicubicUpsampler",
                  "MATLAB-style bicubic upsampling, no parameters (baseline)"),
]}


def _load(ref: str):
    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(module_name), attr)


class BicubicUpsampler(nn.Module):
    """Bicubic interpolation by ``scale`` (MATLAB ``imresize``): the SR baseline, no parameters."""

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x):
        from optiqa.data.resize import imresize

        h, w = x.shape[-2:]
        return imresize(x, size=(h * self.scale, w * self.scale))


def list_generators() -> dict[str, GeneratorSpec]:
    return dict(REGISTRY)


def create_generator(type: str, **opts) -> nn.Module:  # noqa: A002 - BasicSR's key name
    """Build generator ``type`` (see the module table); unknown type -> :class:`UnknownNameError`,
    unknown option -> :class:`ConfigError` naming it."""
    try:
        spec = REGISTRY[type]
    except KeyError:
        raise UnknownNameError("generator", type, REGISTRY) from None
    factory = _load(spec.factory)
    valid = set(inspect.signature(_load(spec.options or spec.factory)).parameters)
    if spec.options:  # SwinIR / MSRResNet: also the official option name ``upscale``
        valid.add("upscale")
    unknown = sorted(set(opts) - valid)
    if unknown:
        raise ConfigError(f"generator {type!r}: unknown option(s) {', '.join(unknown)}; valid "
                          f"options: {', '.join(sorted(valid))}")
    try:
        return factory(**opts)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"generator {type!r}: {e}") from None


def parse_arch(text: str) -> dict:
    """``TYPE[:k=v,...]`` -> ``{'type': TYPE, k: v, ...}``; values parsed as YAML
    (``swinir:scale=2,attn_impl=sdpa``, ``srresnet:num_feat=32,num_block=4``)."""
    import yaml

    kind, _, rest = text.partition(":")
    out = {"type": kind.strip()}
    if rest.strip():
        # split on commas that start a new "k=" item, so list values like depths=[6,6] survive
        items, depth = [], 0
        cur = ""
        for ch in rest:
            depth += ch in "[{(" and 1 or 0
            depth -= ch in "]})" and 1 or 0
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
            else:
                cur += ch
        items.append(cur)
        for item in items:
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--arch {text!r}: expected TYPE:key=value,..., got {item!r}")
            out[key.strip()] = yaml.safe_load(value)
    return out


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`load_generator_checkpoint` loaded: the wrapper key (``params_ema``,
    ``params``, or ``None`` for a bare state dict), the key layout, and the tensor count."""

    key: str | None
    layout: str
    tensors: int


def read_checkpoint(path) -> Mapping:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, pickle with code objects, not a torch file
        raise ConfigError(f"{path}: cannot read checkpoint ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None


def select_params(state: Mapping, key: str = "auto") -> tuple[Mapping, str | None]:
    """The state dict inside a checkpoint: ``params_ema`` when present (``key='auto'``), else
    ``params``, else ``state_dict``, else the mapping itself when it holds tensors."""
    if key != "auto":
        if key not in state:
            raise ConfigError(f"checkpoint has no {key!r} entry (it has: "
                              f"{', '.join(map(str, list(state)[:8]))})")
        return state[key], key
    for k in ("params_ema", "params", "state_dict"):
        if k in state and isinstance(state[k], Mapping):
            return state[k], k
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state, None
    raise ConfigError(f"checkpoint holds no parameters (keys: {', '.join(map(str, state))})")


def load_generator_checkpoint(model: nn.Module, path_or_state, key: str = "auto",
                              strict: bool = True) -> CheckpointInfo:
    """Load weights into ``model`` from a file or a (possibly wrapped) state dict.

    ``key``: ``auto`` prefers ``params_ema`` (the EMA weights BasicSR-style runs and the official
    SwinIR GAN releases keep) over ``params``; or name one. ``module.`` prefixes (DDP) are
    stripped; official layouts are renamed by the model's ``convert_state_dict``. Loads use
    ``weights_only=True``. Mismatches raise :class:`ConfigError` listing the first few keys.
    """
    state = read_checkpoint(path_or_state) if isinstance(path_or_state, (str, Path)) \
        else path_or_state
    params, used = select_params(state, key)
    params = {k.removeprefix("module."): v for k, v in params.items()}
    layout = "optiqa"
    convert = getattr(model, "convert_state_dict", None)
    if convert is not None:
        try:
            params, layout = convert(params)
        except ValueError as e:
            raise ConfigError(f"checkpoint does not fit {type(model).__name__}: {e}") from None
    own = model.state_dict()
    problems = []
    missing = [k for k in own if k not in params]
    unexpected = [k for k in params if k not in own]
    shapes = [f"{k} {tuple(params[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in params and params[k].shape != own[k].shape]
    for what, items in (("missing", missing), ("unexpected", unexpected),
                        ("shape mismatch", shapes)):
        if items and (strict or what == "shape mismatch"):
            more = f" (+{len(items) - 4} more)" if len(items) > 4 else ""
            problems.append(f"{what}: {', '.join(items[:4])}{more}")
    if problems:
        raise ConfigError(f"checkpoint does not fit {type(model).__name__} "
                          f"({layout} layout): " + "; ".join(problems))
    model.load_state_dict(params, strict=strict)
    return CheckpointInfo(used, layout, len(params))
