"""Community SR architectures through spandrel: HAT, SPAN, OmniSR, and checkpoint detection.

The networks are spandrel's implementations (``spandrel``, MIT licence, the loader of chaiNNer
and ComfyUI), which keep the official parameter names, so our run checkpoints and the official
releases share one key layout. Options are the official BasicSR-style ``network_g`` keys
(``upscale`` or our ``scale``); presets are the papers' configurations:

- ``hat``   HAT (Chen, Wang, Zhou, Qiao & Dong, "Activating More Pixels in Image
  Super-Resolution Transformer", CVPR 2023): embed 180, 6 RHAGs x 6 HABs, 6 heads, window 16,
  compress 3, squeeze 30, overlap 0.5, MLP ratio 2 (``train_HAT_SRx4_*.yml``);
  ``hat_s``: embed 144, compress 24, squeeze 24; ``hat_l``: 12 RHAGs.
- ``span``  SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient
  Super-Resolution", CVPRW 2024, NTIRE 2024 ESR winner): 48 channels, 6 SPABs, inputs scaled by
  ``img_range`` 255 after subtracting the DIV2K mean (official ``span_arch.py`` defaults).
- ``omnisr`` Omni-SR (Wang, Zhang, Liu & Zhu, "Omni Aggregation Networks for Lightweight Image
  Super-Resolution", CVPR 2023): 64 channels, 5 OSAGs of 1 OSA block, window 8, positional
  encoding (official ``OmniSR.yml``; ``upsampling`` is the official name of the scale).

:func:`detect_generator` builds the network of any checkpoint whose architecture spandrel
recognises from its keys (40+ families: ESRGAN, SwinIR, HAT, DAT, RCAN, SPAN, OmniSR, ...):
SwinIR becomes our SwinIR (as fast on the CPU, ``bench/swinir_speed.py``; it pads inputs like
the official test script) and HAT/SPAN/OmniSR our
registered types (so the detected ``network_g`` can be trained further); any other is run
through spandrel's model as is (evaluation and restoration only).
"""
from __future__ import annotations

import inspect
import warnings

from torch import nn

from optiqa.core.checkpoints import CheckpointError
from optiqa.core.errors import ConfigError

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
SHOWN_KEYS = 8


def _arch(module: str, cls: str):
    """A spandrel architecture class, with a clear error when spandrel is missing."""
    import importlib

    try:
        return getattr(importlib.import_module(f"spandrel.architectures.{module}"), cls)
    except ImportError:
        raise ConfigError("this generator needs the 'spandrel' package (pip install spandrel)"
                          ) from None


def _scale(scale, *aliases) -> int:
    """The scale, from ``scale`` or one of the official names (they must agree)."""
    given = {v for v in aliases if v is not None}
    if len(given) > 1 or (given and scale is not None and scale not in given):
        raise ValueError(f"scale given twice with different values: {sorted(given | {scale})}")
    value = next(iter(given), scale if scale is not None else 4)
    if int(value) != value or value < 1:
        raise ValueError(f"scale must be a positive integer, got {value!r}")
    return int(value)


def _finish(model: nn.Module, scale: int) -> nn.Module:
    model.scale = scale
    return model


def hat(scale: int | None = None, upscale: int | None = None, in_chans: int = 3,
        img_size: int = 64, window_size: int = 16, compress_ratio: int = 3,
        squeeze_factor: int = 30, conv_scale: float = 0.01, overlap_ratio: float = 0.5,
        img_range: float = 1.0, depths=(6, 6, 6, 6, 6, 6), embed_dim: int = 180,
        num_heads=(6, 6, 6, 6, 6, 6), mlp_ratio: float = 2.0, upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv", num_feat: int = 64, qkv_bias: bool = True,
        drop_path_rate: float = 0.1, patch_norm: bool = True, ape: bool = False) -> nn.Module:
    """HAT (default: the paper's HAT, SRx4); ``forward(lr in [0, 1])`` pads to the window."""
    s = _scale(scale, upscale)
    if len(depths) != len(num_heads):
        raise ValueError("depths and num_heads must have the same length")
    if embed_dim % compress_ratio or embed_dim // squeeze_factor < 1:
        raise ValueError(f"embed_dim {embed_dim} must be divisible by compress_ratio "
                         f"{compress_ratio} and at least squeeze_factor {squeeze_factor}")
    with warnings.catch_warnings():  # spandrel's HAT calls torch.meshgrid without indexing=
        warnings.filterwarnings("ignore", message="torch.meshgrid")
        model = _arch("HAT", "HAT")(
            img_size=img_size, in_chans=in_chans, window_size=window_size,
            compress_ratio=compress_ratio, squeeze_factor=squeeze_factor,
            conv_scale=conv_scale, overlap_ratio=overlap_ratio, img_range=img_range,
            depths=list(depths), embed_dim=embed_dim, num_heads=list(num_heads),
            mlp_ratio=mlp_ratio, upscale=s, upsampler=upsampler,
            resi_connection=resi_connection, num_feat=num_feat, qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate, patch_norm=patch_norm, ape=ape)
    return _finish(model, s)


