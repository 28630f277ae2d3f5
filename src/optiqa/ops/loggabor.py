"""Pieces shared by the log-Gabor metrics FSIM and VSI (Lin Zhang's MATLAB code).

* :func:`downsample_factor` / :func:`average_downsample`: the ``F = max(1, round(min(H, W) / 256))``
  averaging and subsampling step both official codes start with.
* :func:`scharr_magnitude`: the gradient magnitude of FeatureSIM.m / VSI.m.
* :func:`frequency_grid`, :func:`log_gabor_radial`: the frequency plane of Kovesi's ``phasecong2``
  (normalised to +-0.5, quadrant-shifted so DC is at [0, 0]) and the log-Gabor radial transfer
  function ``exp(-log(r / f0)^2 / (2 sigma^2))`` built on it.
* :func:`phase_congruency_filters`: the 4-scale x 4-orientation bank of FeatureSIM.m's
  ``phasecong2``; :func:`phase_congruency_bank` caches it per (size, dtype, device) as one batch
  for a single batched inverse FFT, with its noise-model constants.

Filter banks are computed in float64 and cast afterwards so that cached constants do not depend on
the dtype in which a metric happens to run first.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from optiqa.ops.cache import tensor_cache
from optiqa.ops.filters import conv_depthwise
from optiqa.ops.rounding import matlab_downsample_factor


# ``F = max(1, round(min(H, W) / 256))`` of FeatureSIM.m and VSI.m (MATLAB's round)
downsample_factor = matlab_downsample_factor


def average_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """MATLAB ``aveX = conv2(X, fspecial('average', F), 'same'); X = aveX(1:F:end, 1:F:end)``.

    ``conv2(..., 'same')`` zero-pads ``(F - 1) // 2`` before and ``F // 2`` after, so the kept
    samples are means of ``F x F`` blocks starting at ``-(F - 1) // 2``; the output has
    ``ceil(H / F) x ceil(W / F)`` pixels. For even sizes and ``F = 2`` this is exactly
    ``avg_pool2d(x, 2)``.
    """
    if factor == 1:
        return x
    lo, hi = (factor - 1) // 2, factor // 2
    x = F.pad(x, (lo, hi, lo, hi))
    return F.avg_pool2d(x, factor, stride=factor)


@tensor_cache(maxsize=8)
def _scharr_kernels(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    dx = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]]) / 16.0
    return torch.stack([dx, dx.t()]).to(dtype=dtype, device=device)


def scharr_magnitude(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``sqrt(conv2(X, dx, 'same')^2 + conv2(X, dy, 'same')^2)`` with the official Scharr pair.

    ``dx = [3 0 -3; 10 0 -10; 3 0 -3] / 16``, ``dy = dx'``, zero padding (``conv2 'same'``).
    ``conv2`` flips the kernel, which only flips the sign of each derivative, not the magnitude.
    ``x`` is ``(N, 1, H, W)``. ``eps`` inside the square root keeps the gradient finite on flat
    regions (the magnitude there changes by at most ``sqrt(eps) = 1e-6`` on a 0-255 scale).
    The depthwise form of :func:`~optiqa.ops.filters.conv_depthwise` is used because a plain
    ``conv2d`` of a 1-channel batch is several times slower on CPU (in its backward pass).
    """
    g = conv_depthwise(F.pad(x, (1, 1, 1, 1)), _scharr_kernels(x.dtype, x.device))
    return (g.square().sum(1, keepdim=True) + eps).sqrt()


def _centred_range(n: int) -> torch.Tensor:
    # phasecong2 / VSI logGabor: [-(n-1)/2 .. (n-1)/2] / (n-1) if n is odd, [-n/2 .. n/2-1] / n if
    # n is even: normalised frequency in cycles per pixel, +-0.5 at the extremes.
    if n % 2:
        return torch.arange(-(n - 1) / 2, (n - 1) / 2 + 1, dtype=torch.float64) / max(n - 1, 1)
    return torch.arange(-n / 2, n / 2, dtype=torch.float64) / n


