"""Natural-scene-statistics building blocks of NIQE, BRISQUE and PIQE (Mittal et al.).

All functions are batched torch, run on any device and keep the autograd graph where the maths
has a derivative. They follow the authors' MATLAB code (``niqe_release``, ``BRISQUE_release``):

- MSCN coefficients ``(I - mu) / (sigma + C)`` with a 7x7 Gaussian window of sigma 7/6
  (``fspecial('gaussian', 7, 7/6)``) on images in [0, 255], ``C = 1``;
- the shape parameters of a generalised Gaussian (GGD) and an asymmetric one (AGGD) by
  moment matching, picking the shape from the grid ``0.2:0.001:10`` exactly as
  ``estimateggdparam.m`` / ``estimateaggdparam.m`` do.

**Flat windows.** Where all 49 pixels of a window are equal (saturated or quantised regions),
``I - mu`` is exactly 0 in exact arithmetic; in floating point it is a residue of about 1e-14
whose sign depends on the order of the additions. The AGGD fit counts each coefficient on its
negative or positive side, so these residues change NIQE/BRISQUE on images with large flat
areas. :func:`mscn` returns exactly 0 there (the value of the formula), which makes the result
independent of the device and of the convolution algorithm.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from optiqa.ops.cache import tensor_cache
from optiqa.ops.filters import gaussian_kernel1d, pad, sqrt_zero_grad
from optiqa.ops.flat_windows import MSCN_WINDOW, flat_candidates, index_mask
from optiqa.ops.gray8 import _uint8_levels, gray_255  # noqa: F401 (gray_255: this API)

MSCN_SIGMA = 7.0 / 6.0
MSCN_C = 1.0  # for images in [0, 255]


def _window_sum(img: torch.Tensor, taps, padding) -> torch.Tensor:
    """Separable 7-tap pass over ``(..., H, W)``: ``sum_k taps[k] * shifted_k``, rows then
    columns (the autograd path of :func:`mscn`; :func:`_mscn_in_strips` does the same
    operations without a gradient).

    Written as 7 shifted slices per direction, accumulated in place: for one channel in float64
    this is several times faster than a convolution (which has no fast float64 path on CPU),
    and its rounding does not depend on the device.
    """
    half = MSCN_WINDOW // 2
    p = pad(img, (half, half, half, half), padding)
    h, w = p.shape[-2] - MSCN_WINDOW + 1, p.shape[-1] - MSCN_WINDOW + 1

    def combine(parts):
        out = parts[0] * taps[0]
        for t, part in zip(taps[1:], parts[1:]):
            out.add_(part, alpha=t)
        return out

    rows = combine([p[..., k:k + h, :] for k in range(MSCN_WINDOW)])
    return combine([rows[..., :, k:k + w] for k in range(MSCN_WINDOW)])


# elements per array in one strip of _mscn_in_strips: about 0.5 MB of float64, so that a
# strip's intermediates stay in the cache (720x576 photo: 4.7 ms per window sum vs 9.1 ms in
# one full-size pass, one thread on the project's 2-core machine)
STRIP_ELEMENTS = 1 << 16


def _mscn_in_strips(img: torch.Tensor, padding, taps, c: float):
    """No-gradient :func:`mscn` (before the flat-window test) in horizontal strips of rows;
    returns the coefficients and the indices ``(K, 4)`` of the pixels whose variance
    ``|w * I^2 - mu^2|`` is below 1e-6 (the flat-window candidates; None when there are none).

    Every output pixel goes through the same multiplies, adds, square root and division, in the
    same order, as in full-size passes (all are element-wise), so the result is the same bit
    for bit; a strip's intermediates stay in the cache instead of streaming through memory, and
    only the coefficients take a full-size buffer (fresh full-size buffers cost their page
    faults, more than the arithmetic written into them). A strip's padded rows of ``I`` and
    ``I^2`` are written per strip (:func:`_fill_padded_rows`), and each plane is processed as
    one flat run of its padded rows (width ``W + 6``): a column tap is then a shift of the whole
    run, so every operation but the last is on contiguous memory (2-3x faster per operation
    than on ``W``-wide column slices); the 6 extra values per row (taps that run into the next
    row) are computed and never used.
    """
    n, ch, h, w = img.shape
    half = MSCN_WINDOW // 2
    wp = w + MSCN_WINDOW - 1
    step = max(8, STRIP_ELEMENTS // max(1, n * 2 * ch * wp))
    source = img if padding in ("replicate", 0, "zeros") else pad(img, (half,) * 4, padding)
    zero_pad = padding in (0, "zeros")
    # padded rows, I and I^2; with zero padding the pad columns are written once, here
    buf = (img.new_zeros if zero_pad else img.new_empty)(n, 2 * ch, (step + MSCN_WINDOW - 1) * wp)
    rows, moments = img.new_empty(n, 2 * ch, step * wp), img.new_empty(n, 2 * ch, step * wp)
    num, den = img.new_empty(n, ch, step * wp), img.new_empty(n, ch, step * wp)
    coeffs = torch.empty_like(img)
    found, views = [], None
    for r0 in range(0, h, step):
        s = min(step, h - r0)
        if views is None or views[0] != s:  # the same views for every strip of s rows
            views = _strip_views(s, buf, rows, moments, num, den, wp, w)
        _, padded, row_in, row_out, col_in, strip, mu, var, centre, num_run, den_run, \
            ratio, var_rows = views
        _fill_padded_rows(source, padding, r0 - half, padded, columns_zero=zero_pad)
        torch.mul(row_in[0], taps[0], out=row_out)
        for k in range(1, MSCN_WINDOW):
            row_out.add_(row_in[k], alpha=taps[k])
        torch.mul(col_in[0], taps[0], out=strip)
        for k in range(1, MSCN_WINDOW):
            strip.add_(col_in[k], alpha=taps[k])
        var.addcmul_(mu, mu, value=-1.0).abs_()
        torch.sub(centre, mu, out=num_run)
        torch.sqrt(var, out=den_run).add_(c)
        torch.div(*ratio, out=coeffs[..., r0:r0 + s, :])
        if float(var_rows.amin()) < 1e-6:
            idx = (var_rows < 1e-6).nonzero()
            idx[:, 2] += r0
            found.append(idx)
    return coeffs, torch.cat(found) if found else None


def _strip_views(s: int, buf, rows, moments, num, den, wp: int, w: int):
    """The views of :func:`_mscn_in_strips`' buffers for a strip of ``s`` rows (made once per
    strip size: slicing costs several microseconds per view)."""
    n, ch2 = buf.shape[:2]
    ch = ch2 // 2
    half = MSCN_WINDOW // 2
    count = s + MSCN_WINDOW - 1
    run = s * wp - (MSCN_WINDOW - 1)      # flat outputs of the strip with a full window
    strip = moments[..., :run]
    return (s, buf[..., :count * wp].view(n, ch2, count, wp),
            [buf.narrow(-1, k * wp, s * wp) for k in range(MSCN_WINDOW)], rows[..., :s * wp],
            [rows.narrow(-1, k, run) for k in range(MSCN_WINDOW)], strip, strip[:, :ch],
            strip[:, ch:], buf[:, :ch].narrow(-1, half * wp + half, run), num[..., :run],
            den[..., :run], (num[..., :s * wp].view(n, ch, s, wp)[..., :w],
                             den[..., :s * wp].view(n, ch, s, wp)[..., :w]),
            moments[:, ch:, :s * wp].view(n, ch, s, wp)[..., :w])


def _fill_padded_rows(source: torch.Tensor, padding, top: int, out: torch.Tensor,
                      columns_zero: bool = False) -> None:
    """Rows ``top .. top + count - 1`` (image rows; ``count = out.shape[-2]``) of
    ``cat([pad(img), pad(img)^2], 1)`` padded by half a window, into ``out``
    ``(N, 2 ch, count, W + 6)``. ``source`` is the image for replicate and zero padding
    (padding commutes with squaring for both), else the image already padded.
    ``columns_zero``: zero padding whose pad columns in ``out`` are already 0."""
    half = MSCN_WINDOW // 2
    ch, count = source.shape[1], out.shape[-2]
    if padding not in ("replicate", 0, "zeros"):
        rows = source[..., top + half:top + half + count, :]
        out[:, :ch] = rows
        torch.mul(rows, rows, out=out[:, ch:])
        return
    h, w = source.shape[-2:]
    v0, v1 = max(top, 0), min(top + count, h)            # the image rows in this strip
    a, b = v0 - top, v1 - top
    rows = source[..., v0:v1, :]
    out[:, :ch, a:b, half:half + w] = rows
    torch.mul(rows, rows, out=out[:, ch:, a:b, half:half + w])
    if padding == "replicate":  # edge columns, then whole edge rows (corners included)
        out[..., a:b, :half] = out[..., a:b, half:half + 1]
        out[..., a:b, half + w:] = out[..., a:b, half + w - 1:half + w]
        if a:
            out[..., :a, :] = out[..., a:a + 1, :]
        if b < count:
            out[..., b:, :] = out[..., b - 1:b, :]
    else:
        if not columns_zero:
            out[..., a:b, :half] = 0.0
            out[..., a:b, half + w:] = 0.0
        if a:
            out[..., :a, :] = 0.0
        if b < count:
            out[..., b:, :] = 0.0


def mscn(img: torch.Tensor, padding="replicate", c: float = MSCN_C,
         integers: bool = False) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of ``(N, 1, H, W)`` images in [0, 255].

    ``mu = w * I``, ``sigma = sqrt(|w * I^2 - mu^2|)``, ``(I - mu) / (sigma + c)`` with the
    normalised 7x7 Gaussian ``w`` (sigma 7/6), correlated with ``padding``: ``'replicate'``
    (NIQE's and PIQE's ``imfilter``/``imgaussfilt``) or ``0`` (BRISQUE's ``filter2``). Exactly 0
    where the window is flat (module docstring).

    ``integers=True`` says that ``img`` holds integers in [0, 255] (:func:`gray_255`'s grey
    levels, as ``imresize_half_integers`` trusts it): the pixels whose computed variance is
    below 1e-6 are then exactly the flat windows (:mod:`optiqa.ops.flat_windows`), so the
    exact window test is skipped; the result is the same bit for bit.
    """
    taps = gaussian_kernel1d(MSCN_WINDOW, MSCN_SIGMA, dtype=torch.float64).tolist()
    if torch.is_grad_enabled() and img.requires_grad:
        mu = _window_sum(img, taps, padding)
        var = (_window_sum(img * img, taps, padding) - mu * mu).abs()
        coeffs = (img - mu) / (sqrt_zero_grad(var) + c)
        var = var.detach()
        candidates = (var < 1e-6).nonzero() if float(var.amin()) < 1e-6 else None
    else:  # both moments in one pass, in strips: no gradient, fewer full-size buffers
        coeffs, candidates = _mscn_in_strips(img, padding, taps, c)
    # a flat window has var ~ 1e-12 (rounding); the exact test runs only when one may exist
    if candidates is not None:
        flat = candidates if integers else flat_candidates(img, padding, candidates)
        if coeffs.requires_grad:
            if flat.dtype != torch.bool:
                flat = index_mask(flat, coeffs.shape)
            coeffs = coeffs.masked_fill(flat, 0.0)
        elif flat.dtype == torch.bool:
            coeffs.masked_fill_(flat, 0.0)
        else:  # our own buffer: zero the few flat pixels in place
            coeffs[tuple(flat.T)] = 0.0
    return coeffs


