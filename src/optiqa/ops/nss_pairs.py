"""The AGGD fits of paired products (BRISQUE), without a gradient, in fewer passes over memory.

:func:`paired_aggd_fits` returns, bit for bit, what fitting each paired product on its own does
(``aggd_fit(paired_products(coeffs, (shift,)).flatten(2))`` per shift, :mod:`optiqa.ops.nss`):

- **the same arrays, summed by the same calls.** The products, their negative parts times
  the products and their squares are written with the same element-wise operations into
  full-size buffers, a chunk at a time, so that a chunk's product is squared while it is still
  in the cache (a full-size product streams through memory once per operation otherwise); the
  buffers are then reduced whole by the same ``sum`` and ``vector_norm`` calls on tensors of the
  same shape, so every summation order is unchanged. Where the source row does not wrap,
  element ``(i, j)`` pairs with the one ``dr W + dc`` places before it in the flattened image,
  so a chunk's product is one multiplication of two contiguous runs; the elements whose source
  wraps (one column, one row) are then recomputed as :func:`optiqa.ops.nss.paired_products`
  does them;
- **the same counts, from signs.** The fit counts the negative and the non-zero products. With
  ``s`` the sign bits and ``z`` the zeros of the coefficients, ``a b`` is zero exactly where ``a``
  or ``b`` is, and negative exactly where ``s_a != s_b`` and neither is zero, *provided no
  product of two non-zero coefficients underflows to 0*: it cannot when every non-zero
  ``|coefficient| >= 2^-537`` (then ``|a b| >= 2^-1074``, the smallest subnormal, which rounds
  to itself or more; 2^-74 in float32). That is checked (and that none is NaN); otherwise the
  counts are taken on the products as before. Counts are integers, so counting one-byte sign
  arrays gives the same numbers as counting float64 products (and costs a tenth);
- **the same scalar formulas**, in one call for all shifts (:func:`optiqa.ops.nss.aggd_from_sums`:
  element-wise basic operations, correctly rounded whatever the batch).
"""
from __future__ import annotations

import numpy as np
import torch

from optiqa.ops.nss import _count_nonzero, aggd_fit, aggd_from_sums, paired_products

# below this a non-zero coefficient could make a product underflow to 0 (module docstring):
# the square root of the smallest subnormal, rounded up to a power of two
TINY_COEFFICIENT = {torch.float64: 2.0 ** -537, torch.float32: 2.0 ** -74}
# elements per chunk: 0.5 MB of float64 per buffer, so that a chunk's product and its two
# squares stay in the (2 MB) cache; 1 << 15..17 measured within 3% of each other on Set14
PAIR_STRIP_ELEMENTS = 1 << 16