def hat_s(**opts) -> nn.Module:
    """HAT-S: embed 144, compress 24, squeeze 24 (``train_HAT-S_SRx4_*.yml``)."""
    return hat(**{"embed_dim": 144, "compress_ratio": 24, "squeeze_factor": 24, **opts})


def hat_l(**opts) -> nn.Module:
    """HAT-L: 12 residual hybrid attention groups (``train_HAT-L_SRx4_*.yml``)."""
    return hat(**{"depths": (6,) * 12, "num_heads": (6,) * 12, **opts})


def span(scale: int | None = None, upscale: int | None = None, num_in_ch: int = 3,
         num_out_ch: int = 3, feature_channels: int = 48, bias: bool = True, norm: bool = True,
         img_range: float = 255.0, rgb_mean=DIV2K_RGB_MEAN) -> nn.Module:
    """SPAN (official defaults). Its ``Conv3XC`` layers train a 1x1-3x3-1x1 branch plus a skip
    and re-parameterise it into ``eval_conv`` in eval mode; ``eval_conv`` gets no gradient."""
    s = _scale(scale, upscale)
    model = _arch("SPAN", "SPAN")(num_in_ch=num_in_ch, num_out_ch=num_out_ch,
                                  feature_channels=feature_channels, upscale=s, bias=bias,
                                  norm=norm, img_range=img_range, rgb_mean=tuple(rgb_mean))
    for m in model.modules():  # derived from the trained branch, never trained itself
        if hasattr(m, "eval_conv"):
            m.eval_conv.requires_grad_(False)
    return _finish(model, s)


def omnisr(scale: int | None = None, upsampling: int | None = None, up_scale: int | None = None,
           upscale: int | None = None, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, res_num: int = 5,
           block_num: int = 1, window_size: int = 8, pe: bool = True, bias: bool = True
           ) -> nn.Module:
    """Omni-SR (official x4 configuration); inputs are padded to a multiple of the window."""
    s = _scale(scale, upsampling, up_scale, upscale)
    model = _arch("OmniSR", "OmniSR")(num_in_ch=num_in_ch, num_out_ch=num_out_ch,
                                      num_feat=num_feat, block_num=block_num, pe=pe,
                                      window_size=window_size, res_num=res_num, up_scale=s,
                                      bias=bias)
    model.convert_state_dict = _drop_profiling_entries
    model.register_forward_pre_hook(_at_least(OMNISR_MIN_SIZE, "Omni-SR"))
    return _finish(model, s)


OMNISR_MIN_SIZE = 16  # its ESA branch pools 7x7 with stride 3 after a strided conv


def _at_least(size: int, name: str):
    """A forward pre-hook that rejects inputs smaller than ``size`` pixels with a clear error
    (instead of a pooling error from deep inside the network)."""
    def check(module, inputs):
        h, w = inputs[0].shape[-2:]
        if min(h, w) < size:
            raise ValueError(f"{name} needs inputs of at least {size}x{size} pixels, got {w}x{h}")
    return check


def _drop_profiling_entries(state: dict) -> tuple[dict, str]:
    """The official Omni-SR files carry ``total_ops``/``total_params`` counters (from the
    ``thop`` profiler) beside the weights; they are not parameters."""
    clean = {k: v for k, v in state.items() if not k.endswith(("total_ops", "total_params"))}
    return clean, "official" if len(clean) < len(state) else "optiqa"


