"""VSI: visual saliency-induced index.

Zhang, Shen & Li, "VSI: a visual saliency-induced index for perceptual image quality assessment",
IEEE TIP 23(10), 2014, as computed by the official ``VSI.m`` (with its SDSP saliency: Zhang, Gu &
Li, "SDSP: a novel saliency detection method by combining simple priors", ICIP 2013), including
MATLAB's antialiased bilinear ``imresize`` and ``mat2gray``. Flat images, where the official code
divides 0 by 0, give VSI 1 (guard ``TINY``).

Calibration: the ``vsi`` row of the shared calibration table is not VSI.m output. It equals
IQA-PyTorch's ``vsi(opt)`` row, computed with the PyTorch port of IQA-Optimization (Ding et al.;
IQA-PyTorch PR #9: "official matlab code is not available"), which runs SDSP on the full-size
image instead of VSI.m's 256 x 256 resize and uses the D65 white in Lab. We differ from it by up
to 0.0123 on those pairs; repeating the port's two choices on top of this module reproduces its
numbers to 0.0014. piq follows VSI.m's resize and equals this module where no resizing is
involved (256 x 256 inputs, see tests/test_vsi.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from optiqa.ops.cache import tensor_cache
from optiqa.ops.color import rgb_to_lmn
from optiqa.ops.resize import imresize_matrix
from optiqa.metrics.base import FRMetric
from optiqa.ops.loggabor import (average_downsample, downsample_factor, frequency_grid,
                                     log_gabor_radial, scharr_magnitude)

# VSI.m constants (images on a 0-255 scale).
C1, C2, C3 = 1.27, 386.0, 130.0  # constForVS, constForGM, constForChrom
ALPHA, BETA = 0.40, 0.02         # alpha (gradient exponent), lambda (chromatic exponent)
# SDSP priors as VSI.m calls it: log-Gabor (sigmaF, omega0), centre (sigmaD), warm colour (sigmaC).
SIGMA_F, OMEGA_0, SIGMA_D, SIGMA_C = 1.34, 0.021, 145.0, 0.001
SDSP_SIZE = 256
# cos(beta pi) - 1 as float32 arithmetic gives it (exact: cos(beta pi) is in [0.5, 2])
_COS_BETA_PI_MINUS_1 = float(torch.tensor(math.cos(BETA * math.pi)) - 1.0)
# Not in the official code: keep the square roots, min-max normalisations and the final weighted
# mean finite on flat images (where the official code divides 0 by 0).
TINY = 1e-12


@tensor_cache(maxsize=16)
def _bilinear_matrix(n_in: int, n_out: int, dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """MATLAB ``imresize(..., 'bilinear')`` (antialiased) along one axis, as ``dtype`` on
    ``device``: :func:`optiqa.ops.resize.imresize_matrix`, converted once per size."""
    return imresize_matrix(n_in, n_out, method="bilinear").to(dtype=dtype, device=device)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """MATLAB ``imresize(x, [h w], 'bilinear')`` of ``(N, C, H, W)``.

    MATLAB's algorithm (:func:`optiqa.ops.resize.imresize_matrix`): output pixel ``x``
    (1-based) samples input position ``u = x / s + (1 - 1 / s) / 2`` with ``s = n_out / n_in``;
    the triangle kernel is widened to ``2 / s`` and scaled by ``s`` when shrinking
    (antialiasing, on by default); weights are normalised to sum to 1 and out-of-range taps are
    mirrored (``[1:n, n:-1:1]``). Both axes at once, ``Mr @ X @ Mc.T``, as ``imresize`` on
    double images.

    When neither side shrinks there is no antialiasing, and MATLAB's sample positions and mirrored
    borders then coincide with ``F.interpolate(mode='bilinear', align_corners=False)`` (the one
    out-of-range tap mirrors onto the edge pixel, which is what clamping gives); that kernel is
    faster than the two dense matrix products.
    """
    if (h, w) == tuple(x.shape[-2:]):
        return x  # MATLAB's weights reduce to the identity
    if h >= x.shape[-2] and w >= x.shape[-1]:
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    rows = _bilinear_matrix(x.shape[-2], h, x.dtype, x.device)
    cols = _bilinear_matrix(x.shape[-1], w, x.dtype, x.device)
    return rows @ x @ cols.t()


# RGB2Lab of VSI.m: linear sRGB -> XYZ (sRGB/D65 matrix) divided by the D50 white (0.9642, 1,
# 0.8251) (a quirk of the official code, kept); then (L* + 16, a*, b*) from f(X), f(Y), f(Z).
_XYZ_OVER_WHITE = ((0.4124564 / 0.9642, 0.3575761 / 0.9642, 0.1804375 / 0.9642),
                   (0.2126729, 0.7151522, 0.0721750),
                   (0.0193339 / 0.8251, 0.1191920 / 0.8251, 0.9503041 / 0.8251))
_F_TO_LAB = ((0.0, 116.0, 0.0), (500.0, -500.0, 0.0), (0.0, 200.0, -200.0))
LAB_EPSILON, LAB_KAPPA = 0.008856, 903.3


def _mix(matrix, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` over the channels of ``(N, 3, H, W)`` (a batched GEMM: faster than einsum)."""
    return (x.new_tensor(matrix) @ x.flatten(2)).view_as(x)


