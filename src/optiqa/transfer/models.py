"""IQA models on an :mod:`optiqa.backbones` feature extractor: no-reference and full-reference.

Both split into a *descriptor* (a fixed-length vector computed from the backbone's multi-scale
feature maps, the image itself first) and a small *head* mapping it to a predicted quality,
**higher = better**. In ``frozen`` mode only the head trains, on descriptors cached once per
image (:mod:`optiqa.transfer.features`); in ``finetune`` mode the backbone trains too.

**No-reference** (:class:`NRModel`): for every map ``k`` and channel ``j`` the spatial mean and
standard deviation, ``[mu_k, sigma_k]`` over all maps (``2 * sum(channels)`` values). Pooling
first-order statistics of multi-scale features for NR IQA follows e.g. Su et al., Blindly assess
image quality in the wild guided by a self-adaptive hyper network (HyperIQA), CVPR 2020, and the
mean+std pooling of Li et al., Which has better visual quality: the clear blue sky or a blurry
animal?, IEEE TMM 2019. Head: the descriptor is standardised with statistics of the training
images (fixed buffers: random backbones give features of any scale), then ``linear`` (a linear
probe) or ``mlp`` (Linear-ReLU-Dropout-Linear).

**Full-reference** (:class:`FRModel`): the DISTS comparison (Ding, Ma, Wang & Simoncelli,
IEEE TPAMI 2020; :func:`optiqa.metrics.deep.dists_from_features`) of the two images' maps gives,
per channel, a texture term ``1 - l_j`` and a structure term ``1 - s_j``; the descriptor is
``[1 - l, 1 - s]``. The ``linear`` head is DISTS with learnable weights::

    quality = -sum_j alpha_j (1 - l_j) + beta_j (1 - s_j),  (alpha, beta) = softplus(theta) / sum

(non-negative, summing to 1, uniform at the start, so an untrained model is the uniform-weight
``dists_<backbone>`` metric up to sign); the ``mlp`` head is a regressor on the standardised
terms. The backbone is used as :func:`optiqa.backbones.create` builds it (no L2 pooling swap on
VGG), so the parameters of a trained discriminator's backbone apply unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from optiqa.models.backbones import Backbone
from optiqa.core.errors import ConfigError
from optiqa.metrics.deep import dists_from_features

KINDS = ("nr", "fr")
HEADS = ("linear", "mlp")
DEFAULT_HIDDEN = 256


class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed statistics (buffers) set by :meth:`fit`."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Statistics of ``x`` (N, dim); constant features keep std 1 (they stay constant)."""
        x = x.to(self.mean.device, torch.float32)
        std = x.std(0, unbiased=False)
        self.mean.copy_(x.mean(0))
        self.std.copy_(torch.where(std > 1e-8 * (1 + x.abs().mean(0)), std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class RegressorHead(nn.Module):
    """Standardisation + linear map (``hidden=0``) or a one-hidden-layer MLP -> ``(N,)``."""

    def __init__(self, dim: int, hidden: int = 0, dropout: float = 0.1):
        super().__init__()
        self.standardize = Standardize(dim)
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, 1))
        else:
            self.net = nn.Linear(dim, 1)

    def fit_input(self, descriptors: torch.Tensor) -> None:
        self.standardize.fit(descriptors)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(d.float())).squeeze(1)


class DistsHead(nn.Module):
    """Learnable DISTS weights on the terms ``[1 - l, 1 - s]``: quality = ``-terms @ w``."""

    def __init__(self, dim: int):
        super().__init__()
        # softplus(theta) = 1 everywhere: uniform weights after normalisation
        self.theta = nn.Parameter(torch.full((dim,), float(torch.log(torch.expm1(
            torch.tensor(1.0))))))

    def fit_input(self, descriptors: torch.Tensor) -> None:
        """Nothing to fit: the terms are bounded in [0, 2] by construction."""

    @property
    def weights(self) -> torch.Tensor:
        w = F.softplus(self.theta)
        return w / w.sum()

    def forward(self, terms: torch.Tensor) -> torch.Tensor:
        return -(terms.float() @ self.weights)


