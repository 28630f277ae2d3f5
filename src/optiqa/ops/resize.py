"""Bicubic resizing as SR benchmarks define it (MATLAB ``imresize``), and torch's antialiased one.

The standard SR test sets (Set5, Set14, BSD100, DIV2K ``LR_bicubic``) were made with MATLAB's
``imresize(img, 1/scale, 'bicubic')``. Its algorithm (Image Processing Toolbox, ``imresize.m``):

- cubic convolution kernel of Keys (1981) with ``a = -0.5``:
  ``k(x) = 1.5|x|^3 - 2.5|x|^2 + 1`` for ``|x| <= 1``,
  ``-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` for ``1 < |x| <= 2``, else 0;
- output pixel ``i`` (1-based) samples the input at ``u = i / s + 0.5 (1 - 1/s)`` (``s`` =
  output/input size ratio), i.e. pixel centres are aligned;
- when shrinking (``s < 1``) the kernel is stretched to ``k(s x) * s`` (width ``4 / s``), which is
  the antialiasing; when enlarging it is used as is;
- each output's weights are normalised to sum to 1, and taps beyond the border are mirrored
  (``symmetric`` padding: ``... 2 1 | 1 2 3 ... n | n n-1 ...``);
- dimensions are resized one after the other, the one with the smaller scale first (rows first
  when equal); an 8-bit input is rounded to 8 bits after *each* pass (MATLAB keeps the class).

:func:`imresize` implements exactly that as two matrix products (the weight matrices are cached per
size), so it runs on any device and is differentiable. :func:`torch_bicubic` is
``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``: the same kernel and sample
positions in the interior (torch's antialias path is Pillow's algorithm) but, at the borders, the
kernel is truncated and renormalised instead of mirrored, so it differs from the MATLAB LR files
in the outer ~2 LR pixels (measured in the report of ``optiqa.data.task_datasets``).

The same weights with MATLAB's triangle kernel (``method="bilinear"``) are the antialiased
bilinear ``imresize`` that VSI's official code uses (:mod:`optiqa.metrics.vsi`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from optiqa.ops.cache import tensor_cache
from optiqa.ops.rounding import quantize_8bit


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB ``imresize`` 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def triangle(x: torch.Tensor) -> torch.Tensor:
    """The triangle kernel ``max(0, 1 - |x|)`` of MATLAB ``imresize`` 'bilinear'."""
    return (1.0 - x.abs()).clamp_min(0.0)


# method -> (kernel, its width in input pixels before antialiasing stretches it)
KERNELS = {"bicubic": (cubic, 4.0), "bilinear": (triangle, 2.0)}


@tensor_cache(maxsize=64)
def imresize_matrix(in_len: int, out_len: int, scale: float | None = None,
                    antialias: bool = True, method: str = "bicubic") -> torch.Tensor:
    """Dense ``(out_len, in_len)`` float64 matrix W with ``out = W @ in`` along one dimension.

    MATLAB ``imresize``'s weights (module docstring) for ``method`` ``bicubic`` or ``bilinear``
    (the triangle kernel, width 2, stretched to ``2 / scale`` when shrinking); ``scale`` defaults
    to ``out_len / in_len``. Cached: callers must not modify the result in place.
    """
    if method not in KERNELS:
        raise ValueError(f"imresize method must be one of {sorted(KERNELS)}, got {method!r}")
    kernel, kernel_width = KERNELS[method]
    if scale is None:
        scale = out_len / in_len
    stretch = scale < 1 and antialias
    if stretch:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * kernel(dist * scale) if stretch else kernel(dist)
    w = w / w.sum(1, keepdim=True)
    # symmetric padding: 1-based index j maps to aux[(j - 1) mod 2n], aux = [1..n, n..1]
    aux = torch.cat([torch.arange(in_len), torch.arange(in_len - 1, -1, -1)])
    cols = aux[torch.remainder(idx.long() - 1, 2 * in_len)]
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, cols, w)
    return mat


def _resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float,
                antialias: bool, method: str) -> torch.Tensor:
    """Resize the last (``dim=-1``) or second-to-last (``dim=-2``) dimension."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    mat = imresize_matrix(x.shape[dim], out_len, scale, antialias, method)
    if dim == -1:  # (..., H, in) @ (in, out); a contiguous right operand is ~30x faster on CPU
        mat = mat.t().contiguous()
        return torch.matmul(x.to(dtype), mat.to(device=x.device, dtype=dtype)).to(x.dtype)
    return torch.matmul(mat.to(device=x.device, dtype=dtype), x.to(dtype)).to(x.dtype)


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(scale * size)``."""
    return tuple(int(math.ceil(scale * s - 1e-9)) for s in in_size)


def imresize(img: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True, round_uint8: bool = False,
             method: str = "bicubic") -> torch.Tensor:
    """MATLAB ``imresize(img, scale, method)`` on a ``(..., H, W)`` float tensor in [0, 1].

    ``method``: ``bicubic`` (the default, as SR benchmarks) or ``bilinear``.
    Give ``scale`` (output/input, e.g. ``1/4``) or ``size`` (H, W). ``round_uint8=True``
    reproduces MATLAB on a ``uint8`` image: the result of each pass is rounded to ``k / 255`` and
    clipped to [0, 1] (use it to recreate benchmark LR files exactly). Otherwise the result is not
    clipped (bicubic overshoots slightly at edges).
    """
    h, w = img.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("imresize: give scale or size")
        size = output_size((h, w), scale)
        scales = (scale, scale)
    else:
        scales = (size[0] / h, size[1] / w)
    out = img
    # MATLAB resizes the dimension with the smaller scale first (rows first on a tie)
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for d in order:
        out = _resize_dim(out, d - 2, size[d], scales[d], antialias, method)
        if round_uint8:
            out = quantize_8bit(out)
    return out


def torch_bicubic(img: torch.Tensor, scale: float | None = None,
                  size: tuple[int, int] | None = None) -> torch.Tensor:
    """``F.interpolate(mode="bicubic", antialias=True, align_corners=False)`` on ``(N, C, H, W)``.

    Same Keys kernel (``a = -0.5``) and pixel-centre alignment as MATLAB; borders renormalise the
    truncated kernel instead of mirroring the image.
    """
    if size is None:
        size = output_size(img.shape[-2:], scale)
    squeeze = img.ndim == 3
    x = img[None] if squeeze else img
    out = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    return out[0] if squeeze else out


# MATLAB's bicubic weights at scale 0.5 (antialiased: the kernel stretched by 2 and halved),
# in units of 1/256: 0.5 k(d / 2) at d = 0.5, 1.5, 2.5, 3.5 input pixels from the sample point is
# 111/256, 29/256, -9/256, -3/256 exactly (k at 1/4, 3/4, 5/4, 7/4 is 111/128, 29/128, -9/128,
# -3/128); they sum to 1, so MATLAB's normalisation leaves them as they are
HALF_TAPS_256 = (111.0, 29.0, -9.0, -3.0)
_TWO_POW_20 = float(1 << 20)


def imresize_half_integers(img: torch.Tensor, integers: bool = False) -> torch.Tensor:
    """``imresize(img, scale=0.5)`` of integer-valued float64 images, as 8-tap sums.

    Output pixel ``o`` along one axis is ``(111 (x[2o] + x[2o+1]) + 29 (x[2o-1] + x[2o+2])
    - 9 (x[2o-2] + x[2o+3]) - 3 (x[2o-3] + x[2o+4])) / 256`` (0-based, indices mirrored at the
    borders as MATLAB's ``symmetric`` padding): the non-zeros of :func:`imresize_matrix`'s rows,
    which are exactly these multiples of 1/256 (a test compares the matrices).

    **Exactness.** For integers ``|x| < 2^20`` every product and partial sum of either pass is a
    multiple of 2^-8 (rows) or 2^-16 (columns) below 2^37 of those units, so it is representable in
    float64: both this banded sum and the dense matrix product compute the exact value, whatever
    their order of additions, and agree bit for bit (MATLAB's rounding-free result). Inputs that
    are not such integers (or that need a gradient) go through :func:`imresize`'s dense product.
    """
    if (img.dtype != torch.float64 or img.shape[-1] < 4 or img.shape[-2] < 4
            or (torch.is_grad_enabled() and img.requires_grad)
            or not (integers or _small_integers(img))):
        return imresize(img, scale=0.5)
    h, w = img.shape[-2:]
    m_h, m_w = (h + 1) // 2, (w + 1) // 2                  # MATLAB's ceil(n / 2)
    rows_in = _mirrored_taps(h, img.device)
    out = img.new_empty(*img.shape[:-2], m_h, m_w)
    # in strips of output rows, the rows pass of a strip feeding its columns pass while both
    # are in the cache (a full-size intermediate streams through memory: 1.5x slower)
    step = max(8, HALF_STRIP_ELEMENTS // max(1, img[..., :1, :].numel()))
    # the columns of a strip, mirrored by 3 (4 at the right of an odd width) as _mirrored_taps
    # says, in a buffer whose even and odd positions are read as strided views: a copy and two
    # 3-column flips instead of gathering every column (index_select along the last dimension)
    wide, right = 2 * m_w + 6, 2 * m_w + 3 - w
    padded = None
    for o0 in range(0, m_h, step):
        o1 = min(o0 + step, m_h)
        rows = img.index_select(-2, rows_in[2 * o0:2 * o1 + 6])     # padded rows 2 o0 ..
        strip = _half_taps(rows[..., 0::2, :], rows[..., 1::2, :], -2, o1 - o0)
        if padded is None or padded.shape[-2] != strip.shape[-2]:
            padded = strip.new_empty(*strip.shape[:-1], wide)
        padded[..., 3:3 + w] = strip
        padded[..., :3] = strip[..., :3].flip(-1)
        padded[..., 3 + w:] = strip[..., w - right:].flip(-1)
        _half_taps(padded[..., 0::2], padded[..., 1::2], -1, m_w, out=out[..., o0:o1, :])
    return out


# output rows per strip of imresize_half_integers: about 0.25 MB of float64 input rows
HALF_STRIP_ELEMENTS = 1 << 15


def _small_integers(img: torch.Tensor) -> bool:
    """True when every value is an integer of magnitude below 2^20 (NaN and inf fail)."""
    lo, hi = torch.aminmax(img)
    if not (-_TWO_POW_20 < float(lo) and float(hi) < _TWO_POW_20):
        return False
    return bool(torch.equal(torch.floor(img), img))


def _mirrored_taps(n: int, device) -> torch.Tensor:
    """Input index of padded position k = 0 .. 2 ceil(n/2) + 5: k - 3 mirrored at both ends
    (MATLAB's ``symmetric`` padding: -1 -> 0, n -> n - 1)."""
    j = torch.arange(-3, 2 * ((n + 1) // 2) + 3, device=device)
    return torch.where(j < 0, -j - 1, torch.where(j >= n, 2 * n - 1 - j, j))


def _half_taps(even: torch.Tensor, odd: torch.Tensor, dim: int, m: int, out=None):
    """The 8-tap sum along ``dim`` for outputs o = 0..m-1, from the even and odd positions of
    the padded input (``p[2o + 2i] = even[o + i]``, ``p[2o + 2i + 1] = odd[o + i]``): every tap
    is a contiguous shift. Pairs of taps with one weight are added first (exact either way)."""
    def shifted(v, i):
        return v.narrow(dim, i, m)

    # p[2o + 3] + p[2o + 4], then p[2o + 2] + p[2o + 5], p[2o + 1] + p[2o + 6], p[2o] + p[2o + 7]
    out = torch.add(shifted(odd, 1), shifted(even, 2), out=out).mul_(HALF_TAPS_256[0] / 256.0)
    pair = torch.empty_like(out)
    for t, (a, b) in zip(HALF_TAPS_256[1:], (((even, 1), (odd, 2)), ((odd, 0), (even, 3)),
                                             ((even, 0), (odd, 3)))):
        out.add_(torch.add(shifted(*a), shifted(*b), out=pair), alpha=t / 256.0)
    return out
