"""Gradient spectrum: which spatial frequencies a loss pushes at a restored image.

For a loss ``L(x) = metric.loss(x, ref)`` and an image ``x`` (typically a restoration of ``ref``),
the gradient ``g = dL/dx`` is what a training step moves the image by. Its power spectrum
``P(f) = sum_c |FFT2(g_c)(f)|^2`` (summed over the RGB channels, no window, so that by Parseval
the band energies add up to ``||g||^2`` exactly) is averaged over rings of equal radial frequency
``|f| = sqrt(fx^2 + fy^2)`` in cycles per pixel, and divided by its mean over all frequencies:
a gradient that is white noise gives 1 at every frequency (MSE at ``x = ref + white noise``),
values above 1 mark the frequencies the loss pushes harder than white.

The octave bands are ``[0.25, 0.5 sqrt 2]`` (the corners of the spectrum belong to the finest
band), ``[0.125, 0.25)``, ``[0.0625, 0.125)``, ...; the last band also holds the DC term. Their
shares of gradient energy sum to 1; a white gradient gives each band its share of the frequency
plane (:func:`band_areas`): ``1 - pi / 16 = 0.80`` for the finest band, ``3 pi / 64 = 0.15`` for the
next, and so on down by 4 per octave. Natural images have most of their energy at low
frequencies; a loss that pushes mostly in the finest band sharpens or adds texture, one that pushes
at low frequencies corrects brightness and large shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optiqa.core.errors import InputError
from optiqa.metrics import create_metric


def radial_frequency(h: int, w: int) -> torch.Tensor:
    """``|f|`` in cycles per pixel of every coefficient of a ``h x w`` FFT, float64 ``(h, w)``."""
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    return torch.sqrt(fy * fy + fx * fx)


def power_spectrum(g: torch.Tensor) -> torch.Tensor:
    """``sum over channels of |FFT2(g)|^2 / (H W)`` of one image ``(C, H, W)`` (float64), so that
    ``power_spectrum(g).sum() == (g ** 2).sum()`` (Parseval)."""
    if g.ndim != 3:
        raise InputError(f"power_spectrum takes one (C, H, W) image, got {tuple(g.shape)}")
    spec = torch.fft.fft2(g.detach().double())
    return (spec.real ** 2 + spec.imag ** 2).sum(0) / (g.shape[-2] * g.shape[-1])


def radial_average(power: torch.Tensor, n_bins: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``power`` over rings of radial frequency of width ``1 / min(H, W)`` up to 0.5
    (the corners beyond 0.5 are left out: their rings are incomplete). Returns
    ``(ring centre frequencies, mean power per ring)``, the DC term as its own ring at 0."""
    h, w = power.shape
    radius = radial_frequency(h, w)
    step = 1.0 / min(h, w)
    n_bins = n_bins or int(round(0.5 / step))
    index = torch.round(radius / step).long()  # ring k holds |f| in [(k - 1/2) step, (k + 1/2))
    keep = index <= n_bins
    sums = torch.zeros(n_bins + 1, dtype=torch.float64).index_add_(0, index[keep], power[keep])
    counts = torch.zeros(n_bins + 1, dtype=torch.float64).index_add_(
        0, index[keep], torch.ones_like(power[keep]))
    freqs = torch.arange(n_bins + 1, dtype=torch.float64) * step
    return freqs, sums / counts.clamp_min(1)


def octave_bands(h: int, w: int, n_bands: int = 5) -> list[tuple[float, float]]:
    """``[(lo, hi), ...]`` from the finest band ``[0.25, inf)`` down; the last starts at 0."""
    edges = [0.5 / 2 ** k for k in range(1, n_bands)]  # 0.25, 0.125, ...
    bands = [(edges[0], float("inf"))]
    bands += [(edges[k + 1], edges[k]) for k in range(len(edges) - 1)]
    bands.append((0.0, edges[-1]))
    return bands


def band_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if hi != float("inf") else f">= {lo:g}"


def band_energies(power: torch.Tensor, bands) -> torch.Tensor:
    """Sum of ``power`` over each band's frequencies ``lo <= |f| < hi`` (float64)."""
    radius = radial_frequency(*power.shape)
    return torch.stack([power[(radius >= lo) & (radius < hi)].sum() for lo, hi in bands])


def band_areas(h: int, w: int, n_bands: int = 5) -> torch.Tensor:
    """Each band's share of the ``h x w`` frequency plane: the share of energy a white gradient
    puts there."""
    return band_energies(torch.ones(h, w, dtype=torch.float64), octave_bands(h, w, n_bands)) / (h * w)


@dataclass
class GradientSpectrum:
    """One metric's loss gradient spectrum at one image."""

    metric: str
    frequencies: np.ndarray      # ring centres, cycles / pixel
    relative_power: np.ndarray   # ring mean power / mean power over all frequencies
    band_labels: list[str]
    band_shares: np.ndarray      # share of gradient energy per octave band (sums to 1)
    white_shares: np.ndarray     # the shares a white gradient would have
    gradient_norm: float         # ||dL/dx||_2

    def as_row(self) -> dict:
        row = {"metric": self.metric, "gradient_norm": self.gradient_norm}
        for label, share, white in zip(self.band_labels, self.band_shares, self.white_shares):
            row[f"share {label}"] = float(share)
            row[f"white {label}"] = float(white)
        return row


def loss_gradient(metric, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``d metric.loss(x, ref) / dx`` for one image pair ``(1, 3, H, W)``; ``(3, H, W)``."""
    x = x.detach().clone().requires_grad_(True)
    loss = metric.loss(x, ref)
    (g,) = torch.autograd.grad(loss, x)
    if not torch.isfinite(g).all():
        raise InputError(f"{metric.info.name}: the loss gradient at this image is not finite")
    return g[0]


def gradient_spectrum(metric, x: torch.Tensor, ref: torch.Tensor, n_bands: int = 5
                      ) -> GradientSpectrum:
    """The :class:`GradientSpectrum` of ``metric`` (a name or a metric module) at ``x``."""
    if isinstance(metric, str):
        metric = create_metric(metric, device=x.device)
    x, ref = _pair(x, ref)
    g = loss_gradient(metric, x, ref)
    power = power_spectrum(g)
    total = power.sum()
    if total <= 0:
        raise InputError(f"{metric.info.name}: the loss gradient at this image is zero (the "
                         "image is a stationary point of the loss)")
    freqs, ring = radial_average(power)
    h, w = power.shape
    bands = octave_bands(h, w, n_bands)
    shares = band_energies(power, bands) / total
    return GradientSpectrum(
        metric=metric.info.name, frequencies=freqs.numpy(),
        relative_power=(ring / (total / (h * w))).numpy(),
        band_labels=[band_label(lo, hi) for lo, hi in bands], band_shares=shares.numpy(),
        white_shares=band_areas(h, w, n_bands).numpy(), gradient_norm=float(total.sqrt()))


def _pair(x: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x[None] if x.ndim == 3 else x
    ref = ref[None] if ref.ndim == 3 else ref
    if x.shape[0] != 1 or x.shape != ref.shape:
        raise InputError(f"one image and its reference of the same shape are needed, got "
                         f"{tuple(x.shape)} and {tuple(ref.shape)}")
    return x.float(), ref.float()