@tensor_cache(maxsize=16)
def _grid_and_curves(device_type: str, device_index):
    # MATLAB 0.2:0.001:10, 9801 values; as k / 1000 so that each value is the nearest double
    grid = torch.arange(200, 10001, dtype=torch.float64,
                        device=torch.device(device_type, device_index)) / 1000.0
    lg1, lg2, lg3 = torch.lgamma(1 / grid), torch.lgamma(2 / grid), torch.lgamma(3 / grid)
    ggd = torch.exp(lg1 + lg3 - 2 * lg2)    # Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2, decreasing
    aggd = torch.exp(2 * lg2 - lg1 - lg3)   # its reciprocal, increasing
    return grid, ggd, aggd


def shape_grid(device) -> torch.Tensor:
    """The shape grid ``0.2:0.001:10`` of the official fits, on ``device``."""
    device = torch.device(device)
    return _grid_and_curves(device.type, device.index)[0]


def _curves(device):
    device = torch.device(device)
    return _grid_and_curves(device.type, device.index)


def _gamma_ratio(a: torch.Tensor, num: float, den: float) -> torch.Tensor:
    """``Gamma(num / a) / Gamma(den / a)``."""
    return torch.exp(torch.lgamma(num / a) - torch.lgamma(den / a))


def _nearest_on_grid(curve: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Index of ``min((curve - target)^2)`` for an increasing ``curve``, first index on ties;
    NaN targets give index 0 (MATLAB's ``min`` of an all-NaN vector)."""
    flat = target.detach().reshape(-1).to(curve.dtype).contiguous()
    hi = torch.searchsorted(curve, flat).clamp(1, curve.numel() - 1)
    lo = hi - 1
    pick_hi = (curve[hi] - flat).abs() < (flat - curve[lo]).abs()
    idx = torch.where(pick_hi, hi, lo)
    idx = torch.where(torch.isnan(flat), torch.zeros_like(idx), idx)
    return idx.reshape(target.shape)


def ggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GGD shape and standard deviation of the last dimension, as ``estimateggdparam.m``.

    ``rho = E[x^2] / E[|x|]^2`` is matched to ``Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2`` on the
    grid; returns ``(alpha, sigma)`` with ``sigma = sqrt(E[x^2])``. ``alpha`` is a grid value
    (piecewise constant: it carries no gradient).
    """
    return ggd_from_sums(_sum_sq(x), torch.linalg.vector_norm(x, ord=1, dim=-1), x.shape[-1],
                         x.device, x.dtype)


def ggd_from_sums(sum_sq, sum_abs, n: int, device, dtype=None):
    """:func:`ggd_fit` from ``sum(x^2)`` and ``sum(|x|)`` of vectors of length ``n``."""
    grid, ggd_curve, _ = _curves(device)
    sigma_sq = sum_sq / n
    mean_abs = sum_abs / n
    valid = mean_abs > 0
    rho = sigma_sq / torch.where(valid, mean_abs, 1.0).square()
    rho = torch.where(valid, rho, float("nan"))
    # the curve decreases with alpha: negated, it increases and keeps the index order
    alpha = grid[_nearest_on_grid(-ggd_curve, -rho)]
    return alpha.to(dtype or sum_sq.dtype), sqrt_zero_grad(sigma_sq)


def aggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AGGD shape and left/right standard deviations of the last dimension (``estimateaggdparam``).

    ``sigma_l = sqrt(mean(x[x < 0]^2))``, ``sigma_r = sqrt(mean(x[x > 0]^2))`` (zeros count on
    neither side), ``g = sigma_l / sigma_r``, ``r = E[|x|]^2 / E[x^2]``,
    ``R = r (g^3 + 1)(g + 1) / (g^2 + 1)^2`` matched to ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))``
    on the grid. A side without values gives NaN for its deviation and the shape, and the shape
    is then the grid's first value (0.2), as in MATLAB (``mean([])`` is NaN; ``min`` of an
    all-NaN vector returns index 1).
    """
    # few passes, one full-size write (the negative part): the counts are the non-zeros of the
    # negative part and of x (no boolean masks: a compare, a bool buffer and a bool sum cost
    # several float passes on the CPU), sum(x^2 [x < 0]) as a dot product, the positive sum as
    # the rest of sum(x^2); the products and their order are those of x * (x < 0), bit for bit
    negative_part = x.clamp(max=0.0)
    n_neg, n_nonzero = _count_nonzero(negative_part), _count_nonzero(x)
    if torch.is_grad_enabled() and x.requires_grad:
        sum_neg = torch.linalg.vecdot(negative_part, x)
        sum_sq = _sum_sq(x)
    else:  # the same products and sums (vecdot is sum(a * b)) in one reused buffer: each
        # fresh full-size buffer costs its page faults, more than the multiply itself
        sum_neg = torch.mul(negative_part, x, out=negative_part).sum(-1)
        sum_sq = torch.mul(x, x, out=negative_part).sum(-1)
    l1 = torch.linalg.vector_norm(x, ord=1, dim=-1)
    return aggd_from_sums(sum_neg, sum_sq, l1, n_neg, n_nonzero, x.shape[-1], x.device)


def aggd_from_sums(sum_neg, sum_sq, l1, n_neg, n_nonzero, n: int, device, sum_pos=None):
    """:func:`aggd_fit` from the sums of a vector of length ``n``: ``sum(x^2 [x < 0])``,
    ``sum(x^2)``, ``sum(|x|)`` and the counts of negatives and non-zeros (tensors of one shape;
    element-wise, so several vectors' fits in one call give each one's own result, bit for bit).
    ``sum_pos``: ``sum(x^2 [x > 0])`` when summed on its own (else ``sum_sq - sum_neg``, which
    loses digits when nearly all of ``sum_sq`` is on the negative side).
    """
    grid, _, aggd_curve = _curves(device)
    n_pos = n_nonzero - n_neg
    if sum_pos is None:
        sum_pos = sum_sq - sum_neg
    has_neg, has_pos = n_neg > 0, n_pos > 0
    valid = has_neg & has_pos
    # statistics of an empty side are NaN; they are computed on safe stand-ins and set to NaN
    # at the end, so that the backward pass never multiplies a zero gradient by a NaN
    left = sqrt_zero_grad(sum_neg / n_neg.clamp(min=1))
    right = sqrt_zero_grad(sum_pos / n_pos.clamp(min=1))
    left_s, right_s = torch.where(has_neg, left, 1.0), torch.where(has_pos, right, 1.0)
    g = left_s / right_s
    mean_sq = torch.where(valid, (sum_neg + sum_pos) / n, 1.0)
    r = (l1 / n).square() / mean_sq
    r_norm = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1).square()
    r_norm = torch.where(valid, r_norm, float("nan"))
    alpha = grid[_nearest_on_grid(aggd_curve, r_norm)].to(sum_sq.dtype)
    nan = torch.full_like(left, float("nan"))
    return alpha, torch.where(has_neg, left_s, nan), torch.where(has_pos, right_s, nan)


def _count_nonzero(x: torch.Tensor) -> torch.Tensor:
    """Non-zeros of the last dimension (int64). On the CPU through numpy's ``count_nonzero``
    (a view, no copy: 6x faster than torch's for float64 at one thread); counts are exact, so
    the result is the same either way."""
    if x.device.type == "cpu":
        rows = x.detach().reshape(-1, x.shape[-1]).numpy()
        # row by row: with an axis, numpy converts to a boolean copy first
        counts = np.array([np.count_nonzero(row) for row in rows], dtype=np.int64)
        return torch.from_numpy(counts).reshape(x.shape[:-1])
    return torch.count_nonzero(x, dim=-1)


def _sum_sq(x: torch.Tensor) -> torch.Tensor:
    """``sum(x^2)`` over the last dimension in one pass."""
    return torch.linalg.vecdot(x, x)


def aggd_scale(alpha: torch.Tensor) -> torch.Tensor:
    """``sqrt(Gamma(1/a) / Gamma(3/a))``: standard deviation to AGGD scale ``beta``."""
    return _gamma_ratio(alpha, 1.0, 3.0).sqrt()


def aggd_mean_factor(alpha: torch.Tensor) -> torch.Tensor:
    """``Gamma(2/a) / Gamma(1/a)``: the AGGD mean is ``(beta_r - beta_l)`` times this."""
    return _gamma_ratio(alpha, 2.0, 1.0)


# circshift offsets (rows, columns) of the paired products; NIQE's fourth is (1, -1),
# BRISQUE's (-1, 1): the same diagonal, shifted the other way round
NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
BRISQUE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


def paired_products(coeffs: torch.Tensor, shifts) -> torch.Tensor:
    """``coeffs * circshift(coeffs, s)`` for each shift, stacked on a new dimension -3.

    ``coeffs`` is ``(..., H, W)``; the shift wraps around within those two dimensions, as
    MATLAB's ``circshift`` (so within each block when ``coeffs`` holds blocks). Written as
    products of the four wrapped sub-rectangles into one output (no rolled copies).
    """
    if torch.is_grad_enabled() and coeffs.requires_grad:  # out= has no autograd
        return torch.stack([coeffs * torch.roll(coeffs, s, dims=(-2, -1)) for s in shifts],
                           dim=-3)
    h, w = coeffs.shape[-2:]
    out = coeffs.new_empty(*coeffs.shape[:-2], len(shifts), h, w)
    for k, (dr, dc) in enumerate(shifts):
        dr, dc = dr % h, dc % w
        # circshift by (dr, dc): element (i, j) of the shifted array is c[i - dr, j - dc]
        for rows_out, rows_in in ((slice(dr, h), slice(0, h - dr)),
                                  (slice(0, dr), slice(h - dr, h))):
            for cols_out, cols_in in ((slice(dc, w), slice(0, w - dc)),
                                      (slice(0, dc), slice(w - dc, w))):
                target = out[..., k, rows_out, cols_out]
                if target.numel():
                    torch.mul(coeffs[..., rows_out, cols_out], coeffs[..., rows_in, cols_in],
                              out=target)
    return out
