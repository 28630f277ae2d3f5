"""SwinIR: image restoration with residual Swin Transformer blocks (our implementation).

Liang, Cao, Sun, Zhang, Van Gool & Timofte, "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops 2021; official code ``JingyunLiang/SwinIR`` (``models/network_swinir.py``).
Structure: ``conv_first`` (shallow features) -> residual Swin Transformer blocks (RSTB: ``depth``
Swin layers with (shifted) window self-attention, then a conv, plus a skip) -> LayerNorm ->
``conv_after_body`` + long skip -> upsampler. The window self-attention (relative position
bias, shifted-window mask, the ``explicit`` and ``sdpa`` paths selected by ``attn_impl``) is in
:mod:`optiqa.nets.window_attention`.

Parameter names follow the official file, so an official checkpoint loads after dropping its
derived buffers (``relative_position_index``, ``attn_mask``), which we recompute: the relative
position index once per window size, the shifted-window mask once per padded input size (cached).
Inputs are padded at the bottom/right to a multiple of the window size with mirrored copies (as
the official test script) and the output is cropped back.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from optiqa.nets.window_attention import (WindowAttention, relative_position_index,
                                         shifted_window_mask, window_partition, window_reverse)

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def pad_symmetric(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``(N, C, h, w)`` at the bottom/right to ``height x width`` with mirrored copies that
    repeat the edge pixel (``cat([x, flip(x)])``), as the official test script pads to a multiple
    of the window size."""
    while x.shape[-2] < height:
        x = torch.cat([x, x.flip(-2)], -2)
    while x.shape[-1] < width:
        x = torch.cat([x, x.flip(-1)], -1)
    return x[..., :height, :width]


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop the whole residual branch per sample."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, num_heads, window_size, shift_size, mlp_ratio, qkv_bias, drop_path,
                 attn_impl, pad_head_dim):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_impl,
                                    pad_head_dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, size: tuple[int, int], mask: torch.Tensor | None):
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(window_partition(y, ws), mask if s else None)
        y = window_reverse(y, ws, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path,
                 attn_impl, pad_head_dim):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias,
                                 drop_path[i], attn_impl, pad_head_dim)
            for i in range(depth))

    def forward(self, x, size, mask):
        for blk in self.blocks:
            x = blk(x, size, mask)
        return x


