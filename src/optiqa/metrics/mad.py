"""MAD: Most Apparent Distortion.

Larson & Chandler, "Most apparent distortion: full-reference image quality assessment and the role
of strategy", J. Electronic Imaging 19(1), 011006, 2010; official MATLAB code ``MAD_index.m``
(2011 release) with its MEX helpers ``ical_std.c`` and ``ical_stat.c``. Lower is better, 0 for
identical images. Everything below runs on the grey image ``I`` in [0, 255] that the official code
gets from MATLAB ``rgb2gray`` of a ``uint8`` image (rounded to 8 bits; straight-through gradient).

**Detection stage** (``d_detect``, near-threshold distortions):

1. luminance: ``L^(1/3) = k I^(2.2/3)`` with ``k = 0.02874`` (display ``L = (b + k' I)^2.2``,
   ``b = 0``, then the cube root for lightness);
2. CSF: multiply the centred spectrum by the Mannos-Sakrison-style ``make_csf(H, W, 32)'``
   (32 cycles/degree at the image edge; see :func:`csf_centred`);
3. in 16x16 blocks at stride 4: ``m`` = mean of the filtered reference, ``C_err = std(err) / m``
   (local RMS contrast of the filtered error), ``C_ref = min std(8x8 sub-block) / m`` (the
   reference's masking contrast; ``ical_std.c``), both with MATLAB's ``n - 1`` normalisation;
4. visibility ``msk = max(0, ln C_err - (C_slope (max(ln C_ref, -5) + 5) - 5))``, zero where
   ``m < 0.5`` (dark blocks);
5. ``d_detect = 200 * RMS(msk * lmse)`` over the image less 16 pixels at the top/left and 17 at
   the bottom/right (``mp(BSIZE+1:end-BSIZE-1, ...)``), where ``lmse``
   is the 16x16 local mean of ``(I_ref - I_dst)^2`` and each block's ``msk`` covers the 4x4
   pixels at its top-left corner (as the MEX code writes it).

**Appearance stage** (``d_appear``, supra-threshold distortions): log-Gabor decomposition of ``I``
(5 scales with wavelengths ``3 * 3^s``, ``sigmaOnf = 0.55``; 4 orientations, ``dThetaOnSigma =
1.5``; Kovesi's ``gaborconvolve`` as altered by Larson), magnitudes ``|EO_{s,o}|``, and in 16x16
blocks at stride 4 their std (``n - 1``), skewness and kurtosis (``ical_stat.c``);
``eta = sum_{s,o} w_s (|d std| + 2 |d skew| + |d kurt|)`` with ``w = [0.5, 0.75, 1, 5, 6] / 13.25``
per *scale*; ``d_appear = RMS(eta)`` over the same cropped region.

**Combination**: ``alpha = 1 / (1 + beta_1 d_detect^beta_2)`` with ``beta_1 = exp(-2.55 / 3.35)
= 0.467`` and ``beta_2 = 1 / (3.35 ln 10) = 0.130``; ``MAD = d_detect^alpha d_appear^(1 - alpha)``.
As in the official code, a distortion that is nowhere visible (``d_detect = 0``, e.g. faint noise
on texture) scores exactly 0 whatever ``d_appear`` is, so as a loss it gives no gradient there.

Checked against the official code itself (MAD_index.m + the two MEX files run in GNU Octave) to
float32 rounding, and in float64 to 1e-9 (``tests/test_mad.py``). Differences from it:

* grey 255: the official ``LUT(img + 1)`` saturates in ``uint8`` and gives 255 the luminance of
  254; we use the formula (on the calibration pairs: d_detect up to 3e-4, MAD 5e-6 relative);
* the error is filtered as ``CSF(L_dst - L_ref)`` instead of ``CSF(L_dst) - CSF(L_ref)`` (linear,
  and more precise), with a real FFT and the CSF symmetrised accordingly;
* block moments are combined from exact 4x4-cell moments (numerically stable in float32), and
  only the blocks whose tiles reach the cropped map are computed (:mod:`optiqa.metrics.mad_blocks`,
  the block grid of both stages);
* floors keep logs, powers and roots finite for the gradient; each is commented where it is used.

Note: the official numbers in ``calibration/official_scores.csv`` (row ``mad``) are the output of
IQA-PyTorch's ``mad``, whose authors state that the official code was not available to them; it
differs from ``MAD_index.m`` (RGB channels, orientation-indexed weights, no border crop, ...),
so this faithful implementation does not reproduce that row (see ``tests/test_mad.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from optiqa.ops.cache import tensor_cache
from optiqa.ops.color import rgb_to_gray, rgb_to_gray_8bit
from optiqa.metrics.base import FRMetric
from optiqa.metrics.mad_blocks import (BLOCK, BORDER, STRIDE, block_moments, blocks_region,
                                       cell_moments, min_neighbour_var, tiles_cropped)

# Detection stage (hi_index in MAD_index.m).
K_LUMINANCE = 0.02874
LUMINANCE_EXPONENT = 2.2 / 3.0
CSF_NFREQ = 32.0
LUMINANCE_THRESHOLD = 0.5  # G: blocks with a darker mean are ignored
CONTRAST_SLOPE = 1.0  # C_slope
CONTRAST_KNEE = -5.0  # Ci_thrsh: log reference contrast where masking starts
DETECTION_FLOOR = -5.0  # Cd_thrsh: log error contrast that is always visible
DETECT_SCALE = 200.0

# Appearance stage (lo_index / gaborconvolve).
GABOR_SCALES = 5
GABOR_ORIENTATIONS = 4
GABOR_MIN_WAVELENGTH = 3.0
GABOR_MULT = 3.0
GABOR_SIGMA_ON_F = 0.55
GABOR_D_THETA_ON_SIGMA = 1.5
SCALE_WEIGHTS = (0.5, 0.75, 1.0, 5.0, 6.0)

# Combination.
BETA1 = math.exp(-2.55 / 3.35)
BETA2 = 1.0 / (math.log(10.0) * 3.35)

MIN_SIZE = 2 * BORDER  # the smallest image whose cropped map is not empty

# Floors. Luminance of a black pixel: I^(2.2/3) has an infinite slope at 0, and 1e-6 grey levels
# changes L by < 2e-6. Variances of the luminance images: fp32 FFT noise of a flat image is ~1e-14,
# so 1e-12 only replaces log(0) = -inf by a contrast far below the -5 knee (it never turns a block
# visible). Variances of the Gabor magnitudes (0-255 scale): below 1e-6 a block is flat, where the
# official code's skewness/kurtosis are 0 (exactly flat) or float noise; the floor keeps them ~0
# and their gradients finite.
LUMINANCE_FLOOR = 1e-6
CONTRAST_VAR_FLOOR = 1e-12
GABOR_VAR_FLOOR = 1e-6
# d_detect below this counts as this value inside alpha only: d^beta2 has an infinite slope at 0.
DETECT_FLOOR = 1e-20


@tensor_cache(maxsize=16)
def csf_centred(h: int, w: int, nfreq: float = CSF_NFREQ) -> torch.Tensor:
    """The official ``make_csf(H, W, nfreq)'``, centred (DC near ``[H/2, W/2]``), float64.

    On the half-sample grid ``u = i - H/2 + 1/2``, ``v = j - W/2 + 1/2`` (both divided by the
    *width*, as the official code does), radial frequency ``f = |u + iv| 2 nfreq / W / s(theta)``
    with the oblique-effect factor ``s = (1 - w)/2 cos(4 theta) + (1 + w)/2``, ``w = 0.7``; then
    ``csf(f) = 2.6 (0.0192 + 0.114 f) exp(-(0.114 f)^1.1)`` and the plateau ``0.9809`` below
    ``f = 7.8909`` (the peak: a low-pass rather than band-pass CSF).
    """
    u = torch.arange(h, dtype=torch.float64) - h / 2 + 0.5
    v = torch.arange(w, dtype=torch.float64) - w / 2 + 0.5
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    scale = 2.0 * nfreq / w
    theta = torch.atan2(vv, uu)
    oblique = (1 - 0.7) / 2 * torch.cos(4 * theta) + (1 + 0.7) / 2
    f = torch.sqrt(uu ** 2 + vv ** 2) * scale / oblique
    csf = 2.6 * (0.0192 + 0.114 * f) * torch.exp(-(0.114 * f) ** 1.1)
    return torch.where(f < 7.8909, torch.full_like(csf, 0.9809), csf)


@tensor_cache(maxsize=16)
def _csf_rfft(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """CSF for ``rfft2``: ``real(ifft2(F .* H)) = irfft2(F .* (H(k) + H(-k)) / 2)``, real images."""
    hf = torch.fft.ifftshift(csf_centred(h, w))  # DC at [0, 0]
    mirrored = torch.roll(torch.flip(hf, (0, 1)), (1, 1), (0, 1))  # H(-k mod n)
    return ((hf + mirrored) / 2)[:, : w // 2 + 1].to(dtype=dtype, device=device)


@tensor_cache(maxsize=4)  # 20 H x W planes each: keep few sizes
def log_gabor_bank(h: int, w: int, dtype: torch.dtype = torch.float64,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """The 20 real transfer functions of the official ``gaborconvolve``, in FFT order.

    ``(scales * orientations, H, W)``, scale-major (index ``s * 4 + o``). Grid
    ``x = (-W/2 .. W/2 - 1) / (W/2)``, ``y`` likewise over rows; radial part
    ``exp(-(ln r - ln(2 / lambda_s))^2 / (2 ln(0.55)^2))`` with ``lambda_s = 3 * 3^s`` and zero at
    the centre sample; angular part ``exp(-dtheta^2 / (2 (pi / 4 / 1.5)^2))`` around
    ``o * pi / 4``, with ``theta = atan2(-y, x)``; then ``fftshift``.
    """
    x = (torch.arange(w, dtype=torch.float64) - w / 2) / (w / 2)
    y = (torch.arange(h, dtype=torch.float64) - h / 2) / (h / 2)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    radius = torch.sqrt(xx ** 2 + yy ** 2)
    # MATLAB round(rows/2 + 1) (1-based, halves away from zero) as a 0-based index.
    ci, cj = math.floor(h / 2 + 1.5) - 1, math.floor(w / 2 + 1.5) - 1
    radius[ci, cj] = 1.0  # log(0) at the centre; the response there is set to 0 below
    log_r = torch.log(radius)
    radial = []
    for s in range(GABOR_SCALES):
        f0 = 2.0 / (GABOR_MIN_WAVELENGTH * GABOR_MULT ** s)  # 1 / wavelength, relative to 0.5
        g = torch.exp(-(log_r - math.log(f0)) ** 2 / (2.0 * math.log(GABOR_SIGMA_ON_F) ** 2))
        g[ci, cj] = 0.0
        radial.append(g)
    theta = torch.atan2(-yy, xx)
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)
    theta_sigma = math.pi / GABOR_ORIENTATIONS / GABOR_D_THETA_ON_SIGMA
    spread = []
    for o in range(GABOR_ORIENTATIONS):
        angle = o * math.pi / GABOR_ORIENTATIONS
        ds = sin_t * math.cos(angle) - cos_t * math.sin(angle)
        dc = cos_t * math.cos(angle) + sin_t * math.sin(angle)
        spread.append(torch.exp(-torch.atan2(ds, dc) ** 2 / (2.0 * theta_sigma ** 2)))
    bank = torch.stack(radial)[:, None] * torch.stack(spread)[None]  # (S, O, H, W)
    bank = torch.fft.fftshift(bank.reshape(-1, h, w), dim=(-2, -1))
    return bank.to(dtype=dtype, device=device)


def _rms(m: torch.Tensor) -> torch.Tensor:
    """Root mean square per image, exactly 0 with a zero (not NaN) gradient for an all-zero map."""
    ms = m.square().flatten(1).mean(1)
    positive = ms > 0
    return torch.where(positive, torch.where(positive, ms, 1.0).sqrt(), 0.0)


def luminance(gray: torch.Tensor) -> torch.Tensor:
    """``k I^(2.2/3)`` for ``I`` in [0, 255]: the cube root of the display luminance."""
    return K_LUMINANCE * gray.clamp_min(LUMINANCE_FLOOR) ** LUMINANCE_EXPONENT


def reference_visibility(ref_gray: torch.Tensor) -> dict:
    """The reference's share of :func:`visibility_map`: its luminance and, for blocks
    ``4 .. last``, which blocks are bright enough, their log mean and the masking threshold."""
    h, w = ref_gray.shape[-2:]
    lum_ref = luminance(ref_gray)
    filtered = torch.fft.irfft2(torch.fft.rfft2(lum_ref) * _csf_rfft(h, w, lum_ref.dtype,
                                                                     lum_ref.device), s=(h, w))
    ref_cells = cell_moments(blocks_region(filtered), 2)
    mean_ref, _ = block_moments(ref_cells, BLOCK // STRIDE)
    # 8x8 blocks for the blocks 4 .. last and their right/lower neighbours.
    _, s2_ref8 = block_moments(ref_cells, 8 // STRIDE)
    s2_ref8 = s2_ref8[..., : mean_ref.shape[-2] + 1, : mean_ref.shape[-1] + 1]
    var_ref = min_neighbour_var(s2_ref8 / (64 - 1), h, w).clamp_min(CONTRAST_VAR_FLOOR)
    # Blocks darker than G are dropped; the clamp only keeps their (unused) log finite.
    log_mean = torch.log(mean_ref.clamp_min(LUMINANCE_THRESHOLD))
    ci_ref = 0.5 * torch.log(var_ref) - log_mean
    threshold = CONTRAST_SLOPE * (ci_ref.clamp_min(CONTRAST_KNEE) - CONTRAST_KNEE) + DETECTION_FLOOR
    return {"lum": lum_ref, "bright": mean_ref >= LUMINANCE_THRESHOLD, "log_mean": log_mean,
            "threshold": threshold}


def visibility_map(ref_gray: torch.Tensor, dst_gray: torch.Tensor,
                   reference: dict | None = None) -> torch.Tensor:
    """The block map ``msk`` of ``hi_index`` (log visible-contrast excess) for blocks ``4 .. last``.

    ``ref_gray``, ``dst_gray``: ``(N, 1, H, W)`` grey images in [0, 255]; ``reference``: the
    result of :func:`reference_visibility` for ``ref_gray`` when already computed (its batch of
    1 then broadcasts over ``dst_gray``).
    """
    h, w = dst_gray.shape[-2:]
    ref_state = reference if reference is not None else reference_visibility(ref_gray)
    lum_err = luminance(dst_gray) - ref_state["lum"]
    filtered = torch.fft.irfft2(torch.fft.rfft2(lum_err) * _csf_rfft(h, w, lum_err.dtype,
                                                                     lum_err.device), s=(h, w))
    _, s2_err = block_moments(cell_moments(blocks_region(filtered), 2), BLOCK // STRIDE)
    var_err = (s2_err / (BLOCK * BLOCK - 1)).clamp_min(CONTRAST_VAR_FLOOR)
    ci_err = 0.5 * torch.log(var_err) - ref_state["log_mean"]
    return torch.where(ref_state["bright"], F.relu(ci_err - ref_state["threshold"]), 0.0)


def detection_distortion(ref_gray: torch.Tensor, dst_gray: torch.Tensor,
                         reference: dict | None = None) -> torch.Tensor:
    """``d_detect = 200 RMS(msk * lmse)`` over the cropped image, ``(N,)``."""
    h, w = dst_gray.shape[-2:]
    msk = tiles_cropped(visibility_map(ref_gray, dst_gray, reference), h, w)
    # imfilter(err^2, ones(16)/256, 'symmetric', 'same') averages rows i-7..i+8: on the crop
    # [16, H-17) these stay inside the image, so no padding is needed.
    sq_err = (ref_gray - dst_gray).square()
    sq_err = sq_err[..., BLOCK - 7: h - BORDER + 8, BLOCK - 7: w - BORDER + 8]
    lmse = F.avg_pool2d(F.avg_pool2d(sq_err, (BLOCK, 1), 1), (1, BLOCK), 1)
    return DETECT_SCALE * _rms(msk * lmse)


def gabor_statistics(gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Std (``n - 1``), skewness and kurtosis of the 20 log-Gabor magnitudes in blocks 4 .. last."""
    h, w = gray.shape[-2:]
    bank = log_gabor_bank(h, w, gray.dtype, gray.device)
    mag = blocks_region(torch.fft.ifft2(torch.fft.fft2(gray) * bank)).abs()  # (B, 20, ...)
    _, s2, s3, s4 = block_moments(cell_moments(mag, 4), BLOCK // STRIDE)
    n = BLOCK * BLOCK
    std = (s2 / (n - 1)).clamp_min(GABOR_VAR_FLOOR).sqrt()
    var = (s2 / n).clamp_min(GABOR_VAR_FLOOR)  # ical_stat.c: skew/kurt use the 1/n variance
    skew = (s3 / n) / (var * var.sqrt())
    kurt = (s4 / n) / (var * var)
    return std, skew, kurt


def appearance_distortion(ref_gray: torch.Tensor, dst_gray: torch.Tensor,
                          reference: tuple | None = None) -> torch.Tensor:
    """``d_appear = RMS(sum_{s,o} w_s (|d std| + 2 |d skew| + |d kurt|))`` on the crop, ``(N,)``.

    ``reference``: :func:`gabor_statistics` of ``ref_gray`` when already computed.
    """
    h, w = dst_gray.shape[-2:]
    if reference is None:
        n = ref_gray.shape[0]
        both = gabor_statistics(torch.cat([ref_gray, dst_gray]))
        reference, dst = tuple(t[:n] for t in both), tuple(t[n:] for t in both)
    else:
        dst = gabor_statistics(dst_gray)
    (std_r, skew_r, kurt_r), (std_d, skew_d, kurt_d) = reference, dst
    eta = ((std_r - std_d).abs() + 2 * (skew_r - skew_d).abs()
           + (kurt_r - kurt_d).abs())  # (N, 20, nb_h, nb_w)
    weights = torch.tensor(SCALE_WEIGHTS, dtype=eta.dtype, device=eta.device) / sum(SCALE_WEIGHTS)
    weights = weights.repeat_interleave(GABOR_ORIENTATIONS)  # scale-major bank order
    eta = (eta * weights[:, None, None]).sum(1, keepdim=True)
    return _rms(tiles_cropped(eta, h, w))


def combine(d_detect: torch.Tensor, d_appear: torch.Tensor) -> torch.Tensor:
    """``MAD = d_detect^alpha d_appear^(1 - alpha)``, ``alpha = 1 / (1 + beta1 d_detect^beta2)``.

    Computed as ``exp(alpha ln d_detect + (1 - alpha) ln d_appear)`` where both are positive and
    0 otherwise (the limit, since ``0 < alpha < 1``), with the logs of zero kept out of the graph.
    """
    alpha = 1.0 / (1.0 + BETA1 * d_detect.clamp_min(DETECT_FLOOR) ** BETA2)
    positive = (d_detect > 0) & (d_appear > 0)
    log_hi = torch.log(torch.where(positive, d_detect, 1.0))
    log_lo = torch.log(torch.where(positive, d_appear, 1.0))
    return torch.where(positive, torch.exp(alpha * log_hi + (1 - alpha) * log_lo), 0.0)


def to_gray255(img: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """MATLAB ``rgb2gray`` on [0, 1] RGB, as [0, 255]; rounded to 8 bits when ``quantize``."""
    return (rgb_to_gray_8bit(img) if quantize else rgb_to_gray(img)) * 255.0


def mad_components(x: torch.Tensor, ref: torch.Tensor, quantize: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(MAD, d_detect, d_appear)`` per image, each ``(N,)``; see the module docstring."""
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"MAD needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {w}x{h}")
    x_gray, ref_gray = to_gray255(x, quantize), to_gray255(ref, quantize)
    hi = detection_distortion(ref_gray, x_gray)
    lo = appearance_distortion(ref_gray, x_gray)
    return combine(hi, lo), hi, lo


def prepare_mad_reference(ref: torch.Tensor, quantize: bool = True) -> dict:
    """Everything :func:`mad_components` computes from the reference alone (grey image,
    detection-stage masking, Gabor statistics): done once when one reference is scored against
    many images (``MAD.reference_scorer``, the recovery test)."""
    ref_gray = to_gray255(ref, quantize)
    return {"gray": ref_gray, "visibility": reference_visibility(ref_gray),
            "gabor": gabor_statistics(ref_gray)}


def mad_components_prepared(x: torch.Tensor, reference: dict, quantize: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`mad_components` against a :func:`prepare_mad_reference` result (whose batch of 1
    broadcasts over ``x``)."""
    x_gray = to_gray255(x, quantize)
    hi = detection_distortion(reference["gray"], x_gray, reference["visibility"])
    lo = appearance_distortion(reference["gray"], x_gray, reference["gabor"])
    return combine(hi, lo), hi, lo


def mad(x: torch.Tensor, ref: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """MAD per image ``(N,)`` of RGB or grey ``NCHW`` images in [0, 1] (distorted, reference).

    ``quantize=True`` rounds the grey image to 8 bits as the official code sees a ``uint8``
    image (straight-through gradient); ``quantize=False`` keeps the continuous grey value.
    """
    return mad_components(x, ref, quantize)[0]


class MAD(FRMetric):
    """Most Apparent Distortion (Larson & Chandler 2010, official ``MAD_index.m``)."""

    def __init__(self, info=None, quantize: bool = True):
        super().__init__(info)
        self.quantize = quantize

    def compute(self, x, ref):
        return mad(x, ref, quantize=self.quantize)

    # One reference, many distortions: the reference's CSF filtering, masking thresholds and
    # 20 log-Gabor statistics are computed once (about half of the work per pair).
    def prepare_reference(self, ref):
        return prepare_mad_reference(ref, self.quantize)

    def compute_prepared(self, x, prepared):
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"MAD needs images of at least {MIN_SIZE}x{MIN_SIZE}, "
                             f"got {x.shape[-1]}x{x.shape[-2]}")
        return mad_components_prepared(x, prepared, self.quantize)[0]