def frequency_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u, v)`` frequency coordinates in FFT order (``ifftshift`` of the centred grid), float64.

    ``u`` varies along columns (x), ``v`` along rows (y), both in cycles per pixel.
    """
    v, u = torch.meshgrid(_centred_range(h), _centred_range(w), indexing="ij")
    shift = (-(h // 2), -(w // 2))
    return torch.roll(u, shift, (0, 1)), torch.roll(v, shift, (0, 1))


def log_gabor_radial(radius: torch.Tensor, f0: float, log_sigma: float) -> torch.Tensor:
    """Log-Gabor radial transfer ``exp(-log(r / f0)^2 / (2 log_sigma^2))``, zero at DC.

    ``radius`` is in FFT order (DC at ``[0, 0]``); the official codes set ``radius(1,1) = 1`` before
    the log and the response back to 0 afterwards, which is what this does. Radii that are exactly 0
    elsewhere (VSI masks frequencies beyond 0.5 that way) give ``exp(-inf) = 0``.
    """
    r = radius.clone()
    r[0, 0] = 1.0
    with torch.no_grad():
        g = torch.exp(-torch.log(r / f0) ** 2 / (2.0 * log_sigma ** 2))
    g[0, 0] = 0.0
    return g


def phase_congruency_filters(h: int, w: int, scales: int = 4, orientations: int = 4,
                             min_wavelength: float = 6.0, mult: float = 2.0,
                             sigma_on_f: float = 0.55, d_theta_on_sigma: float = 1.2
                             ) -> torch.Tensor:
    """The log-Gabor bank of ``phasecong2`` (FeatureSIM.m), float64, ``(orient., scales, H, W)``.

    Transfer functions in FFT order (DC at ``[0, 0]``)::

        G_so(r, theta) = exp(-log(r / f_s)^2 / (2 log(0.55)^2)) * lowpass(r) * spread_o(theta)
        f_s = 1 / (6 * 2^s),  lowpass(r) = 1 / (1 + (r / 0.45)^30),
        spread_o = exp(-dtheta_o^2 / (2 thetaSigma^2)),  thetaSigma = pi / orientations / 1.2

    with ``dtheta_o`` the wrapped angular distance from ``o * pi / orientations`` (Kovesi 1999).
    """
    u, v = frequency_grid(h, w)
    radius = torch.sqrt(u ** 2 + v ** 2)
    theta = torch.atan2(-v, u)  # -v: anticlockwise angles, as in phasecong2
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)  # lowpassfilter([rows cols], .45, 15)
    radial = torch.stack([log_gabor_radial(radius, 1.0 / (min_wavelength * mult ** s),
                                           math.log(sigma_on_f)) * lowpass
                          for s in range(scales)])
    theta_sigma = math.pi / orientations / d_theta_on_sigma
    angles = torch.arange(orientations, dtype=torch.float64)[:, None, None] * math.pi / orientations
    # atan2 of the sine and cosine differences wraps the angular distance into [-pi, pi].
    sin_t, cos_t, sin_a, cos_a = theta.sin(), theta.cos(), angles.sin(), angles.cos()
    d_theta = torch.atan2(sin_t * cos_a - cos_t * sin_a, cos_t * cos_a + sin_t * sin_a)
    spread = torch.exp(-d_theta ** 2 / (2.0 * theta_sigma ** 2))
    return spread[:, None] * radial[None]


@tensor_cache(maxsize=8)
def phase_congruency_bank(h: int, w: int, dtype: torch.dtype = torch.float32,
                          device: torch.device | str = "cpu", scales: int = 4,
                          orientations: int = 4, k: float = 2.0
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`phase_congruency_filters` as one batch, and the noise constants of ``phasecong2``.

    Returns ``(bank, threshold_gain)``, cached per (size, dtype, device):

    * ``bank``: ``(orientations * scales, H, W)`` (orientation-major), stored as complex so that
      ``fft2(Y) * bank`` does not convert it on every call. (Splitting each filter into even and
      odd parts would give the real and imaginary responses from half-plane ``irfft2`` calls, but
      torch's CPU ``irfft2`` is about 3x slower than the ``ifft2`` it would replace.)
    * ``threshold_gain``: ``(orientations,)`` such that the official noise threshold is
      ``T_o = threshold_gain[o] * sqrt(median |EO_{s=1,o}|^2)``. Unrolled from the official code:
      ``noisePower = median / ln 2 / EM_n`` (``EM_n = sum G_{1,o}^2``), ``EstNoiseEnergy2 =
      noisePower * (2 sum An^2 + 4 sum AiAj)`` over the spatial filters
      ``A = real(ifft2(G)) * sqrt(H W)``, ``tau = sqrt(EstNoiseEnergy2 / 2)`` and
      ``T = (tau sqrt(pi/2) + k tau sqrt(2 - pi/2)) / 1.7``.

    Built in float64 and cast afterwards, so the cached constants do not depend on the dtype in
    which a metric happens to run first.
    """
    filters = phase_congruency_filters(h, w, scales, orientations)  # (O, S, H, W)
    spatial = torch.fft.ifft2(filters).real * math.sqrt(h * w)
    sum_an2 = spatial.square().sum((1, 2, 3))
    total = spatial.sum(1)
    sum_ai_aj = (total.square().sum((1, 2)) - sum_an2) / 2.0  # sum over s_i < s_j of Ai * Aj
    em_n = filters[:, 0].square().sum((1, 2))
    noise_energy2_per_median = (2.0 * sum_an2 + 4.0 * sum_ai_aj) / (math.log(2.0) * em_n)
    tau_per_sqrt_median = torch.sqrt(noise_energy2_per_median / 2.0)
    gain = tau_per_sqrt_median * (math.sqrt(math.pi / 2) + k * math.sqrt(2 - math.pi / 2)) / 1.7
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    bank = filters.reshape(orientations * scales, h, w).to(dtype=complex_dtype, device=device)
    return bank, gain.to(dtype=dtype, device=device)
