"""A small SRResNet (MSRResNet) for CPU runs and tests (our implementation).

Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
Network" (SRResNet), CVPR 2017, in the modified form of BasicSR's ``MSRResNet``
(``basicsr/archs/srresnet_arch.py``; Wang et al. 2018): no BatchNorm, residual blocks
``x + conv2(relu(conv1(x)))``, sub-pixel (PixelShuffle) upsampling, and a global skip that adds
the bilinear upsampling of the input, so the net learns only the residual to a cheap
interpolation. Parameter names follow BasicSR (``conv_first``, ``body.N.conv1``, ``upconv1``,
``upconv2``, ``conv_hr``, ``conv_last``). Defaults are BasicSR's (64 channels, 16 blocks); the
tiny CPU configuration uses fewer. ``scale=1`` (our addition, for denoising, deblurring and JPEG
tasks; BasicSR's MSRResNet has no such mode) drops the upsampling layers, and the global skip adds
the input itself.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from optiqa.nets.rrdbnet import scaled_kaiming_


class ResidualBlockNoBN(nn.Module):
    def __init__(self, num_feat: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        scaled_kaiming_(self, 0.1)

    def forward(self, x):
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """``forward(lr NCHW [0, 1]) -> (N, C, H*scale, W*scale)``; ``scale`` in {1, 2, 3, 4}."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16, scale: int = 4):
        super().__init__()
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"SRResNet supports scales 1, 2, 3 and 4, got {scale}")
        self.scale = scale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat) for _ in range(num_block)))
        if scale == 1:
            self.upconv1 = None
        elif scale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * scale * scale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(scale)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        for m in (self.conv_first, self.upconv1, self.conv_hr, self.conv_last):
            if m is not None:
                scaled_kaiming_(m, 0.1)
        if scale == 4:
            scaled_kaiming_(self.upconv2, 0.1)

    def forward(self, x):
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        if self.scale == 1:
            return self.conv_last(self.lrelu(self.conv_hr(out))) + x
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + base


def srresnet(**opts) -> MSRResNet:
    if "upscale" in opts:  # BasicSR's option name for MSRResNet
        opts["scale"] = opts.pop("upscale")
    return MSRResNet(**opts)
