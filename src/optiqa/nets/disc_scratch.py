"""Discriminators trained from scratch: PatchGAN, Real-ESRGAN's U-Net, ESRGAN's VGG-style net.

All take RGB ``NCHW`` images (generator outputs may overshoot [0, 1]; nothing is validated or
normalised) and return raw logits: image-level ``(N,)`` or patch-level ``(N, 1, h, w)``, as told by
the ``level`` attribute. Spectral normalisation (Miyato et al., ICLR 2018) uses
``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per training forward).
Weights keep PyTorch's default initialisation: under spectral norm only their direction matters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from optiqa.core.errors import InputError

LRELU_SLOPE = 0.2  # every discriminator below follows DCGAN's leaky ReLU slope


def sn_if(module: nn.Module, use_sn: bool) -> nn.Module:
    return spectral_norm(module) if use_sn else module


def check_min_size(x: torch.Tensor, min_size: int, what: str) -> None:
    if x.ndim != 4:
        raise InputError(f"{what}: expected a 4-D NCHW tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if min(h, w) < min_size:
        raise InputError(f"{what}: input of {w}x{h} is too small; it needs at least "
                         f"{min_size}x{min_size}")


class PatchGANDiscriminator(nn.Module):
    """pix2pix's ``NLayerDiscriminator`` with spectral norm instead of normalisation layers.

    Isola et al., Image-to-image translation with conditional adversarial networks, CVPR 2017
    (official pytorch-CycleGAN-and-pix2pix ``networks.py``). ``n_layers`` stride-2 4x4 convs
    (channels ``ndf * min(2^k, 8)``), one stride-1 4x4 conv, and a 4x4 conv to one channel; leaky
    ReLU 0.2 in between. With ``n_layers=3`` each logit sees a 70x70 receptive field. Every conv
    is spectrally normalised (the first and last included) and keeps its bias, since there is no
    normalisation layer to absorb it. Output ``(N, 1, H/8 - 2, W/8 - 2)`` for ``n_layers=3``.
    """

    level = "patch"

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3,
                 spectral_norm: bool = True):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        layers: list[nn.Module] = [sn_if(nn.Conv2d(in_channels, ndf, 4, 2, 1), spectral_norm),
                                   nn.LeakyReLU(LRELU_SLOPE, inplace=True)]
        ch = ndf
        for k in range(1, n_layers + 1):
            out = ndf * min(2 ** k, 8)
            stride = 2 if k < n_layers else 1  # the last of these is pix2pix's stride-1 layer
            layers += [sn_if(nn.Conv2d(ch, out, 4, stride, 1), spectral_norm),
                       nn.LeakyReLU(LRELU_SLOPE, inplace=True)]
            ch = out
        layers.append(sn_if(nn.Conv2d(ch, 1, 4, 1, 1), spectral_norm))
        self.model = nn.Sequential(*layers)

    @property
    def min_size(self) -> int:
        # (n_layers - 1) halvings, then the first conv's halving, then two 4x4/s1/p1 convs (-1 each)
        return 3 * 2 ** self.n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_min_size(x, self.min_size, "PatchGAN discriminator")
        return self.model(x)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's U-Net discriminator with spectral norm: one logit per pixel.

    Wang et al., Real-ESRGAN: training real-world blind super-resolution with pure synthetic data,
    ICCVW 2021 (BasicSR ``UNetDiscriminatorSN``; attribute names follow it). Encoder: 3x3 conv,
    three 4x4 stride-2 SN convs (``num_feat`` x1, x2, x4, x8); decoder: bilinear x2 upsampling
    and 3x3 SN convs back to ``num_feat`` with additive skip connections; two more 3x3 SN convs
    and a plain 3x3 conv to one channel. The first and last convs are not normalised, as in the
    original. Upsampling goes to the skip's exact size, so any input of at least 8x8 works
    (the original needs a multiple of 8).
    """

    level = "patch"
    min_size = 8

    def __init__(self, in_channels: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        nf = num_feat
        self.skip_connection = skip_connection
        self.conv0 = nn.Conv2d(in_channels, nf, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_min_size(x, self.min_size, "U-Net discriminator")
        act = lambda t: F.leaky_relu(t, LRELU_SLOPE, inplace=True)  # noqa: E731
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(self._up(x3, x2)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(self._up(x4, x1)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(self._up(x5, x0)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's VGG-style discriminator: one logit per image.

    Ledig et al., SRGAN, CVPR 2017 and Wang et al., ESRGAN, ECCVW 2018 (BasicSR
    ``VGGStyleDiscriminator``; attribute names follow it). Five stages of (3x3 conv, 4x4 stride-2
    conv), channels ``num_feat`` x1, x2, x4, x8, x8, each conv but the first followed by batch
    norm and leaky ReLU 0.2; then Linear(``num_feat*8*4*4``, 100), leaky ReLU, Linear(100, 1).
    The original needs 128x128 input (5 halvings -> 4x4). Here the last feature map is
    average-pooled to 4x4 (``adaptive_avg_pool2d``): the identity at 128x128, so the network is
    exactly ESRGAN's there, and any input of at least 32x32 is accepted. ``spectral_norm=True``
    replaces batch norm by spectral norm on every conv and linear layer (off by default, as in
    ESRGAN).
    """

    level = "image"
    min_size = 32

    def __init__(self, in_channels: int = 3, num_feat: int = 64, spectral_norm: bool = False):
        super().__init__()
        nf, use_sn = num_feat, spectral_norm
        widths = [nf, nf * 2, nf * 4, nf * 8, nf * 8]

        def norm(ch: int) -> nn.Module:
            return nn.Identity() if use_sn else nn.BatchNorm2d(ch, affine=True)

        prev = in_channels
        for i, ch in enumerate(widths):
            first = i == 0
            # ESRGAN: the very first conv has a bias and no norm; all others are bias-free + BN.
            bias = first or use_sn
            setattr(self, f"conv{i}_0", sn_if(nn.Conv2d(prev, ch, 3, 1, 1, bias=bias), use_sn))
            if not first:
                setattr(self, f"bn{i}_0", norm(ch))
            setattr(self, f"conv{i}_1", sn_if(nn.Conv2d(ch, ch, 4, 2, 1, bias=use_sn), use_sn))
            setattr(self, f"bn{i}_1", norm(ch))
            prev = ch
        self.num_stages = len(widths)
        self.linear1 = sn_if(nn.Linear(widths[-1] * 4 * 4, 100), use_sn)
        self.linear2 = sn_if(nn.Linear(100, 1), use_sn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_min_size(x, self.min_size, "VGG-style discriminator")
        act = lambda t: F.leaky_relu(t, LRELU_SLOPE, inplace=True)  # noqa: E731
        feat = x
        for i in range(self.num_stages):
            feat = getattr(self, f"conv{i}_0")(feat)
            feat = act(feat if i == 0 else getattr(self, f"bn{i}_0")(feat))
            feat = act(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = F.adaptive_avg_pool2d(feat, 4)
        feat = act(self.linear1(feat.flatten(1)))
        return self.linear2(feat).squeeze(1)
