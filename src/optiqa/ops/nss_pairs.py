"""The AGGD fits of paired products (BRISQUE), without a gradient, in fewer passes over memory.

:func:`paired_aggd_fits` returns, bit for bit, what fitting each paired product on its own does
(``aggd_fit(paired_products(coeffs, (shift,)).flatten(2))`` per shift, :mod:`optiqa.ops.nss`):

- **the same arrays, summed by the same calls.** The products, their negative parts times
  themselves and their squares are written with the same element-wise operations into full-size
  buffers, a strip of rows at a time, so that a strip's product is squared while it is still in
  the cache (a full-size product streams through memory once per operation otherwise); the
  buffers are then reduced whole by the same ``sum`` and ``vector_norm`` calls on tensors of the
  same shape, so every summation order is unchanged;
- **the same counts, from signs.** The fit counts the negative and the non-zero products. With
  ``s`` the sign bits and ``z`` the zeros of the coefficients, ``a b`` is zero exactly where ``a``
  or ``b`` is, and negative exactly where ``s_a != s_b`` and neither is zero, *provided no
  product of two non-zero coefficients underflows to 0*: it cannot when every non-zero
  ``|coefficient| >= 2^-537`` (then ``|a b| >= 2^-1074``, the smallest subnormal, which rounds to
  itself or more). That is checked; otherwise the counts are taken on the products as before.
  Counts are integers, so counting one-byte sign arrays gives the same numbers as counting
  float64 products (and costs a tenth);
- **the same scalar formulas**, in one call for all shifts (:func:`optiqa.ops.nss.aggd_from_sums`:
  element-wise basic operations, correctly rounded whatever the batch).
"""
from __future__ import annotations

import numpy as np
import torch

from optiqa.ops.nss import _count_nonzero, aggd_fit, aggd_from_sums, paired_products

# below this a non-zero coefficient could make a product underflow to 0 (module docstring)
TINY_COEFFICIENT = 2.0 ** -537
# elements per strip and buffer: about 0.25 MB of float64, so that a strip's three outputs and
# its product stay in the cache
PAIR_STRIP_ELEMENTS = 1 << 15