def paired_aggd_fits(coeffs: torch.Tensor, shifts) -> tuple[torch.Tensor, ...]:
    """AGGD ``(alpha, left, right)``, each ``(N, len(shifts))``, of ``coeffs * circshift(coeffs,
    s)`` for each shift ``s``; ``coeffs`` is ``(N, H, W)``. Equal bit for bit to one
    :func:`optiqa.ops.nss.aggd_fit` per shift (module docstring); with a gradient, or off the
    CPU, it is computed that way."""
    if ((torch.is_grad_enabled() and coeffs.requires_grad) or coeffs.device.type != "cpu"
            or coeffs.dtype not in TINY_COEFFICIENT):
        fits = [aggd_fit(paired_products(coeffs, (s,)).flatten(2)) for s in shifts]
        return tuple(torch.cat(f, dim=-1) for f in zip(*fits))
    coeffs = coeffs.detach().contiguous()          # no graph here; numpy views need no grad
    n_img, h, w = coeffs.shape
    k = len(shifts)
    product, neg_sq, sq = (torch.empty_like(coeffs) for _ in range(3))
    sums = [[], [], []]                             # sum(x^2 [x < 0]), sum(x^2), sum(|x|)
    counts = _sign_counts(coeffs, shifts, product)  # (2, N, k) int64, or None
    fallback = []
    flat = (n_img, 1, h * w)                        # aggd_fit's shape: the same reductions
    c, p, a, b = (t.view(n_img, h * w) for t in (coeffs, product, neg_sq, sq))
    chunk = max(1, PAIR_STRIP_ELEMENTS // n_img)
    for shift in shifts:
        dr, dc = shift
        general = abs(dr) >= h or abs(dc) > 1 or w < 2
        # rows whose source row does not wrap: element (i, j) pairs with the one dr W + dc
        # places before it in the flattened image; its wrapping column is redone below
        top, bottom = (0, 0) if general else (max(dr, 0), h + min(dr, 0))
        lo, hi, d = top * w + (dc == 1), bottom * w - (dc == -1), dr * w + dc
        for s0 in range(0, h * w, chunk):
            s1 = min(s0 + chunk, h * w)
            if max(s0, lo) < min(s1, hi):
                t0, t1 = max(s0, lo), min(s1, hi)
                torch.mul(c[:, t0:t1], c[:, t0 - d:t1 - d], out=p[:, t0:t1])
            _square_parts(p[:, s0:s1], a[:, s0:s1], b[:, s0:s1])
        # what the flat run got wrong: the wrapping column, the wrapping rows
        if dc and top < bottom:
            j = 0 if dc == 1 else w - 1
            rows = slice(top, bottom)
            torch.mul(coeffs[:, rows, j], coeffs[:, top - dr:bottom - dr, (j - dc) % w],
                      out=product[:, rows, j])
            _square_parts(product[:, rows, j], neg_sq[:, rows, j], sq[:, rows, j])
        for r0, r1 in ((0, top), (bottom, h)) if not general else ((0, h),):
            if r0 < r1:
                _product_rows(coeffs, shift, r0, r1, product[:, r0:r1])
                _square_parts(product[:, r0:r1], neg_sq[:, r0:r1], sq[:, r0:r1])
        sums[0].append(neg_sq.view(flat).sum(-1))
        sums[1].append(sq.view(flat).sum(-1))
        sums[2].append(torch.linalg.vector_norm(product.view(flat), ord=1, dim=-1))
        if counts is None:
            x = product.view(flat)
            fallback.append((_count_nonzero(x.clamp(max=0.0)), _count_nonzero(x)))
    if counts is None:
        counts = torch.stack([torch.cat(c, dim=-1) for c in zip(*fallback)])
    sums = [torch.cat(s, dim=-1) for s in sums]
    return aggd_from_sums(sums[0], sums[1], sums[2], counts[0], counts[1], h * w,
                          coeffs.device)


def _square_parts(p: torch.Tensor, neg_sq: torch.Tensor, sq: torch.Tensor) -> None:
    """aggd_fit's element-wise operations on a piece of the product: the negative part times
    the product (clamp, multiply) and the product squared, into ``neg_sq`` and ``sq``."""
    torch.mul(torch.clamp(p, max=0.0, out=neg_sq), p, out=neg_sq)
    torch.mul(p, p, out=sq)


def _product_rows(coeffs: torch.Tensor, shift, r0: int, r1: int, out: torch.Tensor) -> None:
    """Rows ``r0:r1`` of ``coeffs * circshift(coeffs, shift)`` into ``out`` (which holds those
    rows), as four wrapped sub-rectangles: :func:`optiqa.ops.nss.paired_products`'s products."""
    h, w = coeffs.shape[-2:]
    dr, dc = shift[0] % h, shift[1] % w
    # element (i, j) of the shifted array is c[(i - dr) mod h, (j - dc) mod w]
    for lo, hi, src in ((max(r0, dr), r1, -dr), (r0, min(r1, dr), h - dr)):
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
    if c.size - np.count_nonzero(magnitude >= TINY_COEFFICIENT[coeffs.dtype]) != n_zero:
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