class IQAModel(nn.Module):
    """Backbone + descriptor + head; ``forward(x, ref=None)`` -> predicted quality ``(N,)``.

    Batch-norm layers of the backbone stay in eval mode while fine-tuning (``bn_eval``): IQA
    batches are small and hold several distortions of one content, whose batch statistics are
    not those of natural images; the affine parameters still train.
    """

    kind = ""

    def __init__(self, backbone: Backbone, head: str = "linear", hidden: int = DEFAULT_HIDDEN,
                 dropout: float = 0.1, bn_eval: bool = True):
        super().__init__()
        if head not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        self.backbone = backbone
        self.head_type = head
        self.bn_eval = bn_eval
        self.descriptor_dim = 2 * sum(backbone.channels)
        self.head = self._make_head(head, hidden, dropout)
        self.train(self.training)

    def _make_head(self, head: str, hidden: int, dropout: float) -> nn.Module:
        return RegressorHead(self.descriptor_dim, hidden if head == "mlp" else 0, dropout)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.bn_eval:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def describe(self, fx: list[torch.Tensor], fr: list[torch.Tensor] | None = None
                 ) -> torch.Tensor:
        raise NotImplementedError

    def descriptor(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.descriptor(x, ref))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, backbone={self.backbone.name!r}, head={self.head_type!r}"


class NRModel(IQAModel):
    """No-reference model: pooled mean and std of every feature map -> head."""

    kind = "nr"

    def describe(self, fx, fr=None) -> torch.Tensor:
        stats = []
        for f in fx:
            f = f.float().flatten(2)
            stats += [f.mean(2), f.std(2, unbiased=False)]
        return torch.cat(stats, 1)

    def descriptor(self, x, ref=None) -> torch.Tensor:
        return self.describe(self.backbone(x))


class FRModel(IQAModel):
    """Full-reference model: DISTS texture/structure terms per channel -> head."""

    kind = "fr"

    def _make_head(self, head: str, hidden: int, dropout: float) -> nn.Module:
        if head == "linear":
            return DistsHead(self.descriptor_dim)
        return RegressorHead(self.descriptor_dim, hidden, dropout)

    def describe(self, fx, fr=None) -> torch.Tensor:
        """``[1 - l (all channels), 1 - s (all channels)]`` from DISTS's own formula.

        Per map, :func:`dists_from_features` is given ``[I, 0]`` and ``[0, I]`` as alpha/beta,
        so it returns the per-channel terms instead of their weighted sum.
        """
        if fr is None:
            raise ConfigError("a full-reference model needs the reference image")
        texture, structure = [], []
        for x, y in zip(fx, fr, strict=True):
            c = x.shape[1]
            eye = torch.eye(c, device=x.device)
            zero = torch.zeros(c, c, device=x.device)
            t = dists_from_features([x], [y], torch.cat([eye, zero], 1), torch.cat([zero, eye], 1))
            texture.append(t[:, :c])
            structure.append(t[:, c:])
        return torch.cat(texture + structure, 1)

    def descriptor(self, x, ref=None) -> torch.Tensor:
        if ref is None:
            raise ConfigError("a full-reference model needs the reference image")
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.backbone.parameters()):
            n = x.shape[0]
            both = self.backbone(torch.cat([x, ref]))
            return self.describe([f[:n] for f in both], [f[n:] for f in both])
        return self.describe(self.backbone(x), self.backbone(ref))


def create_model(kind: str, backbone: Backbone, head: str = "linear",
                 hidden: int = DEFAULT_HIDDEN, dropout: float = 0.1) -> IQAModel:
    """An :class:`NRModel` (``kind="nr"``) or :class:`FRModel` (``"fr"``) on ``backbone``."""
    if kind not in KINDS:
        raise ConfigError(f"kind must be nr or fr, got {kind!r}", option="kind")
    cls = NRModel if kind == "nr" else FRModel
    return cls(backbone, head=head, hidden=hidden, dropout=dropout)


__all__ = ["KINDS", "HEADS", "IQAModel", "NRModel", "FRModel", "create_model", "RegressorHead",
           "DistsHead", "Standardize"]