def _above(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(x > threshold)`` as 1.0 / 0.0 of ``x``'s dtype, exactly (``x - threshold`` is 0 only
    where ``x == threshold``): on the CPU comparisons, ``torch.where`` and ``masked_fill`` run
    element by element (``torch.where`` on a 256x256 RGB image ~0.65 ms), these three passes
    are vectorised (~0.05 ms)."""
    return x.sub(threshold).sign_().clamp_min_(0.0)


def _select(high: torch.Tensor, low: torch.Tensor, above: torch.Tensor,
            below: torch.Tensor) -> torch.Tensor:
    """``torch.where(above == 1, high, low)`` for finite ``high``, ``low`` (``below = 1 -
    above``): ``high * 1 + low * 0`` is ``high`` exactly, and the other way round. Reuses
    ``low``'s buffer."""
    return low.mul_(below).addcmul_(high, above)


def _srgb_to_linear(c: torch.Tensor, with_slope: bool):
    """sRGB companding: ``c / 12.92`` up to 0.04045, ``((c + 0.055) / 1.055)^2.4`` above.

    Returns the value and its slope (``None`` unless asked for); ``t >= 0.052`` keeps ``p / t``
    finite. In-place where a temporary is not read again (a fresh full-size buffer costs more
    than the arithmetic written into it), in the order of operations of the formula, and the
    two pieces selected with 0/1 masks (:func:`_select`): the same numbers as ``torch.where``.
    """
    above = _above(c, 0.04045)
    below = 1.0 - above
    t = c.add(0.055).div_(1.055)
    p = t.pow(2.4)
    slope = None
    if with_slope:
        slope = _select(p.mul(2.4 / 1.055).div_(t), torch.full_like(c, 1.0 / 12.92), above, below)
    return _select(p, c.div(12.92), above, below), slope


def _lab_f(v: torch.Tensor, with_slope: bool):
    """CIE ``f(v) = v^(1/3)`` above epsilon, ``(kappa v + 16) / 116`` at or below it, and its
    slope (``None`` unless asked for). ``v`` is overwritten (the caller's temporary). The cube
    root is taken of ``max(v, epsilon)``, which changes no selected value and keeps the
    unselected ones finite (``0 * inf`` would be NaN in :func:`_select`)."""
    above = _above(v, LAB_EPSILON)
    below = 1.0 - above
    cube_root = v.clamp_min(LAB_EPSILON).pow_(1.0 / 3.0)
    slope = None
    if with_slope:
        slope = _select(cube_root.mul(3.0).mul_(cube_root).reciprocal_(),
                        torch.full_like(v, LAB_KAPPA / 116.0), above, below)
    return _select(cube_root, v.mul_(LAB_KAPPA / 116.0).add_(16.0 / 116.0), above, below), slope


class _SdspLab(torch.autograd.Function):
    """``RGB2Lab`` of VSI.m with a hand-written backward.

    The two colour conversions are piecewise (``torch.where`` of a power law and a line); left
    to autograd, each piece costs several full-size passes backward. Here the forward pass
    computes each slope with its value (only when the input needs a gradient: a reference does
    not), and the backward pass is two 3x3 channel mixes and two multiplications by the slopes.
    """

    @staticmethod
    def forward(ctx, rgb):
        with_slope = ctx.needs_input_grad[0]
        linear, linear_slope = _srgb_to_linear(rgb, with_slope)
        f, f_slope = _lab_f(_mix(_XYZ_OVER_WHITE, linear), with_slope)
        if with_slope:
            ctx.save_for_backward(linear_slope, f_slope)
        return _mix(_F_TO_LAB, f)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        linear_slope, f_slope = ctx.saved_tensors
        grad_f = _mix_transposed(_F_TO_LAB, grad).mul_(f_slope)
        return _mix_transposed(_XYZ_OVER_WHITE, grad_f).mul_(linear_slope)


def _mix_transposed(matrix, x: torch.Tensor) -> torch.Tensor:
    """``matrix.T @ x`` over the channels: the backward of :func:`_mix`."""
    return (x.new_tensor(matrix).t() @ x.flatten(2)).view_as(x)


