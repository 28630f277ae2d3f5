"""Blur kernels as pure tensor functions, and per-image filtering with them.

Kernel families of Real-ESRGAN (Wang, Xie, Dong & Shan, "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data", ICCVW 2021, Sec. 3.1), on a ``size x size`` grid of
integer offsets ``(x, y)`` from the centre (``x`` along columns, ``y`` along rows), with the
covariance ``Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T`` and
``q = [x, y] Sigma^-1 [x, y]^T``:

- Gaussian:              ``k ~ exp(-q / 2)``  (isotropic: ``sigma_y = sigma_x``, ``theta = 0``)
- generalized Gaussian:  ``k ~ exp(-q^beta / 2)``  (``beta = 1``: Gaussian)
- plateau:               ``k ~ 1 / (1 + q^beta)``
- 2-D sinc (ideal circular low-pass, cut-off ``omega`` in radians per pixel):
  ``k ~ omega J1(omega r) / (2 pi r)``, ``k(0) = omega^2 / (4 pi)``  (``r = |(x, y)|``)

Every kernel is normalised to sum 1. :func:`rasterize_trajectory` turns a continuous path (a
camera-shake trajectory) into a PSF by bilinear splatting of its samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kernel_grid(size: int, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` offsets from the centre of a ``size x size`` kernel (``size`` odd)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    return x, y


def quadratic_form(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                   dtype=torch.float64, device=None) -> torch.Tensor:
    """``q = [x, y] Sigma^-1 [x, y]^T`` on the kernel grid (see the module docstring)."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    x, y = kernel_grid(size, dtype, device)
    c, s = math.cos(theta), math.sin(theta)
    # rotate the offsets into the kernel's principal axes: Sigma^-1 = R diag(1/sx^2, 1/sy^2) R^T
    u = c * x + s * y
    v = -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(k: torch.Tensor) -> torch.Tensor:
    return k / k.sum()


def gaussian_kernel2d(size: int, sigma_x: float, sigma_y: float | None = None,
                      theta: float = 0.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """Bivariate Gaussian ``exp(-q / 2)``, normalised (anisotropic when ``sigma_y`` is given)."""
    q = quadratic_form(size, sigma_x, sigma_y, theta, device=device)
    return _normalised(torch.exp(-0.5 * q)).to(dtype)


def generalized_gaussian_kernel2d(size: int, sigma_x: float, sigma_y: float | None, theta: float,
                                  beta: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Generalized Gaussian ``exp(-q^beta / 2)``, normalised (Real-ESRGAN Eq. 2)."""
    q = quadratic_form(size, sigma_x, sigma_y, theta, device=device)
    return _normalised(torch.exp(-0.5 * q.pow(beta))).to(dtype)


def plateau_kernel2d(size: int, sigma_x: float, sigma_y: float | None, theta: float, beta: float,
                     dtype=torch.float32, device=None) -> torch.Tensor:
    """Plateau-shaped ``1 / (1 + q^beta)``, normalised (Real-ESRGAN Eq. 3)."""
    q = quadratic_form(size, sigma_x, sigma_y, theta, device=device)
    return _normalised(1.0 / (1.0 + q.pow(beta))).to(dtype)


def sinc_kernel2d(size: int, cutoff: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Circular low-pass (2-D sinc) with cut-off ``cutoff`` rad/pixel, normalised (Real-ESRGAN
    Eq. 4): ``cutoff * J1(cutoff * r) / (2 pi r)``, with its limit ``cutoff^2 / (4 pi)`` at 0."""
    x, y = kernel_grid(size, device=device)
    r = torch.sqrt(x ** 2 + y ** 2)
    centre = torch.full_like(r, cutoff ** 2 / (4 * math.pi))
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    k = torch.where(r > 0, cutoff * torch.special.bessel_j1(cutoff * safe_r) / (2 * math.pi * safe_r),
                    centre)
    return _normalised(k).to(dtype)


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a centred odd ``(k, k)`` kernel to ``(size, size)``."""
    k = kernel.shape[-1]
    if size < k or (size - k) % 2:
        raise ValueError(f"cannot pad a {k}x{k} kernel to {size}x{size}")
    p = (size - k) // 2
    return F.pad(kernel, (p, p, p, p))


def rasterize_trajectory(points: torch.Tensor, size: int | None = None,
                         dtype=torch.float32) -> torch.Tensor:
    """PSF of a continuous path: each of the ``T`` samples ``(x, y)`` of ``points`` ``(T, 2)``
    puts weight ``1/T`` on its four neighbouring pixels by bilinear interpolation (the
    triangle-function sampling of Boracchi & Foi 2012).

    The path is first shifted so that its centroid lies on the kernel centre: bilinear splatting
    keeps first moments, so the PSF's centroid is exactly the centre and the blur does not
    translate the image. ``size`` (odd) defaults to the smallest that holds the path.
    """
    p = points.to(torch.float64)
    p = p - p.mean(0)
    reach = float(p.abs().max())
    need = 2 * (math.floor(reach) + 1) + 1
    size = need if size is None else size
    if size < need or size % 2 == 0:
        raise ValueError(f"a path reaching {reach:.2f} px from its centroid needs an odd kernel "
                         f"of at least {need}x{need}, got {size}")
    p = p + (size - 1) / 2
    base = torch.floor(p)
    frac = p - base
    base = base.long()
    k = torch.zeros(size * size, dtype=torch.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            w = (frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
            idx = (base[:, 1] + dy) * size + (base[:, 0] + dx)
            k.index_add_(0, idx, w)
    return (k / len(p)).view(size, size).to(dtype)


def blur(x: torch.Tensor, kernels: torch.Tensor, convolve: bool = False) -> torch.Tensor:
    """Filter image ``i`` of ``x`` ``(N, C, H, W)`` with ``kernels[i]`` (``(N, k, k)``; one
    ``(k, k)`` kernel for all), every channel alike, reflect-padded to keep the size
    (replicate-padded where the image is not larger than the kernel radius).

    Correlation, as ``cv2.filter2D`` and BasicSR's ``filter2D``; ``convolve=True`` flips the
    kernel (a PSF is applied by convolution; the symmetric kernels of Real-ESRGAN give the same
    either way).
    """
    n, c, h, w = x.shape
    if kernels.ndim == 2:
        kernels = kernels.expand(n, *kernels.shape)
    k = kernels.shape[-1]
    if convolve:
        kernels = kernels.flip(-1, -2)
    r = k // 2
    mode = "reflect" if min(h, w) > r else "replicate"
    padded = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode=mode)
    weight = kernels.to(x)[:, None].expand(n, c, k, k).reshape(n * c, 1, k, k)
    return F.conv2d(padded, weight, groups=n * c).view(n, c, h, w)
