"""FSIM / FSIMc: feature similarity from phase congruency and gradient magnitude.

Zhang, Zhang, Mou & Zhang, "FSIM: a feature similarity index for image quality assessment",
IEEE TIP 20(8), 2011, as computed by the official ``FeatureSIM.m`` (FSIMc output); phase
congruency is its ``phasecong2`` (Kovesi). Values match FeatureSIM.m to its printed precision.
Departures, none of which changes a value on a real image:

* flat images: the official code divides 0 by 0; here PC is 0 there and FSIM of two flat images
  is 1 (small guards ``AMPLITUDE_EPS``, ``TINY``);
* gradients: the noise threshold ``T_o`` is treated as a constant (see :func:`phase_congruency`),
  and the slope of a norm at an exactly zero vector is taken as 0.
"""
from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from optiqa.ops.color import rgb_to_yiq
from optiqa.metrics.base import FRMetric
from optiqa.ops.loggabor import (average_downsample, downsample_factor,
                                     phase_congruency_bank, scharr_magnitude)

# FeatureSIM.m constants, for images on a 0-255 scale.
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
# phasecong2's epsilon, added to the local energy before normalising the mean phase vector.
ENERGY_EPS = 1e-4
# Not in the official code, which divides 0 by 0 on flat images: keeps PC = 0 (and the gradient
# finite) where no filter responds. The amplitude sum of a textured region is orders larger.
AMPLITUDE_EPS = 1e-6
# Guards |S_I S_Q|^lambda (lambda < 1 has an infinite slope at 0) and the final weighted mean.
TINY = 1e-12
# Largest block of complex filter responses processed at once (see phase_congruency).
BLOCK_BYTES = 16 * 2 ** 20


def _median(v: torch.Tensor) -> torch.Tensor:
    """MATLAB ``median`` over the last dimension: the mean of the two middle values for even n.

    ``torch.median`` returns the lower one; the upper one is the smallest value above it, unless
    the lower value fills position ``n / 2 + 1`` as well (ties). Faster than two ``kthvalue``s.
    """
    n = v.shape[-1]
    lower = v.median(-1).values
    if n % 2:
        return lower
    above = torch.where(v > lower[..., None], v, torch.inf).amin(-1)
    tied = (v <= lower[..., None]).sum(-1) > n // 2
    return 0.5 * (lower + torch.where(tied, lower, above))


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0: a norm's slope at the zero vector is taken as 0."""
    return torch.where(den > 0, num / den, 0.0)