def paired_aggd_fits(coeffs: torch.Tensor, shifts) -> tuple[torch.Tensor, ...]:
    """AGGD ``(alpha, left, right)``, each ``(N, len(shifts))``, of ``coeffs * circshift(coeffs,
    s)`` for each shift ``s``; ``coeffs`` is ``(N, H, W)``. Equal bit for bit to one
    :func:`optiqa.ops.nss.aggd_fit` per shift (module docstring); with a gradient, or off the
    CPU, it is computed that way."""
    if (torch.is_grad_enabled() and coeffs.requires_grad) or coeffs.device.type != "cpu":
        fits = [aggd_fit(paired_products(coeffs, (s,)).flatten(2)) for s in shifts]
        return tuple(torch.cat(f, dim=-1) for f in zip(*fits))
    n_img, h, w = coeffs.shape
    k = len(shifts)
    product, neg_sq, sq = (torch.empty_like(coeffs) for _ in range(3))
    sums = coeffs.new_empty(3, n_img, k)            # sum(x^2 [x < 0]), sum(x^2), sum(|x|)
    counts = _sign_counts(coeffs, shifts, product)  # (2, N, k) int64, or None
    fallback = []
    step = max(1, PAIR_STRIP_ELEMENTS // max(1, n_img * w))
    for j, shift in enumerate(shifts):
        for r0 in range(0, h, step):
            r1 = min(r0 + step, h)
            p, a, b = product[:, r0:r1], neg_sq[:, r0:r1], sq[:, r0:r1]
            _product_rows(coeffs, shift, r0, r1, p)
            # aggd_fit's operations: clamp, the negative part times x, x times x
            torch.mul(torch.clamp(p, max=0.0, out=a), p, out=a)
            torch.mul(p, p, out=b)
        flat = (n_img, 1, h * w)                    # aggd_fit's shape: the same reductions
        sums[0, :, j:j + 1] = neg_sq.view(flat).sum(-1)
        sums[1, :, j:j + 1] = sq.view(flat).sum(-1)
        sums[2, :, j:j + 1] = torch.linalg.vector_norm(product.view(flat), ord=1, dim=-1)
        if counts is None:
            x = product.view(flat)
            fallback.append((_count_nonzero(x.clamp(max=0.0)), _count_nonzero(x)))
    if counts is None:
        counts = torch.stack([torch.cat(c, dim=-1) for c in zip(*fallback)])
    return aggd_from_sums(sums[0], sums[1], sums[2], counts[0], counts[1], h * w,
                          coeffs.device)


def _product_rows(coeffs: torch.Tensor, shift, r0: int, r1: int, out: torch.Tensor) -> None:
    """Rows ``r0:r1`` of ``coeffs * circshift(coeffs, shift)`` into ``out`` (the same
    multiplications as :func:`optiqa.ops.nss.paired_products`, element for element).

    Within the rows whose source row does not wrap, element ``(i, j)`` pairs with the one
    ``dr W + dc`` places before it in the flattened image, so the bulk is one product of two
    contiguous runs (several times faster than on column slices); the one column whose source
    wraps around (``j = 0`` for ``dc = 1``, ``j = W - 1`` for ``dc = -1``) is then overwritten,
    and wrapping rows are done as :func:`optiqa.ops.nss.paired_products` does them.
    """
    h, w = coeffs.shape[-2:]
    dr, dc = shift
    if abs(dr) >= h or abs(dc) > 1 or w < 2:   # not the paired products' shifts: general path
        _product_rows_2d(coeffs, shift, r0, r1, out, r0, r1)
        return
    a, b = max(r0, dr, 0), min(r1, h + min(dr, 0))      # rows with an unwrapped source row
    if a < b:
        flat_c, flat_out = coeffs.flatten(-2), out.flatten(-2)
        d = dr * w + dc
        lo, hi = a * w + (dc == 1), b * w - (dc == -1)  # the wrapping column is done below
        torch.mul(flat_c[:, lo:hi], flat_c[:, lo - d:hi - d],
                  out=flat_out[:, lo - r0 * w:hi - r0 * w])
        if dc:
            j = 0 if dc == 1 else w - 1
            torch.mul(coeffs[:, a:b, j], coeffs[:, a - dr:b - dr, (j - dc) % w],
                      out=out[:, a - r0:b - r0, j])
    for lo, hi in ((r0, min(r1, a)), (max(r0, b), r1)):   # wrapping rows, if any
        if lo < hi:
            _product_rows_2d(coeffs, shift, r0, r1, out, lo, hi)


def _product_rows_2d(coeffs, shift, r0, r1, out, lo_row, hi_row) -> None:
    """Rows ``lo_row:hi_row`` (within the strip ``r0:r1`` that ``out`` holds) of the product,
    as four wrapped sub-rectangles (:func:`optiqa.ops.nss.paired_products`)."""
    h, w = coeffs.shape[-2:]
    dr, dc = shift[0] % h, shift[1] % w
    # element (i, j) of the shifted array is c[(i - dr) mod h, (j - dc) mod w]
    for lo, hi, src in ((max(lo_row, dr), hi_row, -dr), (lo_row, min(hi_row, dr), h - dr)):
        if lo >= hi:
            continue
        for cols_out, cols_in in ((slice(dc, w), slice(0, w - dc)),
                                  (slice(0, dc), slice(w - dc, w))):
            target = out[:, lo - r0:hi - r0, cols_out]
            if target.numel():
                torch.mul(coeffs[:, lo:hi, cols_out], coeffs[:, lo + src:hi + src, cols_in],
                          out=target)


def _sign_counts(coeffs: torch.Tensor, shifts, work: torch.Tensor):
    """``(2, N, k)`` int64: the negative and the non-zero products per image and shift, from the
    coefficients' signs and zeros; None when a product of non-zeros might underflow, or when a
    coefficient is NaN (then the plain counts decide). ``work``: a free buffer like ``coeffs``."""
    c = coeffs.numpy()
    magnitude = np.abs(c, out=work.numpy())
    zero = magnitude == 0
    n_zero = np.count_nonzero(zero)
    # neither tiny-but-non-zero nor NaN: every value is 0 or >= TINY (NaN fails both tests)
    if c.size - np.count_nonzero(magnitude >= TINY_COEFFICIENT) != n_zero:
        return None
    sign = np.signbit(c)
    nonzero = ~zero if n_zero else None
    n_img, h, w = coeffs.shape
    out = np.empty((2, n_img, len(shifts)), dtype=np.int64)
    for j, shift in enumerate(shifts):
        differ = sign != np.roll(sign, shift, axis=(1, 2))
        if nonzero is not None:
            both = nonzero & np.roll(nonzero, shift, axis=(1, 2))
            differ &= both
        for i in range(n_img):
            out[0, i, j] = np.count_nonzero(differ[i])
            out[1, i, j] = np.count_nonzero(both[i]) if nonzero is not None else h * w
    return torch.from_numpy(out)
