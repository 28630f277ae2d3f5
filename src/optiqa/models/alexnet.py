"""torchvision's AlexNet features as a backbone trunk (the ``trunk_factory`` of the internal
``alexnet`` row, the network under LPIPS-Alex): not a timm model, so it brings the parts of timm's
interface that :class:`~optiqa.models.backbones.Backbone` uses (``feature_info``,
``pretrained_cfg``, ``forward_intermediates``).
"""
from __future__ import annotations

import functools

from torch import nn


class AlexNetFeatures(nn.Module):
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