def _resi_conv(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == "3conv":  # the large real-world models: bottleneck to dim/4
        q = dim // 4
        return nn.Sequential(nn.Conv2d(dim, q, 3, 1, 1), nn.LeakyReLU(0.2, True),
                             nn.Conv2d(q, q, 1, 1, 0), nn.LeakyReLU(0.2, True),
                             nn.Conv2d(q, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', got {kind!r}")


class RSTB(nn.Module):
    """Residual Swin Transformer block: Swin layers, a conv, and a skip connection."""

    def __init__(self, dim, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop_path,
                 resi_connection, attn_impl, pad_head_dim):
        super().__init__()
        self.residual_group = BasicLayer(dim, depth, num_heads, window_size, mlp_ratio, qkv_bias,
                                         drop_path, attn_impl, pad_head_dim)
        self.conv = _resi_conv(dim, resi_connection)

    def forward(self, x, size, mask):
        b, _, c = x.shape
        y = self.residual_group(x, size, mask).transpose(1, 2).reshape(b, c, *size)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """``(B, C, H, W)`` -> ``(B, H*W, C)`` tokens (patch size 1), LayerNorm when ``patch_norm``."""

    def __init__(self, dim: int, norm: bool):
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x):
        return self.norm(x.flatten(2).transpose(1, 2))


def _pixelshuffle_upsampler(scale: int, num_feat: int) -> nn.Sequential:
    layers = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"pixelshuffle upsampler supports scales 2^n and 3, got {scale}")
    return nn.Sequential(*layers)


class SwinIR(nn.Module):
    """SwinIR generator; ``forward(lr NCHW in [0, 1]) -> (N, C, H*scale, W*scale)``.

    ``upsampler``: ``pixelshuffle`` (classical SR), ``pixelshuffledirect`` (lightweight SR),
    ``nearest+conv`` (real-world SR), ``""`` (scale 1: denoising, JPEG; global residual).
    """

    def __init__(self, scale: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 depths=(6, 6, 6, 6), num_heads=(6, 6, 6, 6), window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.1,
                 patch_norm: bool = True, img_range: float = 1.0, upsampler: str = "",
                 resi_connection: str = "1conv", num_feat: int = 64, img_size: int = 64,
                 attn_impl: str = "explicit", pad_head_dim: bool | None = None):
        super().__init__()
        self.scale = int(scale) if upsampler else 1
        self.window_size, self.img_range, self.upsampler = window_size, img_range, upsampler
        self.img_size = img_size  # training patch size in the official configs; unused here
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
        self._mask_cache: dict = {}

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            self.layers.append(RSTB(embed_dim, depth, heads, window_size, mlp_ratio, qkv_bias,
                                    dpr[start:start + depth], resi_connection, attn_impl,
                                    pad_head_dim))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi_conv(embed_dim, resi_connection)

        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = _pixelshuffle_upsampler(self.scale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, self.scale ** 2 * in_chans, 3, 1, 1),
                nn.PixelShuffle(self.scale))
        elif upsampler == "nearest+conv":
            if self.scale not in (2, 4):
                raise ValueError("nearest+conv upsampler supports scales 2 and 4")
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, num_feat, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            if self.scale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        elif upsampler == "":
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)
        else:
            raise ValueError(f"unknown upsampler {upsampler!r}")
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        # as the official code: truncated normal for linear layers, unit LayerNorm
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def shift_mask(self, h: int, w: int, device) -> torch.Tensor:
        """The shifted-window mask for an ``h x w`` (padded) feature map, cached per size/device."""
        key = (h, w, str(device))
        mask = self._mask_cache.get(key)
        if mask is None:
            mask = shifted_window_mask(h, w, self.window_size, self.window_size // 2, device)
            self._mask_cache[key] = mask
        return mask

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        mask = self.shift_mask(h, w, x.device)
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, (h, w), mask.to(tokens.dtype))
        return self.norm(tokens).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        if h % ws or w % ws:
            x = pad_symmetric(x, h + (-h % ws), w + (-w % ws))
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        if self.upsampler == "pixelshuffle":
            x = self.conv_first(x)
            x = self.conv_after_body(self.forward_features(x)) + x
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        elif self.upsampler == "pixelshuffledirect":
            x = self.conv_first(x)
            x = self.upsample(self.conv_after_body(self.forward_features(x)) + x)
        elif self.upsampler == "nearest+conv":
            x = self.conv_first(x)
            x = self.conv_before_upsample(self.conv_after_body(self.forward_features(x)) + x)
            x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
            if self.scale == 4:
                x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
            x = self.conv_last(self.lrelu(self.conv_hr(x)))
        else:
            first = self.conv_first(x)
            x = x + self.conv_last(self.conv_after_body(self.forward_features(first)) + first)
        x = x / self.img_range + mean
        return x[..., : h * self.scale, : w * self.scale]

    @staticmethod
    def convert_state_dict(state: dict) -> tuple[dict, str]:
        """Official SwinIR checkpoint -> our names: drop the derived buffers (checked first)."""
        out = {}
        for key, value in state.items():
            leaf = key.rsplit(".", 1)[-1]
            if leaf == "relative_position_index":
                window = math.isqrt(value.shape[0])
                if not torch.equal(value.long().cpu(), relative_position_index(window)):
                    raise ValueError(f"{key}: relative position index differs from the standard "
                                     "Swin layout")
                continue
            if leaf == "attn_mask":
                continue
            out[key] = value
        return out, "swinir-official"


# Presets of the released models (official main_test_swinir.py); options override them.
SWINIR_CLASSICAL = dict(scale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0,
                        depths=[6] * 6, embed_dim=180, num_heads=[6] * 6, mlp_ratio=2,
                        upsampler="pixelshuffle", resi_connection="1conv")
SWINIR_LIGHT = dict(scale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0,
                    depths=[6] * 4, embed_dim=60, num_heads=[6] * 4, mlp_ratio=2,
                    upsampler="pixelshuffledirect", resi_connection="1conv")


def swinir(**opts) -> SwinIR:
    """The classical SR configuration (SwinIR-x4 of the paper's Table 2); options override."""
    if "upscale" in opts:
        opts["scale"] = opts.pop("upscale")
    return SwinIR(**{**SWINIR_CLASSICAL, **opts})


def swinir_light(**opts) -> SwinIR:
    """The lightweight SR configuration (embed 60, 4 RSTBs, pixelshuffledirect)."""
    if "upscale" in opts:
        opts["scale"] = opts.pop("upscale")
    return SwinIR(**{**SWINIR_LIGHT, **opts})
