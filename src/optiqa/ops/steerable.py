"""Complex steerable pyramid in the Fourier domain (Portilla & Simoncelli 2000), as in
matlabPyrTools' ``buildSCFpyr.m``, differentiable through ``torch.fft``.

The pyramid splits the image spectrum with masks that are products of

* a radial raised-cosine in log2-frequency: at level ``k`` (1-based) the high-pass part is
  ``hi_k(r) = cos(pi/2 * clamp(log2 r + k, -1, 0))`` and the low-pass part
  ``lo_k(r) = |sin(pi/2 * clamp(log2 r + k, -1, 0))|`` (``k = 0`` gives the initial ``hi0/lo0``
  split); ``r`` is the frequency radius normalised so that Nyquist is 1;
* an angular mask per orientation ``b = 0..K-1``:
  ``a_b(theta) = 2 sqrt(c) max(cos(theta - pi b / K), 0)^(K-1)`` with
  ``c = 2^(2(K-1)) ((K-1)!)^2 / (K (2(K-1))!)``; it keeps one half-plane only, so each band is
  complex (an analytic signal whose magnitude is a local amplitude and whose angle a local phase).

After each level the low-pass spectrum is cropped to its central ``ceil(d / 2)`` frequencies,
which halves the band size (``buildSCFpyrLevs``). The masks are evaluated analytically instead of
through ``pointOp``'s 1024-entry look-up tables; the two agree to ~1e-5.
"""
from __future__ import annotations

import math

import torch

from optiqa.ops.cache import tensor_cache


def _centre(d: int) -> int:
    """0-based DC position after ``fftshift`` (MATLAB: ``ceil((d + 0.5) / 2)``, 1-based)."""
    return d // 2


@tensor_cache(maxsize=32)
def _polar_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``log2`` radius and angle of the fftshift-ed frequency grid, in float64 on the CPU.

    Frequencies are normalised by half the size per axis (Nyquist = 1); the DC radius is copied
    from its left neighbour so that ``log2`` stays finite, as ``buildSCFpyr`` does.
    """
    x = (torch.arange(w, dtype=torch.float64) - _centre(w)) / (w / 2)
    y = (torch.arange(h, dtype=torch.float64) - _centre(h)) / (h / 2)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    angle = torch.atan2(yy, xx)
    rad = torch.sqrt(xx ** 2 + yy ** 2)
    if w > 1:
        rad[_centre(h), _centre(w)] = rad[_centre(h), _centre(w) - 1]
    return torch.log2(rad), angle


def _radial(log_rad: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High- and low-pass raised cosines, transition band ``log2 r in [-shift-1, -shift]``."""
    t = (log_rad + shift).clamp(-1.0, 0.0) * (math.pi / 2)
    return torch.cos(t), torch.sin(t).abs()


def _angular(angle: torch.Tensor, n_orient: int) -> torch.Tensor:
    """The ``K`` one-sided angular masks ``(K, h, w)`` of ``buildSCFpyrLevs``."""
    order = n_orient - 1
    const = (2.0 ** (2 * order)) * math.factorial(order) ** 2 / (
        n_orient * math.factorial(2 * order))
    offsets = torch.arange(n_orient, dtype=angle.dtype) * (math.pi / n_orient)
    cos = torch.cos(angle[None] - offsets[:, None, None]).clamp_min(0.0)
    return 2.0 * math.sqrt(const) * cos ** order


def level_sizes(h: int, w: int, height: int) -> list[tuple[int, int]]:
    """Band sizes of levels ``1..height``: each level keeps ``ceil(d / 2)`` of the previous."""
    sizes = [(h, w)]
    for _ in range(height - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    return sizes


def max_height(h: int, w: int) -> int:
    """Deepest pyramid ``buildSCFpyr`` allows: ``floor(log2(min(h, w))) - 2``."""
    return int(math.floor(math.log2(min(h, w)))) - 2


@tensor_cache(maxsize=32)
def _level_masks(h: int, w: int, level: int, n_orient: int) -> tuple[torch.Tensor, tuple]:
    """Full spectral masks of the oriented bands at ``level``, cropped to that level's size.

    The mask is ``lo0 * lo_1 * ... * lo_{level-1} * hi_level * a_b``: the product of every mask the
    recursive construction applies on the way down, each evaluated on the (nested-cropped) grid.
    Returns ``(masks (K, h_l, w_l) float64, (top, left))`` with the crop offset in the full grid.
    """
    log_rad, angle = _polar_grid(h, w)
    radial = _radial(log_rad, 0)[1]  # lo0
    top = left = 0
    dh, dw = h, w
    for k in range(1, level):
        radial = radial * _radial(log_rad, k)[1]
        # crop the central ceil(d/2) frequencies, keeping DC at the centre (buildSCFpyrLevs)
        nh, nw = (dh + 1) // 2, (dw + 1) // 2
        st_h, st_w = _centre(dh) - _centre(nh), _centre(dw) - _centre(nw)
        top, left = top + st_h, left + st_w
        log_rad = log_rad[st_h:st_h + nh, st_w:st_w + nw]
        angle = angle[st_h:st_h + nh, st_w:st_w + nw]
        radial = radial[st_h:st_h + nh, st_w:st_w + nw]
        dh, dw = nh, nw
    radial = radial * _radial(log_rad, level)[0]
    return radial[None] * _angular(angle, n_orient), (top, left)


def oriented_bands(img: torch.Tensor, level: int, n_orient: int) -> torch.Tensor:
    """Complex oriented bands of the steerable pyramid at one ``level`` (1 = finest).

    ``img`` is ``(..., H, W)`` real; returns ``(..., K, h_l, w_l)`` complex with
    ``h_l = ceil(H / 2^(level-1))`` (nested). Bands are expressed in the units of the image: the
    value equals what an uncropped (full-resolution) band would have at the kept positions.
    ``buildSCFpyr``'s bands differ by the global factor ``(-i)^(K-1) * H W / (h_l w_l)``, which
    every magnitude-ratio index (CW-SSIM) cancels.
    """
    h, w = img.shape[-2:]
    if level < 1 or level > max_height(h, w):
        raise ValueError(f"a {w}x{h} image allows pyramid levels 1..{max_height(h, w)} "
                         f"(buildSCFpyr), got level {level}")
    real_dtype = img.dtype if img.dtype == torch.float64 else torch.float32
    masks, (top, left) = _level_masks(h, w, level, n_orient)
    masks = masks.to(device=img.device, dtype=real_dtype)
    hl, wl = masks.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fft2(img.to(real_dtype)), dim=(-2, -1))
    spec = spec[..., top:top + hl, left:left + wl]
    band_spec = spec.unsqueeze(-3) * masks
    bands = torch.fft.ifft2(torch.fft.ifftshift(band_spec, dim=(-2, -1)), norm="forward")
    return bands / (h * w)
