"""BRISQUE's fits of MSCN coefficients and of their paired products, from dot products of planes.

:func:`nss_fits` returns the GGD fit of the coefficients and the AGGD fit of each paired product
``p = c * circshift(c, s)`` (:func:`optiqa.ops.nss.ggd_fit`, :func:`optiqa.ops.nss.aggd_fit` on
:func:`optiqa.ops.nss.paired_products`) without forming any product. The AGGD fit needs, per
shift, sums over the pairs of pixels ``(t, u)`` that the shift puts together:

- ``sum |p| = sum |c_t| |c_u|``;
- ``sum p^2 [p < 0] = sum (n_t s_u + s_t n_u)`` and ``sum p^2 [p > 0] = sum (n_t n_u + s_t s_u)``
  with ``n = c^2 [c < 0]``, ``s = c^2 [c > 0]`` (a product is negative exactly where its factors
  have opposite signs, neither being 0), each side summed on its own (estimateaggdparam.m's
  ``mean(x(x > 0).^2)``; the product-by-product code took it as a difference, which loses
  digits when nearly all of ``sum p^2`` is on one side);
- the numbers of non-zero and of negative products: ``H W`` and ``(H W - sum g_t g_u) / 2``
  with ``g = sign(c)`` when no coefficient is 0 (exact integers), counted on the signs otherwise.

So five *planes* ``|c|, n, s, [|c| >= TINY], g`` are written once and each shift costs six dot
products of a plane with a plane shifted. Stored row after row with one zero column appended
(rows of ``W + 1``), the pairs of a shift by at most one row and one column that do not wrap
around the image are exactly the pairs at one distance ``d = |dr (W + 1) + dc|`` of the
flattened planes (a pair that would cross a row's end meets the zero column), so each sum is a
``dot`` of two contiguous runs; the pairs that ``circshift`` wraps around (one row, one column)
are added from their products. The planes go through a small buffer a chunk of rows at a time
(with the row before the chunk), so they are written and read while in the cache. The GGD fit
needs ``sum c^2`` and ``sum |c|``: plane sums.

**Accuracy.** The sums are the same real numbers as the product-by-product code's; in float64
only the rounding differs: ``c_t^2 c_u^2`` instead of ``(c_t c_u)^2`` (a few units in the last
place) and the order of summation (BLAS dots per chunk, then the chunks, then the wrapped
pairs). The counts are exact. Measured on Set14, the calibration images and adversarial images
the 36 BRISQUE features differ by at most ~4e-14 relative (docs/performance.md). The fitted
shapes are grid values chosen by nearest distance: one changes only if a moment ratio falls
within that rounding of a midpoint between two grid values. Where a product of two non-zero
coefficients could underflow to 0 (a non-zero ``|c| < TINY``), a sum is so small that its
products may be subnormal, or a sum is not finite (NaN or overflow), and with a gradient, off the
CPU or in float32, the fits are computed product by product (``tests/test_nss_exact.py``
compares both with a plain NumPy transliteration of the MATLAB estimators).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from optiqa.ops.nss import aggd_fit, aggd_from_sums, ggd_fit, ggd_from_sums, paired_products

# a non-zero coefficient below TINY could make a product of two non-zero
# coefficients underflow to 0, which the products' count would not count; sums below SMALL_SUM
# may hold products that underflowed differently: both cases take the product-by-product path
TINY, SMALL_SUM = 2.0 ** -500, 2.0 ** -900
# planes: |c|, sign(c), c^2 [c < 0], c^2 [c > 0], [|c| >= TINY]
N_PLANES = 5
# values per plane in one chunk of rows: the chunk's five planes (1.3 MB) are written and read by
# the dot products while in the cache (full-size planes stream through memory: ~3x slower)
PLANE_CHUNK_ELEMENTS = 1 << 15


def nss_fits(coeffs: torch.Tensor, shifts):
    """``((alpha, sigma), (alpha, left, right))`` for MSCN coefficients ``(N, H, W)``: the GGD fit
    of each image's coefficients (``(N,)`` each, :func:`optiqa.ops.nss.ggd_fit`) and the AGGD fit
    of each paired product ``coeffs * circshift(coeffs, s)`` (``(N, len(shifts))`` each), from
    plane sums (module docstring)."""
    total = nss_sums(coeffs, shifts)
    if total is None:
        return ggd_fit(coeffs.flatten(1)), _per_shift(coeffs, shifts)
    return fits_from_sums(total, coeffs.shape[-2] * coeffs.shape[-1], len(shifts))


def nss_sums(coeffs: torch.Tensor, shifts):
    """The plane sums of :func:`nss_fits` (``(N, 2 + 5 k)``: ``sum c^2``, ``sum |c|``, then per
    shift ``sum |p|``, ``sum p^2 [p < 0]``, ``sum p^2 [p > 0]`` and the numbers of non-zero and
    of negative products), or None where the fits must be computed product by product."""
    if not _planes_apply(coeffs, shifts):
        return None
    sums = [_plane_sums(c, shifts) for c in coeffs.detach().contiguous()]
    if any(x is None for x in sums):              # tiny, huge or NaN coefficients
        return None
    return torch.stack(sums)


def fits_from_sums(total: torch.Tensor, n, k: int):
    """:func:`nss_fits` from :func:`nss_sums` (several sets of sums in one call, each with its
    number of values ``n``, a number or a ``(N,)`` tensor: element-wise, so the same bits as one
    call per set)."""
    if isinstance(n, torch.Tensor):
        n_ggd, n_aggd = n, n[:, None]
    else:
        n_ggd = n_aggd = n
    ggd = ggd_from_sums(total[:, 0], total[:, 1], n_ggd, total.device)
    s_abs, s_neg, s_pos, n_nonzero, n_neg = total[:, 2:].view(-1, 5, k).unbind(1)
    aggd = aggd_from_sums(s_neg, s_neg + s_pos, s_abs, n_neg.to(torch.int64),
                          n_nonzero.to(torch.int64), n_aggd, total.device, sum_pos=s_pos)
    return ggd, aggd


def paired_aggd_fits(coeffs: torch.Tensor, shifts) -> tuple[torch.Tensor, ...]:
    """The AGGD ``(alpha, left, right)``, each ``(N, len(shifts))``, of ``coeffs * circshift(
    coeffs, s)`` for each shift ``s`` (``coeffs``: ``(N, H, W)``): :func:`nss_fits`'s second
    part."""
    if not _planes_apply(coeffs, shifts):
        return _per_shift(coeffs, shifts)
    return nss_fits(coeffs, shifts)[1]


def _per_shift(coeffs, shifts):
    """The product-by-product fits: one :func:`optiqa.ops.nss.aggd_fit` per shift."""
    fits = [aggd_fit(paired_products(coeffs, (s,)).flatten(2)) for s in shifts]
    return tuple(torch.cat(f, dim=-1) for f in zip(*fits))


def _planes_apply(coeffs, shifts) -> bool:
    return (not (torch.is_grad_enabled() and coeffs.requires_grad)
            and coeffs.device.type == "cpu" and coeffs.dtype == torch.float64
            and coeffs.ndim == 3 and coeffs.shape[-1] >= 2 and coeffs.shape[-2] >= 2
            and all(abs(dr) <= 1 and abs(dc) <= 1 and (dr, dc) != (0, 0) for dr, dc in shifts))


def _write_planes(src: torch.Tensor, out) -> None:
    """The six planes of coefficients ``src`` into ``out`` (six tensors shaped like ``src``)."""
    torch.abs(src, out=out[0])
    torch.sign(src, out=out[1])
    torch.clamp(src, max=0.0, out=out[2]).mul_(out[2])       # (-|c|)^2 is c^2 bit for bit
    torch.clamp(src, min=0.0, out=out[3]).mul_(out[3])
    torch.ge(out[0], TINY, out=out[4])


def _plane_sums(c: torch.Tensor, shifts):
    """``[sum c^2, sum |c|]`` then, per sum, one value per shift: ``sum |p|``, ``sum p^2``,
    ``sum p^2 [p < 0]``, the numbers of non-zero and of negative products ``p`` (float64,
    exact integers); None where the plane sums do not apply (module docstring). ``c``:
    ``(H, W)``. Chunks of rows go through a buffer holding the chunk's planes after those of the
    row before it (a shift pairs a value with one at most ``W + 2`` places back)."""
    h, w = c.shape
    k = len(shifts)
    wide = w + 1
    step = max(1, PLANE_CHUNK_ELEMENTS // wide)
    dists = [abs(dr * wide + dc) for dr, dc in shifts]
    head = 1 + wide                               # a 0, then the previous row
    ring = c.new_zeros(N_PLANES, head + step * wide)
    products, sums, rows_before = [], [], None
    for r0 in range(0, h, step):
        rows = min(step, h - r0)
        if rows != rows_before:                   # views of the buffer for chunks of this size
            rows_before, end = rows, head + rows * wide
            planes = ring[:, head:end].view(N_PLANES, rows, wide)[..., :w].unbind(0)
            # per shift, two 2x2 products of planes: (|c|, sign) with (|c|, sign) shifted, and
            # (negative, positive) with (negative, positive) shifted (a 2x2 matrix product costs
            # about one dot product; the off-diagonal |c| sign terms are not used)
            pairs = [(ring[i:i + 2, head:end], ring[i:i + 2, head - d:end - d].T)
                     for d in dists for i in (0, 2)]
            summed = ring[:, head:end]
            last_row, previous_row = ring[:, end - wide:end], ring[:, 1:head]
        _write_planes(c[r0:r0 + rows], planes)
        products += [torch.mm(x, y) for x, y in pairs]
        sums.append(torch.sum(summed, dim=-1))
        previous_row.copy_(last_row)
    prod = torch.stack(products).view(-1, k, 2, 2, 2).sum(0)  # (shift, pair of planes, 2, 2)
    wrapped = _wrapped_sums(c, shifts)            # (k, 5)
    s_abs, s_sign = prod[:, 0, 0, 0] + wrapped[:, 0], prod[:, 0, 1, 1] + wrapped[:, 1]
    s_neg = prod[:, 1, 0, 1] + prod[:, 1, 1, 0] + wrapped[:, 2]
    s_pos = prod[:, 1, 0, 0] + prod[:, 1, 1, 1] + wrapped[:, 3]
    # sum |c|, sum sign, sum c^2 [c < 0], sum c^2 [c > 0], count of |c| >= TINY
    plane_sums = torch.stack(sums).sum(0)
    n_nonzero = c.new_full((k,), float(h * w))
    if int(plane_sums[4]) != h * w:               # some coefficient is 0 (or tiny, or NaN)
        nonzero = c.numpy() != 0
        if int(plane_sums[4]) != int(np.count_nonzero(nonzero)):     # tiny or NaN
            return None
        n_nonzero = torch.tensor([float(np.count_nonzero(nonzero & np.roll(nonzero, s, (0, 1))))
                                  for s in shifts], dtype=c.dtype)
    # sign(c_t) sign(c_u) is +1 for a positive product, -1 for a negative one, 0 for a zero
    n_neg = (n_nonzero - s_sign) / 2
    out = torch.cat([plane_sums[2:3] + plane_sums[3:4], plane_sums[0:1], s_abs, s_neg, s_pos,
                     n_nonzero, n_neg])
    checked = out[:2 + 3 * k]
    if not bool(torch.isfinite(checked).all()) or bool(((checked > 0)
                                                        & (checked < SMALL_SUM)).any()):
        return None
    return out


def _wrapped_sums(c: torch.Tensor, shifts) -> torch.Tensor:
    """``(k, 4)``: for the pairs that circshift wraps around, per shift, ``sum |p|``,
    ``sum sign(c_t) sign(c_u)``, ``sum p^2 [p < 0]`` and ``sum p^2 [p > 0]``, from the products
    ``p``."""
    h, w = c.shape
    x_index, y_index, segment = _wrap_index(h, w, tuple(shifts))
    flat = c.view(-1)
    x, y = flat.index_select(0, x_index), flat.index_select(0, y_index)
    p = x * y
    neg, pos = torch.clamp(p, max=0.0), torch.clamp(p, min=0.0)
    parts = torch.stack([p.abs(), torch.sign(x).mul_(torch.sign(y)), neg.mul_(neg),
                         pos.mul_(pos)], 1)
    return c.new_zeros(len(shifts), 4).index_add_(0, segment, parts)


@functools.lru_cache(maxsize=16)
def _wrap_index(h: int, w: int, shifts):
    """Flat indices of both ends of the pairs that circshift by each shift wraps around, and the
    shift each pair belongs to: the whole rows whose partner row wraps, then the one column whose
    partner column wraps (in the other rows). Element (i, j) pairs with (i - dr mod h, j - dc
    mod w)."""
    xs, ys, shift_of = [], [], []
    cols = torch.arange(w)
    for n, (dr, dc) in enumerate(shifts):
        x, y = [], []
        for i in (range(h - 1, h) if dr < 0 else range(0, dr)):    # rows whose source wraps
            x.append(i * w + cols)
            y.append(((i - dr) % h) * w + (cols - dc) % w)
        if dc:
            j = 0 if dc > 0 else w - 1
            r = torch.arange(max(dr, 0), h + min(dr, 0))    # rows whose source row does not
            x.append(r * w + j)
            y.append((r - dr) * w + (j - dc) % w)
        xs += x
        ys += y
        shift_of.append(torch.full((sum(len(v) for v in x),), n))
    empty = torch.zeros(0, dtype=torch.int64)
    return (torch.cat(xs) if xs else empty, torch.cat(ys) if ys else empty,
            torch.cat(shift_of))
