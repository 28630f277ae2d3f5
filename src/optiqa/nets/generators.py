"""Restoration generators: one entry point, :func:`create_generator`, over a registry kept as data.

=================  ===================================================================
type               network (options override the preset; see each module's docstring)
=================  ===================================================================
``swinir``         SwinIR classical SR x4: embed 180, 6 RSTBs x 6 layers, 6 heads, window 8,
                   MLP ratio 2, pixelshuffle upsampler, img_range 1, DIV2K mean
``swinir_light``   SwinIR lightweight SR x4: embed 60, 4 RSTBs x 6 layers, pixelshuffledirect
``rrdbnet``        ESRGAN RRDBNet: num_feat 64, num_block 23, num_grow_ch 32, x4 (two nearest x2)
``srresnet``       BasicSR MSRResNet: num_feat 64, num_block 16 (smaller for CPU runs)
``hat``            HAT (CVPR 2023) SRx4: embed 180, 6 RHAGs x 6 HABs, window 16 (spandrel)
``hat_s``          HAT-S: embed 144, compress 24, squeeze 24
``hat_l``          HAT-L: 12 RHAGs
``span``           SPAN (NTIRE 2024 efficient SR winner): 48 channels, 6 SPABs (spandrel)
``omnisr``         Omni-SR (CVPR 2023): 64 channels, 5 OSAGs, window 8 (spandrel)
``bicubic``        no parameters: MATLAB-style bicubic upsampling (the baseline row of SR tables)
=================  ===================================================================

HAT, SPAN and Omni-SR are spandrel's implementations with the official parameter names
(:mod:`optiqa.nets.community`); SwinIR, RRDBNet and MSRResNet are ours.

Every generator maps ``lr`` (RGB ``NCHW`` in [0, 1]) to ``(N, 3, H*scale, W*scale)`` and has
``.scale``; ``create_generator(**network_g)`` works on a BasicSR-style ``network_g`` mapping.
:func:`load_generator_checkpoint` loads our run checkpoints and the official releases (SwinIR's
``params``/``params_ema`` files; BasicSR, ESRGAN-2018 and ESRGAN-2019 RRDBNet files).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from optiqa.core.checkpoints import CheckpointError, load_into, read_checkpoint, unwrap_state_dict
from optiqa.core.errors import ConfigError
from optiqa.nets.generator_specs import REGISTRY, GeneratorSpec  # noqa: F401 (public names)


def _load(ref):
    """A "module:callable" reference imported on first use (or a callable, for user entries)."""
    if callable(ref):
        return ref
    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(module_name), attr)


class BicubicUpsampler(nn.Module):
    """Bicubic interpolation by ``scale`` (MATLAB ``imresize``): the SR baseline, no parameters."""

    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x):
        from optiqa.ops.resize import imresize

        h, w = x.shape[-2:]
        return imresize(x, size=(h * self.scale, w * self.scale))


def list_generators() -> dict[str, GeneratorSpec]:
    return dict(REGISTRY.items())


def generator_options(gen_type: str) -> set[str]:
    """The option names ``create_generator(gen_type, ...)`` accepts (without building it)."""
    spec = REGISTRY.get(gen_type)
    valid = set(inspect.signature(_load(spec.options or spec.factory)).parameters)
    if spec.options:  # SwinIR / MSRResNet: also the official option name ``upscale``
        valid.add("upscale")
    return valid


def create_generator(type: str, **opts) -> nn.Module:  # noqa: A002 - BasicSR's key name
    """Build generator ``type`` (see the module table); unknown type -> :class:`UnknownNameError`,
    unknown option -> :class:`ConfigError` naming it."""
    spec = REGISTRY.get(type)
    factory = _load(spec.factory)
    valid = generator_options(type)
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
                raise ConfigError(f"architecture {text!r}: expected TYPE:key=value,..., got {item!r}",
                                  option="arch")
            out[key.strip()] = yaml.safe_load(value)
    return out


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`load_generator_checkpoint` loaded: the wrapper key (``params_ema``,
    ``params``, or ``None`` for a bare state dict), the key layout, and the tensor count."""

    key: str | None
    layout: str
    tensors: int


def load_generator_checkpoint(model: nn.Module, path_or_state, key: str = "auto",
                              strict: bool = True) -> CheckpointInfo:
    """Load weights into ``model`` from a file or a (possibly wrapped) state dict.

    ``key``: ``auto`` prefers ``params_ema`` (the EMA weights BasicSR-style runs and the official
    SwinIR GAN releases keep) over ``params``; or name one. ``module.`` prefixes (DDP) are
    stripped; official layouts are renamed by the model's ``convert_state_dict``. Reading and
    mismatch reports are :mod:`optiqa.core.checkpoints`' (one :class:`CheckpointError`).
    """
    source = str(path_or_state) if isinstance(path_or_state, (str, Path)) else "checkpoint"
    state = read_checkpoint(path_or_state) if isinstance(path_or_state, (str, Path)) \
        else path_or_state
    params, used = unwrap_state_dict(state, key, source)
    layout = "optiqa"
    convert = getattr(model, "convert_state_dict", None)
    if convert is not None:
        try:
            params, layout = convert(params)
        except ValueError as e:
            raise CheckpointError(f"{source} does not fit {type(model).__name__}: {e}") from None
    load_into(model, params, strict, f"{type(model).__name__} ({layout} layout)", source)
    return CheckpointInfo(used, layout, len(params))