class _OrientationEnergy(torch.autograd.Function):
    """The per-orientation sums of ``phasecong2`` from the responses ``EO_s = E_s + i O_s``.

    Forward, for ``eo`` of shape ``(N, orientations, scales, H, W)`` (complex), per orientation::

        A        = sum_s |EO_s|                                amplitude sum
        (SE, SO) = sum_s (E_s, O_s),  R = |(SE, SO)|,  c = 1 / (R + 1e-4)
        (mE, mO) = (SE, SO) c                                 mean phase vector
        Energy   = R^2 c - sum_s |E_s mO - O_s mE|            (= sum_s E mE + O mO - |E mO - O mE|)

    returning ``A`` and ``Energy`` as ``(N, orientations, H, W)`` and, not differentiable,
    ``|EO_1|^2`` as ``(N, orientations, H * W)`` for the noise estimate. Backward applies the
    chain rule above by hand: through autograd the same values take about twice the passes over
    the ``(N, orientations, scales, H, W)`` blocks, which dominate FSIM's cost. The slope of
    ``|.|`` at 0 (flat images, where every response is exactly 0) is taken as 0.
    """

    @staticmethod
    def forward(ctx, eo):
        # Real and imaginary parts as contiguous planes: one copy here is cheaper than running
        # every elementwise op below on strided halves of the complex layout.
        even, odd = torch.view_as_real(eo).permute(5, 0, 1, 2, 3, 4).contiguous().unbind(0)
        amplitude = torch.hypot(even, odd)
        sum_even, sum_odd = even.sum(2, keepdim=True), odd.sum(2, keepdim=True)
        norm = torch.hypot(sum_even, sum_odd)
        scale = 1.0 / (norm + ENERGY_EPS)
        deviation = torch.addcmul(even * (sum_odd * scale), odd, sum_even * scale, value=-1.0)
        energy = norm * norm * scale - deviation.abs().sum(2, keepdim=True)
        e0, o0 = even[:, :, 0], odd[:, :, 0]
        noise_power = torch.addcmul(e0 * e0, o0, o0).flatten(2)
        ctx.mark_non_differentiable(noise_power)
        ctx.save_for_backward(even, odd, amplitude, deviation, sum_even, sum_odd, norm, scale)
        return amplitude.sum(2), energy.squeeze(2), noise_power

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_amplitude_sum, grad_energy, _):
        even, odd, amplitude, deviation, sum_even, sum_odd, norm, scale = ctx.saved_tensors
        grad_amplitude_sum, grad_energy = grad_amplitude_sum[:, :, None], grad_energy[:, :, None]
        # A = sum_s |EO_s|
        per_amplitude = _safe_divide(grad_amplitude_sum, amplitude)
        grad_even, grad_odd = even * per_amplitude, odd * per_amplitude
        # -sum_s |D_s| with D_s = E_s mO - O_s mE
        grad_dev = deviation.sign() * -grad_energy
        grad_even.addcmul_(grad_dev, sum_odd * scale)
        grad_odd.addcmul_(grad_dev, sum_even * scale, value=-1.0)
        grad_mean_odd = (grad_dev * even).sum(2, keepdim=True)
        grad_mean_even = -(grad_dev * odd).sum(2, keepdim=True)
        # (mE, mO) = (SE, SO) c and R^2 c, with c = 1 / (R + eps), R = |(SE, SO)|
        grad_scale = grad_mean_even * sum_even + grad_mean_odd * sum_odd + grad_energy * norm * norm
        grad_norm = grad_energy * 2.0 * norm * scale - grad_scale * scale * scale
        per_norm = _safe_divide(grad_norm, norm)
        grad_even += grad_mean_even * scale + per_norm * sum_even
        grad_odd += grad_mean_odd * scale + per_norm * sum_odd
        return torch.complex(grad_even, grad_odd)


