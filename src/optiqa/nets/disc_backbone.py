"""Discriminators built on a feature backbone from :mod:`optiqa.backbones`, with a small SN head.

``D.backbone`` is exactly the module returned by ``optiqa.backbones.create(name, pretrained=...)``,
so its ``state_dict`` keys are those of any backbone of that name: a trained discriminator's
backbone can initialise an IQA model (``model.backbone.load_state_dict(D.backbone.state_dict())``).
The backbone normalises its [0, 1] input itself and returns a list of feature maps, the image first.

Heads (all layers spectrally normalised, Miyato et al., ICLR 2018; leaky ReLU 0.2 between them):

* ``head="image"`` ("vanilla"): global average pooling of one stage's feature map (default the last)
  or, with ``stage="all"``, the concatenation of every stage's pooled features (a multi-scale
  summary in the spirit of DISTS's per-stage statistics), then Linear(C, ``head_channels``) ->
  Linear(``head_channels``, 1). Output ``(N,)``.
* ``head="patch"``: 1x1 conv(C, ``head_channels``) -> 1x1 conv(``head_channels``, 1) on one stage's
  feature map, i.e. one logit per location of that map (its receptive field is the backbone's at
  that stage). Output ``(N, 1, h, w)``.

``head_channels=0`` makes the head a single linear layer / 1x1 conv. ``freeze_backbone=True`` turns
off the backbone's gradients and keeps it in eval mode (batch-norm statistics stay fixed), while
gradients still flow *through* it to the input image, as the generator needs; optimisers should be
given only parameters with ``requires_grad``. Frozen pretrained features with a trained head follow
the projected / vision-aided discriminators of Sauer et al., Projected GANs converge faster,
NeurIPS 2021 and Kumari et al., Ensembling off-the-shelf models for GAN training, CVPR 2022.

Batch norm inside a trained backbone (resnet50, effnet_lite0) stays in eval mode by default
(``bn_eval=True``: the running statistics are used, the affine parameters still train). In train
mode it would normalise the real and the fake batch each by its own statistics, which lets D tell
the batches apart, and with the small per-GPU batches of SR training it makes D's input gradients
explode (measured, effnet_lite0 random init, batch 4 at 64x64: R1 = E||grad_x D||^2 of 1.2e3
(image head) and 1.7e4 (patch head) in train mode against 2.7 and 40 in eval mode).
"""
from __future__ import annotations

import torch
from torch import nn

from optiqa.models import backbones
from optiqa.core.errors import ConfigError, UnknownNameError
from optiqa.nets.disc_scratch import LRELU_SLOPE, check_min_size, sn_if

HEADS = ("image", "patch")


def resolve_stage(stage: int | str, num_maps: int, head: str) -> list[int]:
    """Indices into the backbone's output list that the head reads (index 0 is the image itself)."""
    if stage == "all":
        if head != "image":
            raise ConfigError("stage='all' is only valid with head='image' (a patch head reads one "
                              "feature map)")
        return list(range(1, num_maps))
    if isinstance(stage, bool) or not isinstance(stage, int):
        raise ConfigError(f"stage must be an integer or 'all', got {stage!r}")
    idx = stage + num_maps if stage < 0 else stage
    if not 1 <= idx < num_maps:
        raise ConfigError(f"stage {stage} is out of range: the backbone gives {num_maps} maps "
                          f"(index 0 is the input image), so use 1..{num_maps - 1} or "
                          f"-1..-{num_maps - 1}")
    return [idx]


def _mlp(layer, in_ch: int, hidden: int, use_sn: bool) -> nn.Sequential:
    if hidden <= 0:
        return nn.Sequential(sn_if(layer(in_ch, 1), use_sn))
    return nn.Sequential(sn_if(layer(in_ch, hidden), use_sn), nn.LeakyReLU(LRELU_SLOPE),
                         sn_if(layer(hidden, 1), use_sn))


def skippable(module: nn.Module) -> bool:
    """Whether layers of ``module`` can be left out of a forward without changing any state or
    random draw: no batch norm updating its running statistics (training mode) and no dropout
    or drop-path with a non-zero rate in training mode, anywhere in ``module``. Then skipping
    the layers after the last map a head reads changes nothing but the time."""
    for m in module.modules():
        if not m.training:
            continue
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            return False
        rate = getattr(m, "drop_prob", None) if not isinstance(
            m, nn.modules.dropout._DropoutNd) else m.p
        if rate:  # nn.Dropout*'s p, timm's DropPath/DropBlock drop_prob
            return False
    return True


