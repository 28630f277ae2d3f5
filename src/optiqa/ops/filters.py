"""Small filtering helpers shared by the classical metrics.

Everything works on ``NCHW`` tensors, per channel (depthwise), and is differentiable.
Padding modes follow MATLAB's ``imfilter`` names where metrics were defined in MATLAB:
``'symmetric'`` (mirror including the edge pixel), ``'replicate'``, ``'circular'``, ``0`` (zeros),
and ``'valid'`` (no padding, output shrinks).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian ``g[i] ~ exp(-(i - c)^2 / (2 sigma^2))``, ``c = (size - 1) / 2``."""
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    g = torch.exp(-coords ** 2 / (2.0 * sigma ** 2))
    return (g / g.sum()).to(dtype)


def pad(x: torch.Tensor, pads: tuple[int, int, int, int], mode) -> torch.Tensor:
    """Pad ``(left, right, top, bottom)`` with a MATLAB-style mode name (see module docstring)."""
    if mode == "valid" or not any(pads):
        return x
    if mode == "symmetric":
        return _pad_symmetric(x, pads)
    if mode == "replicate":
        return F.pad(x, pads, mode="replicate")
    if mode == "circular":
        return F.pad(x, pads, mode="circular")
    if mode == "reflect":  # mirror excluding the edge pixel (numpy/PyTorch "reflect")
        return F.pad(x, pads, mode="reflect")
    if mode == 0 or mode == "zeros":
        return F.pad(x, pads)
    raise ValueError(f"unknown padding mode {mode!r}")


def _pad_symmetric(x: torch.Tensor, pads) -> torch.Tensor:
    """MATLAB 'symmetric' padding (edge pixel repeated), for pads smaller than the image."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    if max(left, right) > w or max(top, bottom) > h:
        raise ValueError(f"symmetric padding {pads} larger than image {w}x{h}")
    rows = torch.cat([torch.arange(top - 1, -1, -1), torch.arange(h),
                      torch.arange(h - 1, h - 1 - bottom, -1)]).to(x.device)
    cols = torch.cat([torch.arange(left - 1, -1, -1), torch.arange(w),
                      torch.arange(w - 1, w - 1 - right, -1)]).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def same_pads(kh: int, kw: int) -> tuple[int, int, int, int]:
    """Pads that keep the size for a ``kh x kw`` kernel, MATLAB-centred (extra pixel after)."""
    return ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2)


def filter2d(x: torch.Tensor, kernel: torch.Tensor, padding="symmetric") -> torch.Tensor:
    """Correlate every channel of ``x`` with one 2-D ``kernel`` (MATLAB ``imfilter`` semantics).

    ``kernel`` is ``(kh, kw)``; output has the input's size unless ``padding='valid'``.
    """
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    x = _fold_batch(pad(x, same_pads(kh, kw), padding))
    weight = kernel.to(x.dtype)[None, None].expand(n * c, 1, kh, kw)
    return _unfold_batch(F.conv2d(x, weight, groups=n * c), n)


def separable_filter(x: torch.Tensor, k_rows: torch.Tensor, k_cols: torch.Tensor | None = None,
                     padding="symmetric") -> torch.Tensor:
    """Filter every channel with the outer product ``k_rows[:, None] * k_cols[None, :]``.

    Two 1-D passes instead of one 2-D pass: ``O(k)`` instead of ``O(k^2)`` per pixel.
    """
    if k_cols is None:
        k_cols = k_rows
    n, c, h, w = x.shape
    kh, kw = k_rows.numel(), k_cols.numel()
    g = n * c
    x = _fold_batch(pad(x, same_pads(kh, kw), padding))
    x = F.conv2d(x, k_rows.to(x.dtype).view(1, 1, kh, 1).expand(g, 1, kh, 1), groups=g)
    x = F.conv2d(x, k_cols.to(x.dtype).view(1, 1, 1, kw).expand(g, 1, 1, kw), groups=g)
    return _unfold_batch(x, n)


def _fold_batch(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(1, N*C, H, W)``: every image-channel becomes one depthwise group.

    On CPU, oneDNN's kernels for a batch of 1-channel images (``groups=1``) are 10-70x slower
    (forward + backward) than its depthwise path, which this layout always takes.
    """
    n, c, h, w = x.shape
    # channels-last: oneDNN's depthwise kernels run 3-6x faster in it (identical values)
    return x.reshape(1, n * c, h, w).contiguous(memory_format=torch.channels_last)


def _unfold_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.reshape(n, x.shape[1] // n, *x.shape[-2:])


def conv_depthwise(x: torch.Tensor, kernels: torch.Tensor, stride=1,
                   transpose: bool = False) -> torch.Tensor:
    """Correlate every channel of ``x`` ``(N, C, H, W)`` with each of ``kernels`` ``(O, kh, kw)``.

    Returns ``(N, C * O, h, w)`` (channel ``c * O + o``), no padding; ``transpose=True`` runs the
    transposed (zero-insertion) convolution instead. Batch and channels are folded into the
    groups of one depthwise convolution: on CPU, oneDNN's kernels for a batch of 1-channel
    images (``groups=1``) are 10-70x slower (forward + backward) than its depthwise path.
    """
    n, c, h, w = x.shape
    o, kh, kw = kernels.shape
    if o > 1:  # one input copy per kernel keeps the depthwise channel multiplier at 1
        x = x[:, :, None].expand(n, c, o, h, w)
    groups = n * c * o
    weight = kernels.to(x)[None, :, None].expand(n * c, o, 1, kh, kw).reshape(groups, 1, kh, kw)
    conv = F.conv_transpose2d if transpose else F.conv2d
    # channels-last: oneDNN's depthwise kernels run several times faster in it
    x = x.reshape(1, groups, h, w).contiguous(memory_format=torch.channels_last)
    y = conv(x, weight, stride=stride, groups=groups)
    return y.reshape(n, c * o, *y.shape[-2:])


def sqrt_zero_grad(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient is 0 (not inf/NaN) where ``x == 0``.

    For norms and standard deviations that are exactly 0 at a perfect match (identical or flat
    images), where ``sqrt``'s slope is infinite. Adding an epsilon would shift the value; here the
    value is exact and only the undefined derivative at 0 is replaced by 0, as PyTorch's own norm
    backward does (``vector_norm`` is several times slower on CPU).
    """
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(),
                       torch.zeros_like(x))
