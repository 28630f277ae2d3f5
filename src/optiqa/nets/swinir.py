"""SwinIR: image restoration with residual Swin Transformer blocks (our implementation).

Liang, Cao, Sun, Zhang, Van Gool & Timofte, "SwinIR: Image Restoration Using Swin Transformer",
ICCV Workshops 2021; official code ``JingyunLiang/SwinIR`` (``models/network_swinir.py``).
Structure: ``conv_first`` (shallow features) -> residual Swin Transformer blocks (RSTB: ``depth``
Swin layers with (shifted) window self-attention, then a conv, plus a skip) -> LayerNorm ->
``conv_after_body`` + long skip -> upsampler. Window attention per head:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + B + M) V

with ``B`` the learned relative position bias (a ``(2w-1)^2 x heads`` table indexed by the
relative offset of two tokens in the ``w x w`` window) and ``M`` the shifted-window mask
(-100 between tokens that were not neighbours before the cyclic shift).

Parameter names follow the official file, so an official checkpoint loads after dropping its
derived buffers (``relative_position_index``, ``attn_mask``), which we recompute: the relative
position index once per window size, the shifted-window mask once per padded input size (cached).
Two attention paths, numerically equal (tested): ``explicit`` (``q @ k^T + B``, softmax, ``@ v``)
and ``sdpa`` (``F.scaled_dot_product_attention`` with ``B + M`` as a float mask; on CUDA the head
dimension is zero-padded to a multiple of 8, which leaves the result unchanged, so that the fused
kernels accept it). Inputs are padded at the bottom/right to a multiple of the window size with
mirrored copies (as the official test script) and the output is cropped back.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
SHIFT_MASK_VALUE = -100.0  # as the official code; exp(-100) is 0 in fp32 and bf16


def relative_position_index(window: int) -> torch.Tensor:
    """``(w*w, w*w)`` index into the bias table: ``(dy + w-1) * (2w-1) + (dx + w-1)``."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing="ij")).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(height: int, width: int, window: int, shift: int,
                        device=None) -> torch.Tensor:
    """``(nW, w*w, w*w)`` additive mask for the shifted windows of an ``height x width`` map.

    After the cyclic shift, a window at the bottom/right edge holds tokens from up to four image
    regions; tokens of different regions must not attend to each other (Swin, Liu et al. 2021).
    """
    region = torch.zeros(height, width, device=device)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in cuts:
        for ws in cuts:
            region[hs, ws] = label
            label += 1
    win = window_partition(region[None, :, :, None], window).squeeze(-1)  # (nW, N)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, SHIFT_MASK_VALUE)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, w * w, C)``, windows in raster order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, w * w, C)`` -> ``(B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def pad_symmetric(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``(N, C, h, w)`` at the bottom/right to ``height x width`` with mirrored copies that
    repeat the edge pixel (``cat([x, flip(x)])``), as the official test script pads to a multiple
    of the window size."""
    while x.shape[-2] < height:
        x = torch.cat([x, x.flip(-2)], -2)
    while x.shape[-1] < width:
        x = torch.cat([x, x.flip(-1)], -1)
    return x[..., :height, :width]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``w x w`` windows with relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 attn_impl: str = "explicit", pad_head_dim: bool | None = None):
        super().__init__()
        if attn_impl not in ("explicit", "sdpa"):
            raise ValueError(f"attn_impl must be 'explicit' or 'sdpa', got {attn_impl!r}")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.attn_impl, self.pad_head_dim = attn_impl, pad_head_dim
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size),
                             persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        n = self.window_size ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1).contiguous()  # (heads, N, N)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B * nW, N, C)`` windows; ``mask``: ``(nW, N, N)`` or None."""
        bw, n, c = x.shape
        heads, hd = self.num_heads, self.head_dim
        q, k, v = self.qkv(x).view(bw, n, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias()
        if self.attn_impl == "explicit":
            attn = (q * self.scale) @ k.transpose(-2, -1) + bias
            if mask is not None:
                nw = mask.shape[0]
                attn = attn.view(bw // nw, nw, heads, n, n) + mask[None, :, None]
                attn = attn.view(bw, heads, n, n)
            out = attn.softmax(-1) @ v
        else:
            out = self._sdpa(q, k, v, bias, mask)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))

    def _sdpa(self, q, k, v, bias, mask):
        bw, heads, n, hd = q.shape
        if mask is None:
            float_mask = bias[None]  # broadcast over windows
        else:
            # windows of one image share the mask: fold them into the head axis so a 4-D
            # (1, nW*heads, N, N) mask broadcasts over the batch without being copied B times
            nw = mask.shape[0]
            q, k, v = (t.reshape(bw // nw, nw * heads, n, hd) for t in (q, k, v))
            float_mask = (bias[None] + mask[:, None]).view(1, nw * heads, n, n)
        pad = self.pad_head_dim if self.pad_head_dim is not None else q.is_cuda
        pad_to = -hd % 8 if pad else 0
        if pad_to:  # zeros in q/k add nothing to q.k; zero columns of v are cut off below
            q, k, v = (F.pad(t, (0, pad_to)) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=float_mask.to(q.dtype),
                                             scale=self.scale)
        if pad_to:
            out = out[..., :hd]
        return out.reshape(bw, heads, n, hd)


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