def phase_congruency(lum: torch.Tensor, scales: int = 4, orientations: int = 4) -> torch.Tensor:
    """Phase congruency ``PC_2`` of ``phasecong2`` in FeatureSIM.m, for ``(N, 1, H, W)`` on 0-255.

    Kovesi, "Image features from phase congruency", Videre 1(3), 1999, as FeatureSIM.m computes it.
    For every orientation ``o`` and scale ``s`` the response ``EO_so = E_so + i O_so`` is
    ``ifft2(fft2(Y) G_so)`` with the log-Gabor bank of :func:`phase_congruency_bank`. With the
    mean phase vector ``(mE, mO)_o = sum_s (E, O)_so / (|sum_s EO_so| + 1e-4)``::

        Energy_o = sum_s [E mE + O mO - |E mO - O mE|]_so
        PC = sum_o max(Energy_o - T_o, 0) / sum_{o,s} |EO_so|

    where ``T_o`` is the noise threshold from the median of ``|EO_{1,o}|^2`` (Rayleigh model).
    Returns ``(N, 1, H, W)``.
    """
    n, _, h, w = lum.shape
    bank, gain = phase_congruency_bank(h, w, lum.dtype, lum.device, scales, orientations)
    # Every filter is 0 at DC, so removing the mean changes nothing but keeps the large DC term out
    # of the FFT: a flat image then gives exactly zero responses instead of rounding noise.
    spectrum = torch.fft.fft2(lum - lum.mean((-2, -1), keepdim=True))
    # Orientations in blocks of at most BLOCK_BYTES of complex responses: the orientations only
    # meet in the two sums, and glibc hands allocations over 32 MB straight to mmap, so that the
    # (16, 16, 128, 128) complex block of a training batch would be page-faulted in on every
    # allocation (each op on it measured 3-30x slower per element on CPU).
    block = max(1, min(orientations, BLOCK_BYTES // (n * scales * h * w * spectrum.element_size())))
    energy_all, amplitude_sum = 0.0, 0.0
    for first in range(0, orientations, block):
        last = min(first + block, orientations)
        filters = bank[first * scales:last * scales].view(last - first, scales, h, w)
        eo = torch.fft.ifft2(spectrum[:, :, None] * filters)  # (N, orientations, scales, H, W)
        amplitude, energy, noise_power = _OrientationEnergy.apply(eo)
        # The noise threshold estimates the noise floor (Rayleigh statistics of the finest scale),
        # which phasecong2 subtracts as a constant. Its exact derivative would flow only into the
        # one or two pixels that happen to be the median (a spike, useless for training) and,
        # through sqrt, is infinite on flat images; so it is treated as the constant it estimates.
        threshold = gain[first:last] * _median(noise_power).sqrt()
        above_noise = torch.relu(energy - threshold[..., None, None])
        energy_all = energy_all + above_noise.sum(1, keepdim=True)
        amplitude_sum = amplitude_sum + amplitude.sum(1, keepdim=True)
    return energy_all / (amplitude_sum + AMPLITUDE_EPS)


def _similarity(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    return (2.0 * a * b + c) / (a * a + b * b + c)


def fsim(x: torch.Tensor, ref: torch.Tensor, chromatic: bool = True) -> torch.Tensor:
    """FSIMc (or FSIM with ``chromatic=False``) per image, RGB ``NCHW`` in [0, 1] -> ``(N,)``.

    On YIQ (0-255) averaged and subsampled by ``F = max(1, round(min(H, W) / 256))``::

        S_PC = (2 PC1 PC2 + T1) / (PC1^2 + PC2^2 + T1)       T1 = 0.85
        S_G  = (2 G1 G2 + T2) / (G1^2 + G2^2 + T2)           T2 = 160 (Scharr magnitude of Y)
        S_I, S_Q likewise on I and Q with T3 = T4 = 200
        FSIMc = sum(S_PC S_G Re[(S_I S_Q)^lambda] PCm) / sum(PCm),  PCm = max(PC1, PC2), lambda=0.03

    ``Re[z^lambda] = |z|^lambda cos(lambda pi)`` for negative ``z``, as MATLAB's ``real`` gives.
    """
    return fsim_prepared(x, prepare_fsim_reference(ref), chromatic)


def prepare_fsim_reference(ref: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The reference's share of :func:`fsim`: its downsampled YIQ, phase congruency and Scharr
    gradient magnitude (phase congruency is most of the cost of a pair)."""
    factor = downsample_factor(*ref.shape[-2:])
    yiq_r = average_downsample(rgb_to_yiq(ref * 255.0), factor)
    y_r = yiq_r[:, :1]
    return yiq_r, phase_congruency(y_r), scharr_magnitude(y_r)


def fsim_prepared(x: torch.Tensor, reference: tuple[torch.Tensor, ...], chromatic: bool = True
                  ) -> torch.Tensor:
    """:func:`fsim` against a :func:`prepare_fsim_reference` result (a batch of 1 broadcasts)."""
    yiq_r, pc_r, grad_r = reference
    yiq_x = average_downsample(rgb_to_yiq(x * 255.0), downsample_factor(*x.shape[-2:]))
    y_x = yiq_x[:, :1]
    pc_x = phase_congruency(y_x)
    s_g = _similarity(scharr_magnitude(y_x), grad_r, T2)
    sim = _similarity(pc_x, pc_r, T1) * s_g
    if chromatic:
        z = (_similarity(yiq_x[:, 1:2], yiq_r[:, 1:2], T3)
             * _similarity(yiq_x[:, 2:], yiq_r[:, 2:], T4))
        sim = sim * z.abs().clamp_min(TINY).pow(LAMBDA) * torch.where(
            z < 0, math.cos(LAMBDA * math.pi), 1.0)
    pc_max = torch.maximum(pc_x, pc_r)
    return ((sim * pc_max).sum((1, 2, 3)) + TINY) / (pc_max.sum((1, 2, 3)) + TINY)


class FSIM(FRMetric):
    """FSIMc (Zhang et al. 2011) as a metric module; ``chromatic=False`` gives FSIM on Y only."""

    def __init__(self, info=None, chromatic: bool = True):
        super().__init__(info)
        self.chromatic = chromatic

    def compute(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return fsim(x, ref, chromatic=self.chromatic)

    # One reference, many distortions: the reference's phase congruency is computed once.
    def prepare_reference(self, ref: torch.Tensor):
        return prepare_fsim_reference(ref)

    def compute_prepared(self, x: torch.Tensor, prepared) -> torch.Tensor:
        return fsim_prepared(x, prepared, self.chromatic)