def _sdsp_lab(rgb: torch.Tensor) -> torch.Tensor:
    """``RGB2Lab`` of VSI.m for RGB in [0, 1], returning ``(L* + 16, a*, b*)``.

    sRGB companding, the sRGB (D65) matrix, then CIE Lab with the D50 white ``(0.9642, 1,
    0.8251)`` (as the official code has it), epsilon 0.008856, kappa 903.3. ``L*`` is returned
    without its ``-16``: SDSP only uses it through a log-Gabor filter, which is 0 at DC.
    """
    return _SdspLab.apply(rgb)


@tensor_cache(maxsize=4)
def _sdsp_priors(size: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The SDSP log-Gabor transfer (rfft half plane) and the centre prior, both ``(size, size)``."""
    u, v = frequency_grid(size, size)
    inside = (u ** 2 + v ** 2 <= 0.25).to(u.dtype)  # VSI.m zeroes u, v beyond radius 0.5
    radius = torch.sqrt((u * inside) ** 2 + (v * inside) ** 2)
    lg = log_gabor_radial(radius, OMEGA_0, SIGMA_F)[:, : size // 2 + 1]
    coord = torch.arange(1, size + 1, dtype=torch.float64) - size / 2.0
    centre = torch.exp(-(coord[:, None] ** 2 + coord[None, :] ** 2) / SIGMA_D ** 2)
    return lg.to(dtype=dtype, device=device), centre.to(dtype=dtype, device=device)


class _MinMaxNormalise(torch.autograd.Function):
    """``(t - min) / (max - min)`` per ``(H, W)`` plane, as the official ``mat2gray``.

    Forward as before (``amin`` and ``amax``: 10x faster than ``aminmax`` on the CPU, same
    values). Backward by hand, with ``D = max - min + TINY`` and ``o`` the output:
    ``dL/dt = g / D``, plus at the minimum ``(sum(g o) - sum(g)) / D`` and at the maximum
    ``-sum(g o) / D``, each shared evenly among tied pixels as autograd's ``amin``/``amax``
    do (their backward is a chain of comparisons and boolean masks, slow on the CPU).
    """

    @staticmethod
    def forward(ctx, t):
        flat = t.flatten(-2)
        lo, hi = flat.amin(-1)[..., None, None], flat.amax(-1)[..., None, None]
        scale = hi - lo + TINY
        out = t.sub(lo).div_(scale)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(t, out, lo, hi, scale)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        t, out, lo, hi, scale = ctx.saved_tensors
        dims = (-2, -1)
        grad_out = (grad * out).sum(dims, keepdim=True)
        grad_lo = (grad_out - grad.sum(dims, keepdim=True)) / scale
        grad_hi = -grad_out / scale
        at_lo = 1.0 - t.sub(lo).sign_()  # t >= lo: 1 exactly where t == lo
        at_hi = 1.0 + t.sub(hi).sign_()  # t <= hi: 1 exactly where t == hi
        grad_t = grad / scale
        grad_t.addcmul_(at_lo, grad_lo / at_lo.sum(dims, keepdim=True))
        return grad_t.addcmul_(at_hi, grad_hi / at_hi.sum(dims, keepdim=True))


def _minmax_normalise(t: torch.Tensor) -> torch.Tensor:
    """``(t - min) / (max - min)`` per ``(H, W)`` plane, as the official ``mat2gray``."""
    return _MinMaxNormalise.apply(t)


def sdsp(rgb: torch.Tensor) -> torch.Tensor:
    """SDSP saliency as VSI.m computes it: ``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, 1, H, W)``.

    On the image resized to 256 x 256 (MATLAB bilinear ``imresize`` with antialiasing) in CIELab:
    ``S_F = ||real(ifft2(fft2(Lab) * LG))||`` (log-Gabor, omega0 = 0.021, sigmaF = 1.34),
    ``S_D = exp(-||p - c||^2 / sigmaD^2)`` (centre prior, sigmaD = 145) and
    ``S_C = 1 - exp(-(a_n^2 + b_n^2) / sigmaC^2)`` with a, b min-max normalised (sigmaC = 0.001).
    ``VS = S_F S_D S_C`` is resized back (bilinear) and min-max normalised (``mat2gray``).
    """
    # One image at a time: SDSP works at 256 x 256 whatever the input size, and one image's
    # Lab planes (768 KiB) stay in the core's cache through the chain of element-wise passes
    # and FFTs, forward and backward (each image's numbers are those of the batched call).
    if rgb.shape[0] > 1:
        return torch.cat([_sdsp_one(img) for img in rgb.split(1)])
    return _sdsp_one(rgb)


def _sdsp_one(rgb: torch.Tensor) -> torch.Tensor:
    """:func:`sdsp` of a batch in one pass."""
    h, w = rgb.shape[-2:]
    lab = _sdsp_lab(_resize(rgb, SDSP_SIZE, SDSP_SIZE))
    lg, centre = _sdsp_priors(SDSP_SIZE, lab.dtype, lab.device)
    # LG is real and even, so the filtered image is real: half-plane FFTs give it exactly.
    filtered = torch.fft.irfft2(torch.fft.rfft2(lab) * lg, s=(SDSP_SIZE, SDSP_SIZE))
    s_f = (filtered.square().sum(1, keepdim=True) + TINY).sqrt()
    ab = _minmax_normalise(lab[:, 1:])
    # exp(-80) ~ 2e-35 already makes S_C exactly 1 (in float32 and float64); clamping there keeps
    # exp out of its subnormal range, which is about 8x slower on CPU.
    exponent = ab.square().sum(1, keepdim=True) * (-1.0 / SIGMA_C ** 2)
    s_c = 1.0 - torch.exp(exponent.clamp_min(-80.0))
    return _minmax_normalise(_resize(s_f * centre * s_c, h, w))


class _Similarity(torch.autograd.Function):
    """``S = (2 a b + c) / (a^2 + b^2 + c)`` with a hand-written backward.

    ``dS/da = 2 (b - a S) / D`` with ``D = a^2 + b^2 + c`` (and symmetrically for ``b``): three
    full-size passes where autograd's product and quotient rules take about ten.
    """

    @staticmethod
    def forward(ctx, a, b, c):
        sim = (2.0 * a * b + c) / (a * a + b * b + c)
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(a, b, sim)
            ctx.c = c
        return sim

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, b, sim = ctx.saved_tensors
        # 2 g / D, D recomputed as in the forward pass
        scaled = grad.mul(2.0).div_(a * a + b * b + ctx.c)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = b.sub(a * sim).mul_(scaled)
        if ctx.needs_input_grad[1]:
            grad_b = a.sub(b * sim).mul_(scaled)
        return grad_a, grad_b, None


def _similarity(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    return _Similarity.apply(a, b, c)


def vsi(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """VSI per image, RGB ``NCHW`` in [0, 1] -> ``(N,)`` (Zhang, Shen & Li 2014, VSI.m).

    With SDSP saliency ``VS``, the Scharr gradient magnitude ``G`` of L and the chromatic channels
    M, N of LMN (all averaged and subsampled by ``F = max(1, round(min(H, W) / 256))``)::

        S_VS = (2 VS1 VS2 + C1) / (VS1^2 + VS2^2 + C1)     C1 = 1.27
        S_G  = (2 G1 G2 + C2) / (G1^2 + G2^2 + C2)         C2 = 386
        S_C  = S_M S_N, each (2 a b + C3) / (a^2 + b^2 + C3), C3 = 130
        VSI  = sum(S_G^0.4 S_VS Re[S_C^0.02] VSm) / sum(VSm),   VSm = max(VS1, VS2)
    """
    factor = downsample_factor(*x.shape[-2:])
    vs_x = average_downsample(sdsp(x), factor)
    vs_r = average_downsample(sdsp(ref), factor)
    # split, not three slices: one backward node (a concatenation) instead of three zero-filled
    # full-size gradients
    l_x, m_x, n_x = average_downsample(rgb_to_lmn(x * 255.0), factor).split(1, dim=1)
    l_r, m_r, n_r = average_downsample(rgb_to_lmn(ref * 255.0), factor).split(1, dim=1)
    s_g = _similarity(scharr_magnitude(l_x), scharr_magnitude(l_r), C2)
    s_c = _similarity(m_x, m_r, C3) * _similarity(n_x, n_r, C3)
    # MATLAB's real(z^beta) for a negative product: |z|^beta cos(beta pi). As 1 + [s_c < 0]
    # (cos - 1), exactly torch.where's values (cos - 1 is exact in float32), without its slow
    # boolean pass.
    sign = (-s_c.detach()).sign_().clamp_min_(0.0).mul_(_COS_BETA_PI_MINUS_1).add_(1.0)
    chroma = s_c.abs().clamp_min(TINY).pow(BETA) * sign
    sim = s_g.pow(ALPHA) * _similarity(vs_x, vs_r, C1) * chroma
    weight = torch.maximum(vs_x, vs_r)
    return ((sim * weight).sum((1, 2, 3)) + TINY) / (weight.sum((1, 2, 3)) + TINY)


class VSI(FRMetric):
    """VSI (Zhang, Shen & Li 2014) as a metric module."""

    def compute(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return vsi(x, ref)