# --------------------------------------------------------------------------------------------
# detection of community checkpoints
# --------------------------------------------------------------------------------------------
class SpandrelGenerator(nn.Module):
    """A spandrel-detected network of another family, run through spandrel's descriptor (which
    pads inputs to the network's size requirements); evaluation and restoration only."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model
        self.descriptor = descriptor
        self.scale = int(descriptor.scale)
        self.architecture = descriptor.architecture.id

    def forward(self, x):
        return self.descriptor(x)


# spandrel architecture id -> (our registry type, {spandrel hyperparameter: our option})
NATIVE = {
    "SwinIR": ("swinir", {"upscale": "scale", "in_chans": "in_chans", "img_size": "img_size",
                          "window_size": "window_size", "img_range": "img_range",
                          "depths": "depths", "embed_dim": "embed_dim",
                          "num_heads": "num_heads", "mlp_ratio": "mlp_ratio",
                          "upsampler": "upsampler", "resi_connection": "resi_connection",
                          "qkv_bias": "qkv_bias", "patch_norm": "patch_norm"}),
    "HAT": ("hat", {k: k for k in ("upscale", "in_chans", "img_size", "window_size",
                                   "compress_ratio", "squeeze_factor", "conv_scale",
                                   "overlap_ratio", "img_range", "depths", "embed_dim",
                                   "num_heads", "mlp_ratio", "upsampler", "resi_connection",
                                   "num_feat", "qkv_bias", "patch_norm", "ape")}),
    "SPAN": ("span", {k: k for k in ("upscale", "num_in_ch", "num_out_ch", "feature_channels",
                                     "bias", "norm", "img_range", "rgb_mean")}),
    "OmniSR": ("omnisr", {"up_scale": "up_scale", **{k: k for k in (
        "num_in_ch", "num_out_ch", "num_feat", "res_num", "block_num", "window_size", "pe",
        "bias")}}),
}


def _native_spec(descriptor) -> dict | None:
    """Our ``network_g`` for a detected network, or None when it uses an option ours lacks
    (a value other than the spandrel class's default for a hyperparameter we do not map)."""
    entry = NATIVE.get(descriptor.architecture.id)
    if entry is None:
        return None
    kind, mapping = entry
    hp = dict(getattr(descriptor.model, "hyperparameters", {}) or {})
    defaults = {k: p.default for k, p in
                inspect.signature(type(descriptor.model).__init__).parameters.items()}
    net = {"type": kind}
    for key, value in hp.items():
        if key in mapping:
            net[mapping[key]] = list(value) if isinstance(value, tuple) else value
        elif key not in ("norm_layer", "drop_rate", "attn_drop_rate", "drop_path_rate",
                         "use_checkpoint", "qk_scale") and value != defaults.get(key):
            return None
    if hp.get("qk_scale") is not None:
        return None
    return net


def detect_generator(params: dict, source: str = "checkpoint") -> tuple[dict, nn.Module]:
    """``(network_g, model with the weights loaded)`` for a bare state dict whose architecture
    spandrel detects from its keys; :class:`CheckpointError` naming the keys otherwise."""
    try:
        import spandrel
    except ImportError:
        raise CheckpointError(f"{source}: the checkpoint does not say which network it holds "
                              "and 'spandrel' (which detects it from the keys) is not "
                              "installed; name the architecture as TYPE[:key=value,...]",
                              option="arch") from None
    from optiqa.nets.generators import create_generator, load_generator_checkpoint

    keys = list(params)
    shown = ", ".join(keys[:SHOWN_KEYS]) + (f" (+{len(keys) - SHOWN_KEYS} more)"
                                            if len(keys) > SHOWN_KEYS else "")
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(params))
    except spandrel.UnsupportedModelError:
        raise CheckpointError(f"{source}: cannot tell the architecture from its keys ({shown}); "
                              "name the architecture as TYPE[:key=value,...] (e.g. swinir, or "
                              "srresnet:num_feat=32,num_block=4)", option="arch") from None
    except Exception as e:  # noqa: BLE001 - a known family whose tensors do not fit it
        raise CheckpointError(f"{source}: looks like a spandrel-supported network but does not "
                              f"load ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                              f"); keys: {shown}") from None
    arch = descriptor.architecture.id
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or \
            descriptor.input_channels != 3 or descriptor.output_channels != 3:
        raise CheckpointError(f"{source}: a {arch} network ({type(descriptor).__name__}, "
                              f"{descriptor.input_channels} -> {descriptor.output_channels} "
                              "channels) is not an RGB image-to-image restorer")
    net = _native_spec(descriptor)
    if net is not None:
        model = create_generator(**net)
        load_generator_checkpoint(model, params, key="auto")
        return net, model
    return {"type": "spandrel", "architecture": arch}, SpandrelGenerator(descriptor)
