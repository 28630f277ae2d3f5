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
from optiqa.ops.color import MATLAB_GRAY_WEIGHTS
from optiqa.ops.filters import gaussian_kernel1d, pad, sqrt_zero_grad

MSCN_WINDOW = 7
MSCN_SIGMA = 7.0 / 6.0
MSCN_C = 1.0  # for images in [0, 255]


def gray_255(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``double(rgb2gray(uint8 image))``: grey levels 0..255 of RGB ``x`` in [0, 1],
    ``(N, 1, H, W)`` float64.

    Channels within 1e-3 of an 8-bit level are taken as that level (a uint8 image stored as
    float), so the rounding of the weighted sum is MATLAB's. The rounding passes the gradient
    straight through (``rounded + (g - g.detach())`` is exactly ``rounded`` in value).
    """
    weights = x.new_tensor(MATLAB_GRAY_WEIGHTS, dtype=torch.float64)
    if not (torch.is_grad_enabled() and x.requires_grad):  # same values, fewer passes
        levels = _uint8_levels(x)
        if levels is not None:
            return torch.einsum("c,nchw->nhw", weights, levels)[:, None].add_(0.5).floor_()
        v = x.double().mul_(255.0)
        # v + snap * (|snap| < 1e-3), snap = round(v) - v: the value of where(|snap| < 1e-3,
        # round(v), v) exactly (snap is exact by Sterbenz's lemma, so v + snap is round(v)),
        # with a float 0/1 factor instead of a boolean mask (2x faster on the CPU)
        snap = torch.round(v).sub_(v)
        v.addcmul_(snap, torch.lt(snap.abs(), 1e-3, out=torch.empty_like(snap)))
        return torch.einsum("c,nchw->nhw", weights, v)[:, None].add_(0.5).floor_()
    v = x * 255.0
    with torch.no_grad():
        snap = torch.round(v).sub_(v)
        snap.masked_fill_(snap.abs() >= 1e-3, 0.0)
    g = torch.einsum("c,nchw->nhw", weights, (v + snap).double())[:, None]
    return torch.floor(g.detach() + 0.5) + (g - g.detach())


# An 8-bit image stored as float is within 3e-5 of its levels in float32 (x*255 rounded twice);
# below this margin every channel is also within 1e-3 of its level in float64 (gray_255's test)
_FLOAT32_SNAP = 0.9e-3


def _uint8_levels(x: torch.Tensor):
    """The 8-bit levels of ``x`` as float64 when every channel is within ``_FLOAT32_SNAP`` of
    one in float32 (a uint8 image stored as float), else None.

    Where it returns levels they equal gray_255's float64 snapping bit for bit: a float64 value
    within 1e-3 of the level ``k`` snaps to ``k`` exactly, and the float32 test (3 cheap
    single-precision passes instead of 6 double ones) implies the float64 one, since
    ``|x*255 (float32) - x*255 (float64)| < 4e-5`` for ``x`` in [0, 1].
    """
    v32 = x.float().mul(255.0)
    levels = torch.round(v32)
    if float(v32.sub_(levels).abs_().max()) >= _FLOAT32_SNAP:
        return None
    return levels.double()


def _window_sum(img: torch.Tensor, taps, padding, reduce=None) -> torch.Tensor:
    """Separable 7-tap pass over ``(..., H, W)``: ``sum_k taps[k] * shifted_k`` (or the running
    ``reduce`` of the shifted copies when ``taps`` is None), rows then columns.

    Written as 7 shifted slices per direction, accumulated in place: for one channel in float64
    this is several times faster than a convolution (which has no fast float64 path on CPU),
    and its rounding does not depend on the device.
    """
    half = MSCN_WINDOW // 2
    return _padded_window_sum(pad(img, (half, half, half, half), padding), taps, reduce)


def _padded_window_sum(p: torch.Tensor, taps, reduce=None, out=None) -> torch.Tensor:
    """:func:`_window_sum` of an image already padded by half a window on each side (into
    ``out`` when given: weighted sums only, no autograd)."""
    h, w = p.shape[-2] - MSCN_WINDOW + 1, p.shape[-1] - MSCN_WINDOW + 1

    def combine(parts, out=None):
        if taps is None:
            out = parts[0].clone()
            for part in parts[1:]:
                reduce(out, part, out=out)
            return out
        out = parts[0] * taps[0] if out is None else torch.mul(parts[0], taps[0], out=out)
        for t, part in zip(taps[1:], parts[1:]):
            out.add_(part, alpha=t)
        return out

    rows = combine([p[..., k:k + h, :] for k in range(MSCN_WINDOW)])
    return combine([rows[..., :, k:k + w] for k in range(MSCN_WINDOW)], out)


# elements per array in one strip of _mscn_in_strips: about 0.5 MB of float64, so that a
# strip's intermediates stay in the cache (720x576 photo: 4.7 ms per window sum vs 9.1 ms in
# one full-size pass, one thread on the project's 2-core machine)
STRIP_ELEMENTS = 1 << 16


def _mscn_in_strips(img: torch.Tensor, padding, taps, c: float):
    """No-gradient :func:`mscn` (before the flat-window test) in horizontal strips of rows;
    returns the coefficients and the variance ``|w * I^2 - mu^2|``.

    Every output pixel goes through the same multiplies, adds, square root and division, in the
    same order, as in full-size passes (all are element-wise), so the result is the same bit
    for bit; a strip's intermediates stay in the cache instead of streaming through memory.
    """
    n, ch, h, w = img.shape
    padded = _pad_with_square(img, padding)                     # (N, 2 ch, H + 6, W + 6)
    moments = img.new_empty(n, 2 * ch, h, w)                     # w * I, then |w * I^2 - mu^2|
    coeffs = torch.empty_like(img)
    step = max(8, STRIP_ELEMENTS // max(1, n * 2 * ch * padded.shape[-1]))
    for r0 in range(0, h, step):
        r1 = min(r0 + step, h)
        strip = moments[..., r0:r1, :]
        _padded_window_sum(padded[..., r0:r1 + MSCN_WINDOW - 1, :], taps, out=strip)
        mu, var = strip[:, :ch], strip[:, ch:]
        var.addcmul_(mu, mu, value=-1.0).abs_()
        torch.sub(img[..., r0:r1, :], mu, out=coeffs[..., r0:r1, :]).div_(var.sqrt().add_(c))
    return coeffs, moments[:, ch:]


def mscn(img: torch.Tensor, padding="replicate", c: float = MSCN_C) -> torch.Tensor:
    """Mean-subtracted contrast-normalised coefficients of ``(N, 1, H, W)`` images in [0, 255].

    ``mu = w * I``, ``sigma = sqrt(|w * I^2 - mu^2|)``, ``(I - mu) / (sigma + c)`` with the
    normalised 7x7 Gaussian ``w`` (sigma 7/6), correlated with ``padding``: ``'replicate'``
    (NIQE's and PIQE's ``imfilter``/``imgaussfilt``) or ``0`` (BRISQUE's ``filter2``). Exactly 0
    where the window is flat (module docstring).
    """
    taps = gaussian_kernel1d(MSCN_WINDOW, MSCN_SIGMA, dtype=torch.float64).tolist()
    if torch.is_grad_enabled() and img.requires_grad:
        mu = _window_sum(img, taps, padding)
        var = _window_sum(img * img, taps, padding) - mu * mu
        coeffs = (img - mu) / (sqrt_zero_grad(var.abs()) + c)
    else:  # both moments in one pass, in strips: no gradient, fewer full-size buffers
        coeffs, var = _mscn_in_strips(img, padding, taps, c)
    # a flat window has var ~ 1e-12 (rounding); the exact test runs only when one may exist
    if float(var.detach().abs().amin()) < 1e-6:
        coeffs = coeffs.masked_fill(_flat_candidates(img, padding, var.detach().abs() < 1e-6),
                                    0.0)
    return coeffs


def _flat_candidates(img: torch.Tensor, padding, candidates: torch.Tensor) -> torch.Tensor:
    """:func:`flat_windows`, tested only where ``candidates`` (``var < 1e-6``) is True.

    A flat window (range <= 1e-8) has a computed variance below 1e-10 for values of an image in
    [0, 255] (rounding of ``E[I^2] - mu^2`` is about ``eps * 255^2``), so it is always a
    candidate and the mask equals :func:`flat_windows`'s. When candidates are few (a flat patch
    in a photo), their 7x7 windows are gathered and tested alone instead of two full-size
    running max/min passes; the max and min are exact, so the decision is the same bit for bit.
    """
    idx = candidates.nonzero()                                       # (K, 4): n, c, row, col
    if idx.shape[0] * MSCN_WINDOW ** 2 > 2 * candidates.numel():     # many: the full passes
        return flat_windows(img, padding)
    half = MSCN_WINDOW // 2
    p = pad(img, (half, half, half, half), padding)
    offsets = torch.arange(MSCN_WINDOW, device=img.device)
    rows, cols = idx[:, 2, None] + offsets, idx[:, 3, None] + offsets   # (K, 7) in padded p
    windows = p[idx[:, 0, None, None], idx[:, 1, None, None], rows[:, :, None], cols[:, None, :]]
    flat = windows.amax((1, 2)) - windows.amin((1, 2)) <= FLAT_TOLERANCE
    mask = torch.zeros_like(candidates)
    mask[tuple(idx[flat].T)] = True
    return mask


def _pad_with_square(img: torch.Tensor, padding) -> torch.Tensor:
    """``cat([pad(img), pad(img)^2], 1)`` padded by half a window, written into one buffer
    (padding commutes with squaring for replicate and zero padding; same values as padding
    the concatenation, without its two intermediate full-size copies)."""
    half = MSCN_WINDOW // 2
    if padding not in ("replicate", 0, "zeros"):
        p = pad(img, (half, half, half, half), padding)
        return torch.cat([p, p * p], 1)
    n, ch, h, w = img.shape
    out = img.new_empty(n, 2 * ch, h + 2 * half, w + 2 * half)
    inner = out[..., half:half + h, half:half + w]
    inner[:, :ch] = img
    torch.mul(img, img, out=inner[:, ch:])
    if padding == "replicate":  # edge columns, then whole edge rows (corners included)
        out[..., half:half + h, :half] = inner[..., :, :1]
        out[..., half:half + h, half + w:] = inner[..., :, w - 1:]
        out[..., :half, :] = out[..., half:half + 1, :]
        out[..., half + h:, :] = out[..., half + h - 1:half + h, :]
    else:
        out[..., half:half + h, :half] = 0.0
        out[..., half:half + h, half + w:] = 0.0
        out[..., :half, :] = 0.0
        out[..., half + h:, :] = 0.0
    return out


# A window whose values differ by less than this (grey levels) is flat: exactly flat regions of
# an 8-bit image come out of the 0.5 resize equal up to rounding (~1e-13), while any real
# difference in an 8-bit image leaves far more than this after it.
FLAT_TOLERANCE = 1e-8


def flat_windows(img: torch.Tensor, padding) -> torch.Tensor:
    """True where the 7x7 window (same centring and padding as the filter) is flat."""
    with torch.no_grad():
        hi = _window_sum(img, None, padding, torch.maximum)
        lo = _window_sum(img, None, padding, torch.minimum)
    return hi - lo <= FLAT_TOLERANCE


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
    grid, ggd_curve, _ = _curves(x.device)
    sigma_sq = _sum_sq(x) / x.shape[-1]
    mean_abs = torch.linalg.vector_norm(x, ord=1, dim=-1) / x.shape[-1]
    valid = mean_abs > 0
    rho = sigma_sq / torch.where(valid, mean_abs, 1.0).square()
    rho = torch.where(valid, rho, float("nan"))
    # the curve decreases with alpha: negated, it increases and keeps the index order
    alpha = grid[_nearest_on_grid(-ggd_curve, -rho)]
    return alpha.to(x.dtype), sqrt_zero_grad(sigma_sq)


def aggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AGGD shape and left/right standard deviations of the last dimension (``estimateaggdparam``).

    ``sigma_l = sqrt(mean(x[x < 0]^2))``, ``sigma_r = sqrt(mean(x[x > 0]^2))`` (zeros count on
    neither side), ``g = sigma_l / sigma_r``, ``r = E[|x|]^2 / E[x^2]``,
    ``R = r (g^3 + 1)(g + 1) / (g^2 + 1)^2`` matched to ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))``
    on the grid. A side without values gives NaN for its deviation and the shape, and the shape
    is then the grid's first value (0.2), as in MATLAB (``mean([])`` is NaN; ``min`` of an
    all-NaN vector returns index 1).
    """
    grid, _, aggd_curve = _curves(x.device)
    # few passes, one full-size write (the negative part): the counts are the non-zeros of the
    # negative part and of x (no boolean masks: a compare, a bool buffer and a bool sum cost
    # several float passes on the CPU), sum(x^2 [x < 0]) as a dot product, the positive sum as
    # the rest of sum(x^2); the products and their order are those of x * (x < 0), bit for bit
    negative_part = x.clamp(max=0.0)
    n_neg, n_nonzero = _count_nonzero(negative_part), _count_nonzero(x)
    n_pos = n_nonzero - n_neg
    if torch.is_grad_enabled() and x.requires_grad:
        sum_neg = torch.linalg.vecdot(negative_part, x)
        sum_sq = _sum_sq(x)
    else:  # the same products and sums (vecdot is sum(a * b)) in one reused buffer: each
        # fresh full-size buffer costs its page faults, more than the multiply itself
        sum_neg = torch.mul(negative_part, x, out=negative_part).sum(-1)
        sum_sq = torch.mul(x, x, out=negative_part).sum(-1)
    sum_pos = sum_sq - sum_neg
    has_neg, has_pos = n_neg > 0, n_pos > 0
    valid = has_neg & has_pos
    # statistics of an empty side are NaN; they are computed on safe stand-ins and set to NaN
    # at the end, so that the backward pass never multiplies a zero gradient by a NaN
    left = sqrt_zero_grad(sum_neg / n_neg.clamp(min=1))
    right = sqrt_zero_grad(sum_pos / n_pos.clamp(min=1))
    left_s, right_s = torch.where(has_neg, left, 1.0), torch.where(has_pos, right, 1.0)
    g = left_s / right_s
    n = x.shape[-1]
    mean_sq = torch.where(valid, (sum_neg + sum_pos) / n, 1.0)
    r = (torch.linalg.vector_norm(x, ord=1, dim=-1) / n).square() / mean_sq
    r_norm = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1).square()
    r_norm = torch.where(valid, r_norm, float("nan"))
    alpha = grid[_nearest_on_grid(aggd_curve, r_norm)].to(x.dtype)
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
