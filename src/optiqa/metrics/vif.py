"""VIF: visual information fidelity, wavelet-domain (vector GSM) version.

Sheikh & Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006; official MATLAB
code ``vifvec.m`` (LIVE, http://live.ece.utexas.edu/research/Quality/vifvec_release.zip), which
needs Simoncelli's matlabPyrTools (``buildSpyr`` with ``sp5Filters``, ``'reflect1'`` edges).
Higher is better; 1 for identical images, above 1 for contrast enhancement.

What ``vifvec.m`` computes, reproduced here (grey image in [0, 255], the official evaluation
feeding MATLAB ``rgb2gray`` of the ``uint8`` image, i.e. rounded):

1. steerable pyramid, 4 scales x 6 orientations. Only 8 subbands enter VIF (``subbands = [4 7
   10 13 16 19 22 25]`` of the reversed band list): orientations 1 and 4 (0 and 90 degrees) of
   every scale, so only those two band filters are applied here;
2. subbands cropped to multiples of ``M = 3``; per scale a ``w x w`` window, ``w = 2^(5-s) + 1``
   (17, 9, 5, 3 from fine ``s = 1`` to coarse ``s = 4``), evaluated every 3 pixels, estimates
   the distortion channel ``d = g c + v``: ``g = cov / var_ref``, ``sigma_v^2 = (var_dist -
   g cov) / w^2``, with the guards of ``vifsub_est_M`` (variances < 1e-15 treated as zero,
   ``g >= 0``, ``sigma_v^2 >= 1e-15``);
3. the reference GSM: ``C_U`` = covariance of all overlapping 3x3 neighbourhoods (9-vectors),
   eigenvalues ``lambda_k`` of ``C_U``, and ``s^2 = u' C_U^-1 u / 9`` on non-overlapping blocks;
4. ``ceil(((w - 1) / 2) / M)`` border blocks are dropped, and with ``sigma_n^2 = 0.4``
   ``VIF = sum log2(1 + g^2 s^2 lambda_k / (sigma_v^2 + sigma_n^2))
         / sum log2(1 + s^2 lambda_k / sigma_n^2)`` over blocks, eigenvalues and subbands.

Small images: ``buildSpyr`` refuses 4 scales below 72 px. Here a scale is used when at least
one of its blocks survives the border crop (>= 21, 29, 33, 65 px for scales 1-4), so 64 px
images use scales 1-3 and 32 px images scales 1-2; from 72 px on, all 4 are used and the
result is that of vifvec.m. Stability: see :func:`_reference_gsm` and :func:`_channel_params`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from optiqa.ops.color import rgb_to_gray, rgb_to_gray_8bit
from optiqa.metrics.base import FRMetric
from optiqa.ops.filters import conv_depthwise

SIGMA_NSQ = 0.4  # HVS noise variance, for [0, 255] data
BLOCK = 3  # M: GSM neighbourhoods are M x M
SCALES = 4
VAR_TOL = 1e-15  # vifsub_est_M's tolerance for zero variance


def _taps(text: str) -> torch.Tensor:
    return torch.tensor([[float(v) for v in line.split()] for line in text.strip().splitlines()])


# sp5Filters.m (matlabPyrTools; Simoncelli & Freeman, ICIP 1995; Karasaridis & Simoncelli,
# ICASSP 1996), as published. lo0filt: initial low-pass; lofilt (x2 as in the file): low-pass
# before each factor-2 decimation. Both are symmetric, so correlation = convolution.
_LO0FILT = _taps("""
0.00341614 -0.01551246 -0.03848215 -0.01551246 0.00341614
-0.01551246 0.05586982 0.15925570 0.05586982 -0.01551246
-0.03848215 0.15925570 0.40304148 0.15925570 -0.03848215
-0.01551246 0.05586982 0.15925570 0.05586982 -0.01551246
0.00341614 -0.01551246 -0.03848215 -0.01551246 0.00341614""")
_LOFILT = 2.0 * _taps("""
0.00085404 -0.00244917 -0.00387812 -0.00944432 -0.00962054 -0.00944432 -0.00387812 -0.00244917 0.00085404
-0.00244917 -0.00523281 -0.00661117 0.00410600 0.01002988 0.00410600 -0.00661117 -0.00523281 -0.00244917
-0.00387812 -0.00661117 0.01396746 0.03277038 0.03981393 0.03277038 0.01396746 -0.00661117 -0.00387812
-0.00944432 0.00410600 0.03277038 0.06426333 0.08169618 0.06426333 0.03277038 0.00410600 -0.00944432
-0.00962054 0.01002988 0.03981393 0.08169618 0.10096540 0.08169618 0.03981393 0.01002988 -0.00962054
-0.00944432 0.00410600 0.03277038 0.06426333 0.08169618 0.06426333 0.03277038 0.00410600 -0.00944432
-0.00387812 -0.00661117 0.01396746 0.03277038 0.03981393 0.03277038 0.01396746 -0.00661117 -0.00387812
-0.00244917 -0.00523281 -0.00661117 0.00410600 0.01002988 0.00410600 -0.00661117 -0.00523281 -0.00244917
0.00085404 -0.00244917 -0.00387812 -0.00944432 -0.00962054 -0.00944432 -0.00387812 -0.00244917 0.00085404""")  # noqa: E501
# Band filters 1 and 4 of bfilts (the orientations vifvec uses). In the file each filter is one
# 49-tap column reshaped column-major to 7x7, so each line below (7 taps, as printed there) is a
# *column* of the kernel: hence the transpose.
_BFILT_1 = _taps("""
0.00277643 0.00496194 0.01026699 0.01455399 0.01026699 0.00496194 0.00277643
-0.00986904 -0.00893064 0.01189859 0.02755155 0.01189859 -0.00893064 -0.00986904
-0.01021852 -0.03075356 -0.08226445 -0.11732297 -0.08226445 -0.03075356 -0.01021852
0.00000000 0.00000000 0.00000000 0.00000000 0.00000000 0.00000000 0.00000000
0.01021852 0.03075356 0.08226445 0.11732297 0.08226445 0.03075356 0.01021852
0.00986904 0.00893064 -0.01189859 -0.02755155 -0.01189859 0.00893064 0.00986904
-0.00277643 -0.00496194 -0.01026699 -0.01455399 -0.01026699 -0.00496194 -0.00277643""").T
_BFILT_4 = _taps("""
-0.00277643 0.00986904 0.01021852 -0.00000000 -0.01021852 -0.00986904 0.00277643
-0.00496194 0.00893064 0.03075356 -0.00000000 -0.03075356 -0.00893064 0.00496194
-0.01026699 -0.01189859 0.08226445 -0.00000000 -0.08226445 0.01189859 0.01026699
-0.01455399 -0.02755155 0.11732297 -0.00000000 -0.11732297 0.02755155 0.01455399
-0.01026699 -0.01189859 0.08226445 -0.00000000 -0.08226445 0.01189859 0.01026699
-0.00496194 0.00893064 0.03075356 -0.00000000 -0.03075356 -0.00893064 0.00496194
-0.00277643 0.00986904 0.01021852 -0.00000000 -0.01021852 -0.00986904 0.00277643""").T
_BANDS = torch.stack([_BFILT_1, _BFILT_4])  # (2, 7, 7)


def _corr_reflect(img: torch.Tensor, kernels: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """matlabPyrTools ``corrDn(img, filt, 'reflect1', [s s], [1 1])``: correlation with mirror
    edges that do not repeat the edge pixel (PyTorch 'reflect'), keeping every ``stride``-th.
    ``kernels``: ``(O, k, k)``, giving O output channels per input channel."""
    r = kernels.shape[-1] // 2
    return conv_depthwise(F.pad(img, (r, r, r, r), mode="reflect"), kernels, stride=stride)


def _window(scale: int) -> tuple[int, int]:
    """(window size, border blocks) of vifvec.m for scale 1 (finest) ... 4 (coarsest)."""
    size = 2 ** (SCALES + 1 - scale) + 1
    return size, math.ceil((size - 1) / 2 / BLOCK)


def _scales_with_blocks(h: int, w: int) -> int:
    """How many scales keep at least one block after the border crop (4 for >= 65 px)."""
    count = 0
    for s in range(1, SCALES + 1):
        size = min(math.ceil(h / 2 ** (s - 1)), math.ceil(w / 2 ** (s - 1)))
        if size // BLOCK - 2 * _window(s)[1] < 1:
            break
        count = s
    return count


def steerable_subbands(img: torch.Tensor, scales: int) -> list[torch.Tensor]:
    """Orientation-1 and -4 subbands of ``buildSpyr(img, scales, 'sp5Filters', 'reflect1')``.

    ``img``: ``(B, 1, H, W)``. Returns one ``(B, 2, h_s, w_s)`` tensor per scale, finest first;
    the high-pass residual and the other orientations, unused by VIF, are not computed.
    """
    low = _corr_reflect(img, _LO0FILT[None])
    out = []
    for s in range(scales):
        out.append(_corr_reflect(low, _BANDS))
        if s + 1 < scales:
            low = _corr_reflect(low, _LOFILT[None], stride=2)
    return out


def _box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """``corrDn(x, ones(w)/w^2, 'reflect1', [M M], start, stop)`` of vifsub_est_M: window means
    centred on pixels 1, 1+M, 1+2M, ... (0-based), as two separable strided passes."""
    r = size // 2
    x = F.pad(x, (r, r, r, r), mode="reflect")[..., 1:, 1:]
    box = x.new_full((1, size), 1.0 / size)
    # (avg_pool2d gives the same numbers but is ~10x slower on CPU for these strided windows)
    x = conv_depthwise(x, box.view(1, size, 1), stride=(BLOCK, 1))
    return conv_depthwise(x, box.view(1, 1, size), stride=(1, BLOCK))


def _channel_params(ref: torch.Tensor, dist: torch.Tensor, size: int):
    """Gain ``g`` and noise variance ``sigma_v^2`` of the distortion channel (vifsub_est_M).

    The official masks are applied with ``torch.where``; divisions use a denominator that is
    1 where the mask discards the quotient, so no inf/NaN ever reaches the backward pass.
    """
    c = ref.shape[1]
    # The reference's two moments in their own call: when only ``dist`` carries a gradient
    # (a loss), the box filter's backward then runs on three fields, not five (the depthwise
    # filter gives each channel the same numbers whatever else is in the batch).
    mu_r, e_rr = _box_mean(torch.cat([ref, ref * ref], 1), size).split(c, dim=1)
    mu_d, e_dd, e_rd = _box_mean(torch.cat([dist, dist * dist, ref * dist], 1), size).split(c, 1)
    area = size * size
    # window sums of centred products, as vifvec forms them (sum - w^2 * mean * mean)
    var_r = (area * (e_rr - mu_r * mu_r)).clamp_min(0)
    var_d = (area * (e_dd - mu_d * mu_d)).clamp_min(0)
    cov = area * (e_rd - mu_r * mu_d)
    ref_flat, dist_flat = var_r < VAR_TOL, var_d < VAR_TOL
    gain = cov / torch.where(ref_flat, torch.ones_like(var_r), var_r + VAR_TOL)
    gain = torch.where(ref_flat | dist_flat, torch.zeros_like(gain), gain)
    noise = (var_d - gain * cov) / area
    noise = torch.where(ref_flat, var_d, noise)  # (sic: vifvec does not divide by w^2 here)
    noise = torch.where(dist_flat, torch.zeros_like(noise), noise)
    negative = gain < 0
    noise = torch.where(negative, var_d, noise)
    gain = gain.clamp_min(0)
    return gain, noise.clamp_min(VAR_TOL)


# Upper-triangle pairs (a, b) of the 9 neighbourhood positions, and for each of the 81 entries
# of C_U the index of its pair: C_U is symmetric, so 45 products give all of it.
_PAIRS = torch.triu_indices(BLOCK * BLOCK, BLOCK * BLOCK).T.tolist()
_PAIR_OF_ENTRY = torch.zeros(BLOCK * BLOCK, BLOCK * BLOCK, dtype=torch.long)
for _k, (_a, _b) in enumerate(_PAIRS):
    _PAIR_OF_ENTRY[_a, _b] = _PAIR_OF_ENTRY[_b, _a] = _k


def _neighbourhood_cov_value(y: torch.Tensor) -> torch.Tensor:
    """``C_U`` of refparams_vecgsm: covariance of all overlapping 3x3 neighbourhoods, float64.

    ``y``: ``(B, h, w)``; returns ``(B, 9, 9)``, position ``a = 3 * row + col``. Each entry is
    a sum over ~hw products of two shifted copies of ``y``: summed per row in float32 (pairwise
    summation, accurate) and over rows in float64. A float32 matrix product (unfold + bmm)
    accumulates sequentially and moves VIF by 1e-4 on 512x384 images; a float64 one is 5x
    slower than this.
    """
    h, w = y.shape[-2:]
    y = y - y.mean((-2, -1), keepdim=True)  # C_U ignores the mean; centring keeps sums small
    shifted = [y[:, i:h - BLOCK + 1 + i, j:w - BLOCK + 1 + j]
               for i in range(BLOCK) for j in range(BLOCK)]
    means = torch.stack([v.mean((-2, -1)) for v in shifted], -1).double()
    sums = torch.stack([(shifted[a] * shifted[b]).sum(-1).double().sum(-1) for a, b in _PAIRS], -1)
    count = shifted[0].shape[-2] * shifted[0].shape[-1]
    second_moment = sums[:, _PAIR_OF_ENTRY.to(sums.device).flatten()].view(-1, 9, 9) / count
    return second_moment - means[:, :, None] * means[:, None, :]


class _NeighbourhoodCov(torch.autograd.Function):
    """:func:`_neighbourhood_cov_value` with a hand-written backward.

    Autograd through the 45 shifted products costs 90 full-size slice gradients; instead, with
    ``C = (1/L) sum_p (u_p - mu)(u_p - mu)'`` over the L neighbourhood vectors ``u_p``,
    ``dC -> du_p = (1/L) (G + G') (u_p - mu)`` (the ``mu`` term vanishes since
    ``sum_p (u_p - mu) = 0``): one unfold, one 9x9 matrix product and one fold.
    """

    @staticmethod
    def forward(ctx, y):
        ctx.save_for_backward(y)
        return _neighbourhood_cov_value(y)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        b, h, w = y.shape
        patches = F.unfold(y[:, None], BLOCK)  # (B, 9, L)
        patches = patches - patches.mean(-1, keepdim=True)
        sym = ((grad + grad.transpose(1, 2)) / patches.shape[-1]).to(y.dtype)
        return F.fold(sym @ patches, (h, w), BLOCK).view(b, h, w)


def _reference_gsm(subbands: list[torch.Tensor]):
    """Per subband: ``s^2`` field on non-overlapping blocks and eigenvalues of ``C_U``.

    ``subbands``: reference subbands ``(N, 2, h, w)`` cropped to multiples of M. All ``C_U``
    (every image, orientation and scale) are decomposed in one batched float64 call. vifvec
    uses ``inv(C_U)``, which is singular for flat or band-limited patches (training crops of a
    smooth sky): we add a ridge of 1e-6 of the mean eigenvalue plus 1e-10 (variance units of
    [0, 255] data), far below the eigenvalues of real image subbands, and form
    ``s^2 = |L^-1 u|^2 / 9`` from the Cholesky factor ``L``, which is non-negative by
    construction. Eigenvalues come from ``eigvalsh`` (no eigenvectors, so no
    ``1 / (lambda_i - lambda_j)`` terms in its gradient, which blow up for repeated eigenvalues).
    """
    covs, blocks = [], []
    for y in subbands:
        n, c, h, w = y.shape
        # contiguous rows: the pyramid comes out channels-last, where each of the 45 row sums
        # strides over all channels (8x slower at 256 px, and summed sequentially)
        covs.append(_NeighbourhoodCov.apply(y.reshape(n * c, h, w).contiguous()))
        # non-overlapping blocks, 9 coefficients in the same order (3 * row + col)
        blk = y.reshape(n * c, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(0, 2, 4, 1, 3)
        blocks.append(blk.reshape(n * c, BLOCK * BLOCK, -1))
    cov = torch.cat(covs)
    eye = torch.eye(BLOCK * BLOCK, dtype=cov.dtype, device=cov.device)
    ridge = 1e-6 * cov.diagonal(dim1=-2, dim2=-1).mean(-1) + 1e-10
    cov = cov + ridge[:, None, None] * eye
    eigvals = torch.linalg.eigvalsh(cov).clamp_min(0).to(subbands[0].dtype)
    whiten = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), eye, upper=False)
    whiten = whiten.to(subbands[0].dtype)
    out, start = [], 0
    for y, blk in zip(subbands, blocks):
        n, c, h, w = y.shape
        stop = start + n * c
        s2 = (whiten[start:stop] @ blk).square().sum(1) / (BLOCK * BLOCK)
        out.append((s2.reshape(n, c, h // BLOCK, w // BLOCK),
                    eigvals[start:stop].reshape(n, c, 1, 1, -1)))
        start = stop
    return out


def vif(x: torch.Tensor, ref: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Wavelet-domain VIF per image ``(N,)`` as ``vifvec(ref, x)`` computes it (module docstring).

    ``x``, ``ref``: RGB or grey ``NCHW`` in [0, 1], at least 21 px a side (32 recommended).
    ``quantize=True`` rounds the grey image to 8 bits as the official evaluation does
    (straight-through gradient). Returns ``num / den``; a flat reference carries no
    information (``den = 0``), and a tiny constant keeps that case finite (VIF 0).
    """
    to_gray = rgb_to_gray_8bit if quantize else rgb_to_gray
    n = x.shape[0]
    scales = _scales_with_blocks(*x.shape[-2:])
    if scales == 0:
        raise ValueError(f"VIF needs at least 21x21 pixels, got {x.shape[-1]}x{x.shape[-2]}")
    # Reference and distorted pyramids in separate calls (the same numbers as one batched
    # call): a reference that needs no gradient then builds no autograd graph, so the GSM
    # fit (covariance, eigenvalues, Cholesky) and its half of the filtering have no backward.
    ref_pyramid, dist_pyramid = ([b[..., :b.shape[-2] // BLOCK * BLOCK,
                                    :b.shape[-1] // BLOCK * BLOCK]
                                  for b in steerable_subbands(255.0 * to_gray(img), scales)]
                                 for img in (ref, x))
    gsm = _reference_gsm(ref_pyramid)
    num = x.new_zeros(n)
    den = x.new_zeros(n)
    for s, (ref_bands, dist_bands, (s2, eigvals)) in enumerate(
            zip(ref_pyramid, dist_pyramid, gsm), start=1):
        size, border = _window(s)
        gain, noise = _channel_params(ref_bands, dist_bands, size)
        crop = (Ellipsis, slice(border, -border), slice(border, -border))
        gain, noise, s2 = gain[crop], noise[crop], s2[crop]
        # sum_k log2(1 + a * lambda_k) over the 9 eigenvalues, a >= 0 and lambda_k >= 0
        snr_dist = (gain * gain * s2 / (noise + SIGMA_NSQ))[..., None] * eigvals
        snr_ref = (s2 / SIGMA_NSQ)[..., None] * eigvals
        num = num + torch.log1p(snr_dist).sum((1, 2, 3, 4)) / math.log(2)
        den = den + torch.log1p(snr_ref).sum((1, 2, 3, 4)) / math.log(2)
    return num / (den + 1e-10)


class VIF(FRMetric):
    """Visual information fidelity, wavelet domain (Sheikh & Bovik 2006), see :func:`vif`."""

    def __init__(self, info=None, quantize: bool = True):
        super().__init__(info)
        self.quantize = quantize

    def compute(self, x, ref):
        return vif(x, ref, quantize=self.quantize)
