"""Swin window self-attention (Liu et al., "Swin Transformer", ICCV 2021), as SwinIR uses it.

Per head, inside each ``w x w`` window of tokens:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + B + M) V

with ``B`` the learned relative position bias (a ``(2w-1)^2 x heads`` table indexed by the
relative offset of two tokens in the ``w x w`` window) and ``M`` the shifted-window mask
(-100 between tokens that were not neighbours before the cyclic shift). Both are derived
buffers, not parameters: :func:`relative_position_index` and :func:`shifted_window_mask` rebuild
them (an official SwinIR checkpoint's copies are dropped when it loads). Two attention paths,
numerically equal (tested): ``explicit`` (``q @ k^T + B``, softmax, ``@ v``) and ``sdpa``
(``F.scaled_dot_product_attention`` with ``B + M`` as a float mask; on CUDA the head dimension is
zero-padded to a multiple of 8, which leaves the result unchanged, so that the fused kernels
accept it).

Kept apart from :mod:`optiqa.nets.swinir` (the generator: blocks, body, upsamplers, presets) as the
one part with its own maths and two numerically equal implementations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