class BackboneDiscriminator(nn.Module):
    """A discriminator = an :mod:`optiqa.backbones` feature extractor + an image or patch head.

    Args:
        backbone: a name from ``optiqa.backbones.names()``.
        head: ``"image"`` (one logit per image, ``(N,)``) or ``"patch"`` (``(N, 1, h, w)``).
        pretrained: load the backbone's pretrained weights (raises ``WeightsUnavailable`` when they
            are not on this machine; never falls back to random weights).
        freeze_backbone: no gradients for the backbone's parameters; backbone kept in eval mode.
        stage: which feature map the head reads, as an index into the backbone's output list
            (0 is the image, so 1.., or negative from the end; default -1 = deepest), or ``"all"``
            (image head only) for pooled features of every stage.
        head_channels: hidden width of the head (0 = a single layer).
        spectral_norm: spectral norm on the head's layers (the backbone is left as it is).
        bn_eval: keep the backbone's batch-norm layers in eval mode even while it trains.

    When the head reads a stage before the deepest one, the backbone parameters that cannot reach
    it get ``requires_grad=False`` (listed in ``unused_backbone_parameters``).
    """

    def __init__(self, backbone: str, head: str = "image", pretrained: bool = True,
                 freeze_backbone: bool = False, stage: int | str = -1, head_channels: int = 256,
                 spectral_norm: bool = True, bn_eval: bool = True):
        super().__init__()
        if head not in HEADS:
            raise UnknownNameError("discriminator head", head, HEADS)
        bb_spec = backbones.spec(backbone)  # unknown name -> UnknownNameError before any build
        self.backbone_name = backbone
        self.level = head
        self.min_size = bb_spec.min_size
        self.freeze_backbone = freeze_backbone
        self.bn_eval = bn_eval
        self.backbone = backbones.create(backbone, pretrained=pretrained)
        channels = list(self.backbone.channels)
        self.stages = resolve_stage(stage, len(channels), head)
        in_ch = sum(channels[i] for i in self.stages)
        if head == "image":
            self.head = _mlp(nn.Linear, in_ch, head_channels, spectral_norm)
        else:
            conv1x1 = lambda i, o: nn.Conv2d(i, o, 1)  # noqa: E731
            self.head = _mlp(conv1x1, in_ch, head_channels, spectral_norm)
        self.unused_backbone_parameters: list[str] = []
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        elif self.stages[-1] != len(channels) - 1:
            self._freeze_unused()
        self.train(self.training)

    def _freeze_unused(self) -> None:
        """Turn off gradients of backbone parameters after the deepest stage the head reads.

        Those parameters never receive a gradient (the stages after the head's are skipped, or,
        where they cannot be, computed for nothing: :meth:`features`): DDP would then stop with
        "parameters that were not used in producing loss", and optimisers would carry them for
        nothing. Found by one small probe backward pass (eval mode, so no batch-norm statistics
        move); their names stay in ``state_dict`` unchanged.
        """
        named = [(n, p) for n, p in self.backbone.named_parameters() if p.requires_grad]
        size = max(self.min_size, 32)
        probe = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.enable_grad():
            maps = self.backbone(probe)
            used = sum(maps[i].sum() for i in self.stages)
            grads = torch.autograd.grad(used, [p for _, p in named], allow_unused=True)
        self.backbone.train(was_training)
        for (name, p), g in zip(named, grads):
            if g is None:
                p.requires_grad_(False)
                self.unused_backbone_parameters.append(name)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # a frozen backbone's batch-norm statistics must not drift
        elif self.bn_eval:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's feature maps that the head reads.

        The backbone stops after the deepest stage the head reads (``Backbone(x, upto=...)``)
        when the layers after it cannot change anything but time (:func:`skippable`): their
        outputs reach neither the logits nor any gradient. effnet_lite0 read at stage 2 (the
        example's discriminators): a forward 13 -> 4 ms at 6x3x64x64 on one thread, logits and
        gradients bit-identical (``tests/test_train_speed.py``)."""
        check_min_size(x, self.min_size, f"{self.backbone_name} discriminator")
        want = len(self.backbone.channels)
        if isinstance(self.backbone, backbones.Backbone) and skippable(self.backbone):
            want = self.stages[-1] + 1
            maps = self.backbone(x, upto=self.stages[-1])
        else:
            maps = self.backbone(x)
        if len(maps) != want:
            raise RuntimeError(f"backbone {self.backbone_name!r} returned {len(maps)} maps but "
                               f"declares {want} channel widths up to stage {want - 1}")
        return [maps[i] for i in self.stages]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.features(x)
        if self.level == "patch":
            return self.head(feats[0])
        pooled = torch.cat([f.mean(dim=(-2, -1)) for f in feats], dim=1)
        return self.head(pooled).squeeze(1)

    def extra_repr(self) -> str:
        return (f"backbone={self.backbone_name!r}, level={self.level!r}, stages={self.stages}, "
                f"freeze_backbone={self.freeze_backbone}")


__all__ = ["BackboneDiscriminator", "HEADS", "resolve_stage", "skippable"]
