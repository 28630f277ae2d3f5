"""Building a backbone's network (its "trunk") and loading weights into it.

:func:`build_trunk` makes the timm model of a :class:`~optiqa.models.backbone_specs.BackboneSpec`
row (or its ``trunk_factory``'s network) pruned after the last tapped feature;
:func:`load_trunk` fills it from a weight file, converting other key layouts (torchvision,
EfficientNet-PyTorch's) to timm's and checking every tensor's presence and shape;
:func:`fixed_seed_init` is VGG-16-R's reproducible init. Which of these applies to a backbone is
decided by its spec row's fields, never by its name.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from optiqa.core.errors import WeightsUnavailable
from optiqa.models.backbone_specs import BackboneSpec


def read_state_dict(path: Path) -> dict:
    """The weights of a backbone file (any wrapping, e.g. a training checkpoint's
    ``state_dict``), read by the one checkpoint reader."""
    from optiqa.core.checkpoints import read_checkpoint, unwrap_state_dict

    return unwrap_state_dict(read_checkpoint(path), source=str(path))[0]


def lukemelas_to_timm(sd: dict, trunk: nn.Module) -> dict:
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
        return lukemelas_to_timm(sd, trunk)
    if s.key_layout == "torchvision":
        return sd
    import importlib
    module = importlib.import_module(type(trunk).__module__)
    if hasattr(module, "checkpoint_filter_fn"):
        return module.checkpoint_filter_fn(sd, trunk)
    if hasattr(module, "_filter_fn"):  # timm's VGG: torchvision classifier -> conv pre-logits
        return module._filter_fn(sd)
    return sd


def load_trunk(s: BackboneSpec, trunk: nn.Module, path: Path) -> None:
    """Load ``path`` into ``trunk``; every trunk tensor must be present with the right shape."""
    target = trunk.state_dict()
    needed = [k for k in target if not k.endswith("num_batches_tracked")]
    sd = read_state_dict(path)
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



def fixed_seed_init(module: nn.Module, seed: int) -> None:
    """A spec's ``fixed_seed`` init (VGG-16-R, ``VGG16_R_SEED``): every convolution's weight
    drawn from U(-sqrt(6/fan_out), sqrt(6/fan_out)) (He/Kaiming, fan_out, ReLU gain) by a CPU
    ``torch.Generator``, biases 0; uniform sampling is reproducible bit for bit on any machine."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                bound = math.sqrt(6.0 / fan_out)
                m.weight.uniform_(-bound, bound, generator=g)
                if m.bias is not None:
                    m.bias.zero_()


def build_trunk(s: BackboneSpec, random_init: bool) -> tuple[nn.Module, list[int]]:
    """The timm model (or the spec's ``trunk_factory`` network) with everything after the last
    tapped feature removed, and the indices of its tapped features.

    The model is first built on the meta device (no memory, no init) and pruned. Unless
    ``random_init`` is asked for, its tensors are then left uninitialised, because every one of
    them is about to be overwritten (weights file, fixed-seed init): timm's init of a ViT-B costs
    seconds, VGG's unused classifier 120M parameters. Models with non-persistent buffers (Swin's
    attention masks, which no file holds) are rebuilt normally.
    """
    if s.trunk_factory is not None:
        trunk = s.trunk_factory()
        indices = s.indices if s.indices is not None else range(len(trunk.feature_info))
        return trunk, list(indices)
    import timm
    model_name = f"{s.timm_name}.{s.pretrained_tag}" if s.pretrained_tag else s.timm_name
    kwargs = dict(s.timm_kwargs)
    with torch.device("meta"):
        trunk = timm.create_model(model_name, pretrained=False, **kwargs)
    indices = list(s.indices) if s.indices is not None else list(range(len(trunk.feature_info)))
    trunk.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
    persistent = trunk.state_dict().keys()
    transient = [k for k, _ in trunk.named_buffers() if k not in persistent]
    if s.init_after_pruning is not None or not (random_init or transient):
        trunk.to_empty(device="cpu")
        for name, buf in trunk.named_buffers():  # not always in weight files
            if name.endswith("num_batches_tracked"):
                buf.zero_()
        if random_init:  # e.g. VGG: initialise only the convolutions we kept
            getattr(trunk, s.init_after_pruning)()
    else:
        trunk = timm.create_model(model_name, pretrained=False, **kwargs)
        trunk.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
    return trunk, indices

