"""The SSIM family: SSIM, MS-SSIM and CW-SSIM.

Pure functions ``ssim``, ``ms_ssim``, ``cw_ssim`` of ``(x, ref)`` return per-image scores ``(N,)``;
the thin modules ``SSIM``, ``MSSSIM``, ``CWSSIM`` fix the official settings. All are
differentiable with finite gradients (see each function for the one place where that needs care).

Shared conventions:

* ``colour``: ``'gray'`` (MATLAB ``rgb2gray``, what the official MATLAB code scores when handed a
  colour file), ``'y'`` (BT.601 Y of ``rgb2ycbcr``, the SR convention) or ``'rgb'`` (each channel
  on its own, scores averaged over channels, as pytorch_msssim and piq do).
* ``quantize``: round the converted image to 8-bit levels, as ``rgb2gray`` on a ``uint8`` image
  does before the official code turns it into ``double``. The gradient passes straight through.
* ``data_range``: the dynamic range ``L`` of the input values; inputs in [0, 1] use ``L = 1``,
  which gives the same scores as the official ``L = 255`` on 0..255 images.
* ``padding``: ``'valid'`` (the official choice: only windows fully inside the image) or any mode
  of :func:`optiqa.ops.filters.pad` to keep the full size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from optiqa.ops.cache import tensor_cache
from optiqa.ops.color import rgb_to_gray, rgb_to_y, round_to_8bit
from optiqa.ops import filters
from optiqa.metrics.base import FRMetric
from optiqa.ops.rounding import matlab_downsample_factor, matlab_round  # noqa: F401
from optiqa.ops.steerable import oriented_bands

K1, K2 = 0.01, 0.03
# Wang, Simoncelli & Bovik 2003, Table 1 (fine to coarse); they sum to 1.0001 as published.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# MS-SSIM raises per-scale similarities to powers < 1: d/ds s^w = w s^(w-1) is unbounded at 0
# and s < 0 has no real power. Similarities are floored here before the power (see ms_ssim).
MS_SSIM_FLOOR = 1e-6
# CW-SSIM with the official K = 0 is 0/0 on a featureless band; this keeps it 1 (identical
# structure) and the gradient finite. Bands are in image units, so 1e-10 is far below any texture.
CW_SSIM_STABILISER = 1e-10


def _as_float(t: torch.Tensor) -> torch.Tensor:
    """float64 stays float64; half precision is promoted (variances need >= float32)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def to_colour(img: torch.Tensor, colour: str, quantize: bool = False) -> torch.Tensor:
    """Convert RGB ``NCHW`` in [0, 1] to the channels a metric looks at (see module docstring)."""
    img = _as_float(img)
    if colour == "gray":
        img = rgb_to_gray(img)
    elif colour == "y":
        img = rgb_to_y(img)
    elif colour != "rgb":
        raise ValueError(f"colour must be 'rgb', 'y' or 'gray', got {colour!r}")
    if quantize:
        # rgb2gray/rgb2ycbcr on uint8 round to uint8; straight-through so the loss stays smooth
        img = round_to_8bit(img)
    return img


# ``ssim.m`` (2009): ``f = max(1, round(min(H, W) / 256))`` so the window sees ~256 px
auto_downsample_factor = matlab_downsample_factor


def box_downsample(img: torch.Tensor, f: int) -> torch.Tensor:
    """``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` then ``img(1:f:end, 1:f:end)``.

    Output size ``ceil(H / f)``; on sizes divisible by ``f`` it is plain ``f x f`` average pooling.
    """
    if f == 1:
        return img
    h, w = img.shape[-2:]
    if h % f or w % f:  # the padded border is only ever read when f does not divide the size
        img = filters.pad(img, filters.same_pads(f, f), "symmetric")
    return F.avg_pool2d(img, f, stride=f, ceil_mode=False)


@tensor_cache(maxsize=64)
def _banded(n: int, win_size: int, sigma: float | None) -> torch.Tensor:
    """``(n, n - k + 1)`` float64 matrix ``M`` with ``(v @ M)[j] = sum_i v[j + i] g[i]``: 'valid'
    correlation with the Gaussian ``g`` (``sigma``) or the box (``sigma=None``) of length ``k``."""
    g = (torch.full((win_size,), 1.0 / win_size, dtype=torch.float64) if sigma is None
         else filters.gaussian_kernel1d(win_size, sigma, dtype=torch.float64))
    offs = torch.arange(n)[:, None] - torch.arange(n - win_size + 1)[None, :]
    inside = (offs >= 0) & (offs < win_size)
    return torch.where(inside, g[offs.clamp(0, win_size - 1)], torch.zeros((), dtype=g.dtype))


# Above this size the O(n)-per-pixel matrix product costs more than the O(k) convolution
# (measured on CPU: 1.4x faster at 128 px, even at ~192 px).
_MATMUL_MAX_SIDE = 160


def window_filter(stack: torch.Tensor, win_size: int, sigma: float | None) -> torch.Tensor:
    """'Valid' filtering of every channel of ``stack`` with a separable ``win_size`` window,
    Gaussian (``sigma``) or box (``sigma=None``), normalised to sum 1.

    One call filters all moment maps at once. On the CPU, images up to 160 px use two products
    with banded matrices (BLAS beats depthwise convolution there); otherwise two depthwise 1-D
    convolutions (also on GPUs, where TF32 matrix products would spoil ``E[x^2] - E[x]^2``).
    """
    h, w = stack.shape[-2:]
    if stack.device.type == "cpu" and max(h, w) <= _MATMUL_MAX_SIDE:
        rows = _banded(h, win_size, sigma).to(stack.dtype)
        cols = rows if w == h else _banded(w, win_size, sigma).to(stack.dtype)
        return rows.t() @ (stack @ cols)
    g = _banded(win_size, win_size, sigma)[:, 0].to(device=stack.device, dtype=stack.dtype)
    k, c = win_size, stack.shape[1]
    # oneDNN's depthwise kernels are 3-5x faster channels-last (same values, bit for bit)
    stack = stack.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(stack, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(out, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_maps(x: torch.Tensor, ref: torch.Tensor, win_size: int = 11, sigma: float = 1.5,
              data_range: float = 1.0, k1: float = K1, k2: float = K2, padding="valid"):
    """Local SSIM and contrast-structure maps (Wang et al. 2004, eqs. 13 and 15).

    ``SSIM = l * cs`` with ``l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)`` and
    ``cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)``, ``C_i = (K_i L)^2``; means and
    (biased) covariances are Gaussian-weighted over the window. Returns ``(ssim_map, cs_map)``.
    """
    if padding != "valid":
        p = win_size // 2
        x, ref = filters.pad(x, (p, p, p, p), padding), filters.pad(ref, (p, p, p, p), padding)
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"SSIM window {win_size}x{win_size} larger than the image "
                         f"{tuple(x.shape[-2:])}")
    c = x.shape[1]
    # only sigma_x^2 + sigma_y^2 enters, so four maps are filtered instead of five
    stats = window_filter(torch.cat([x, ref, x * x + ref * ref, x * ref], 1), win_size, sigma)
    mu_x, mu_y, energy, xy = stats.split(c, dim=1)
    return ssim_from_moments(mu_x, mu_y, energy, xy, data_range, k1, k2)


def ssim_from_moments(mu_x, mu_y, energy, xy, data_range: float = 1.0, k1: float = K1,
                      k2: float = K2):
    """``(ssim_map, cs_map)`` from windowed ``E[x]``, ``E[y]``, ``E[x^2] + E[y^2]``, ``E[xy]``."""
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    cs = (2 * (xy - mu_xy) + c2) / (energy - mu_sq + c2)
    return (2 * mu_xy + c1) / (mu_sq + c1) * cs, cs


def ssim(x: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = False,
         downsample: bool = False, data_range: float = 1.0, win_size: int = 11,
         sigma: float = 1.5, k1: float = K1, k2: float = K2, padding="valid") -> torch.Tensor:
    """Mean SSIM per image (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004).

    ``SSIM(x, y) = mean over windows of (2 mu_x mu_y + C1)(2 sigma_xy + C2) /
    ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))``, 11x11 Gaussian window (sigma 1.5),
    ``K1 = 0.01, K2 = 0.03``, 'valid' window positions; with ``colour='rgb'`` the mean is over
    channels too. The official ``ssim_index.m`` (v1.0, 2003) on 8-bit files is
    ``colour='gray', quantize=True`` (the optiqa ``ssim`` metric); ``downsample=True`` adds the
    automatic ``f x f`` average filtering of the later ``ssim.m`` (2009),
    ``f = max(1, round(min(H, W) / 256))``. ``colour='rgb', data_range=1`` is pytorch_msssim's
    ``ssim`` (and piq's ``ssim(..., downsample=False)``).
    """
    x = _ssim_input(x, colour, quantize, downsample)
    ref = _ssim_input(ref, colour, quantize, downsample)
    ssim_map, _ = ssim_maps(x, ref, win_size, sigma, data_range, k1, k2, padding)
    return ssim_map.flatten(1).mean(1)


def _ssim_input(img: torch.Tensor, colour: str, quantize: bool, downsample: bool) -> torch.Tensor:
    img = to_colour(img, colour, quantize)
    return box_downsample(img, auto_downsample_factor(*img.shape[-2:])) if downsample else img


def ms_ssim_scales(h: int, w: int, win_size: int = 11, max_scales: int = 5) -> int:
    """Number of MS-SSIM scales an image allows: the coarsest must still hold one whole window.

    Scale ``j`` has side ``ceil(min(H, W) / 2^(j-1))``; the standard 5 scales with an 11x11 window
    need ``min(H, W) >= 161``.
    """
    side, n = min(h, w), 1
    while n < max_scales and (side + 1) // 2 >= win_size:
        side, n = (side + 1) // 2, n + 1
    return n


def ms_ssim(x: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = False,
            data_range: float = 1.0, weights=MS_SSIM_WEIGHTS, win_size: int = 11,
            sigma: float = 1.5, k1: float = K1, k2: float = K2, padding="valid",
            floor: float = MS_SSIM_FLOOR) -> torch.Tensor:
    """Multi-scale SSIM per image (Wang, Simoncelli & Bovik, Asilomar 2003; official msssim.m).

    ``MS-SSIM = l_M^{w_M} * prod_{j=1..M} cs_j^{w_j}`` where ``cs_j`` is the mean
    contrast-structure map at scale ``j`` and ``l_M cs_M`` the mean SSIM at the coarsest scale;
    between scales the image is 2x2-averaged (symmetric padding) and subsampled by 2. Standard:
    ``M = 5``, ``w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``. With ``colour='rgb'`` the index
    is computed per channel and averaged (pytorch_msssim, piq).

    Small images (e.g. 128x128 training patches; 5 scales need >= 161 px): the image gets as many
    scales as still hold one whole ``win_size`` window (:func:`ms_ssim_scales`; 4 at 128 px, 3 at
    64 px) and the weights of the scales that exist are renormalised to sum to 1
    (``w_j / sum(w_1..M)``, what piq does with custom weights). This keeps the paper's window and
    the relative weighting of the scales that can be measured, instead of estimating statistics
    from truncated windows; images of >= 161 px get the standard 5-scale index unchanged.

    Gradients: ``s^w`` with ``w < 1`` has an unbounded derivative at ``s = 0`` and is undefined
    for ``s < 0`` (anti-correlated content), which makes NaN gradients. Each per-scale value is
    clamped to ``[floor, inf)`` before the power (the clamp passes no gradient below the floor),
    so the index is continuous and every gradient finite; natural images never reach the floor.

    On the five calibration pairs (512x384, 5 scales) this reproduces the official scores within
    0.0044 (largest on TID2013 I19, a noise distortion; the IQA-PyTorch port shows the same gap):
    inside the 0.005 bound, but looser than SSIM's 5e-5, for reasons not found (2x2 averaging,
    colour, rounding and padding variants were tried; the ``msssim.m`` reading here fits best).
    """
    x, ref = to_colour(x, colour, quantize), to_colour(ref, colour, quantize)
    weights = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    n_scales = ms_ssim_scales(*x.shape[-2:], win_size, len(weights))
    if n_scales < len(weights):
        weights = weights[:n_scales] / weights[:n_scales].sum()
    per_scale = []
    for j in range(n_scales):
        if j:
            x, ref = box_downsample(x, 2), box_downsample(ref, 2)
        ssim_map, cs_map = ssim_maps(x, ref, win_size, sigma, data_range, k1, k2, padding)
        last = j == n_scales - 1
        per_scale.append((ssim_map if last else cs_map).flatten(2).mean(-1))  # (N, C)
    sims = torch.stack(per_scale).clamp_min(floor)  # (M, N, C)
    return (sims ** weights.view(-1, 1, 1)).prod(0).mean(1)


def _fspecial_gaussian(rows: int, cols: int, sigma: float, dtype, device) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', [rows cols], sigma)``, tails below eps * max set to 0."""
    y = torch.arange(rows, dtype=torch.float64) - (rows - 1) / 2
    x = torch.arange(cols, dtype=torch.float64) - (cols - 1) / 2
    g = torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2))
    g = torch.where(g < torch.finfo(torch.float64).eps * g.max(), torch.zeros_like(g), g)
    return (g / g.sum()).to(dtype=dtype, device=device)


def cw_ssim(x: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = False,
            level: int = 4, orientations: int = 8, guard: int = 0, k: float = 0.0,
            win_size: int = 7, stabiliser: float = CW_SSIM_STABILISER) -> torch.Tensor:
    """Complex-wavelet SSIM per image (Sampat, Wang, Gupta, Bovik & Markey, IEEE TIP 2009).

    As ``cwssim_index.m``: decompose both images with a complex steerable pyramid
    (:mod:`optiqa.ops.steerable`, ``level`` levels, ``orientations`` bands) and, for each
    band ``c_x, c_y`` of the coarsest level,
    ``CW-SSIM map = (2 |sum_w c_x conj(c_y)| + K) / (sum_w |c_x|^2 + sum_w |c_y|^2 + K)`` with
    ``sum_w`` a ``win_size`` x ``win_size`` box mean ('valid'); each map is averaged with a
    centred Gaussian of standard deviation (band height) / 4 (``fspecial``), then the bands are
    averaged. ``guard`` pixels (at full resolution) are cut from the band borders.
    Only phase *differences* between the images enter, so small translations and other
    non-structural changes barely move the index. Defaults (4 levels, 8 orientations, K = 0) are
    those that reproduce the calibration scores (the IQA-PyTorch calibration of the official
    code; the script's own example uses 6 levels and 16 orientations, which needs larger images).

    ``stabiliser`` is added to numerator and denominator: with ``K = 0`` a featureless band
    would give 0/0.
    """
    x, ref = to_colour(x, colour, quantize), to_colour(ref, colour, quantize)
    bands = oriented_bands(torch.stack([x, ref]), level, orientations)  # (2, N, C, K, h, w)
    gb = guard // 2 ** (level - 1)
    if gb:
        bands = bands[..., gb:-gb, gb:-gb]
    bx, by = bands[0], bands[1]
    corr = bx * by.conj()
    n, c, kk, h, w = corr.shape
    if min(h, w) < win_size:
        raise ValueError(f"CW-SSIM: the level-{level} band is {w}x{h}, smaller than the "
                         f"{win_size}x{win_size} window; use a larger image or fewer levels")
    # real part, imaginary part and energy through one box-filter call
    energy = torch.view_as_real(bx).square().sum(-1) + torch.view_as_real(by).square().sum(-1)
    stack = torch.stack([corr.real, corr.imag, energy], 2).view(n, c * 3 * kk, h, w)
    hv, wv = h - win_size + 1, w - win_size + 1
    local = window_filter(stack, win_size, None).view(n, c, 3, kk, hv, wv)
    # |.| of a complex tensor has gradient sgn(z), which is 0 (not NaN) at z = 0
    corr_mag = torch.complex(local[:, :, 0], local[:, :, 1]).abs()
    cssim = (2 * corr_mag + k + stabiliser) / (local[:, :, 2] + k + stabiliser)
    weight = _fspecial_gaussian(hv, wv, h / 4, cssim.dtype, cssim.device)
    return (cssim * weight).sum((-2, -1)).mean((1, 2))


_SSIM_DEFAULTS = dict(colour="gray", quantize=False, downsample=False, data_range=1.0,
                     win_size=11, sigma=1.5, k1=K1, k2=K2, padding="valid")


class SSIM(FRMetric):
    """SSIM. ``variant='official'``: ``ssim_index.m`` on the ``rgb2gray`` image of 8-bit files,
    which reproduces the calibration scores within 5e-5; ``variant='y'``: BT.601 Y, no rounding,
    no downsampling (BasicSR/SwinIR tables). Keyword arguments override the options of
    :func:`ssim`; ``downsample=True`` gives the 2009 ``ssim.m``, whose automatic downsampling
    moves the 512x384 calibration scores by up to 0.11 away from the official values (those
    were computed without it, as IQA-PyTorch also does)."""

    VARIANTS = {"official": dict(colour="gray", quantize=True), "y": dict(colour="y")}

    def __init__(self, info=None, variant: str = "official", **options):
        super().__init__(info)
        if variant not in self.VARIANTS:
            raise ValueError(f"SSIM variant must be one of {sorted(self.VARIANTS)}, "
                             f"got {variant!r}")
        self.options = {**self.VARIANTS[variant], **options}

    def compute(self, x, ref):
        return ssim(x, ref, **self.options)

    # One reference, many distortions: the reference's colour conversion and its windowed
    # E[y], E[y^2] are computed once (3 maps filtered per image instead of 4).
    def prepare_reference(self, ref):
        o = {**_SSIM_DEFAULTS, **self.options}
        if o["padding"] != "valid":
            return super().prepare_reference(ref)
        r = _ssim_input(ref, o["colour"], o["quantize"], o["downsample"])
        mu_y, e_y = window_filter(torch.cat([r, r * r], 1), o["win_size"], o["sigma"]).chunk(2, 1)
        return r, mu_y, e_y

    def compute_prepared(self, x, prepared):
        if isinstance(prepared, torch.Tensor):  # padded variants share nothing
            return super().compute_prepared(x, prepared)
        o = {**_SSIM_DEFAULTS, **self.options}
        r, mu_y, e_y = prepared
        xc = _ssim_input(x, o["colour"], o["quantize"], o["downsample"])
        mu_x, e_x, xy = window_filter(torch.cat([xc, xc * xc, xc * r.expand_as(xc)], 1),
                                      o["win_size"], o["sigma"]).chunk(3, 1)
        n = xc.shape[0]
        ssim_map, _ = ssim_from_moments(mu_x, mu_y.expand(n, -1, -1, -1), e_x + e_y, xy,
                                        o["data_range"], o["k1"], o["k2"])
        return ssim_map.flatten(1).mean(1)


class MSSSIM(FRMetric):
    """MS-SSIM as the official ``msssim.m`` on the ``rgb2gray`` image of 8-bit files; see
    :func:`ms_ssim` for images under 161 px and for gradients."""

    def __init__(self, info=None, **options):
        super().__init__(info)
        self.options = {"colour": "gray", "quantize": True, **options}

    def compute(self, x, ref):
        return ms_ssim(x, ref, **self.options)


class CWSSIM(FRMetric):
    """CW-SSIM as ``cwssim_index.m`` (4 levels, 8 orientations, K = 0, 7x7 window) on the
    ``rgb2gray`` image of 8-bit files; see :func:`cw_ssim`."""

    def __init__(self, info=None, **options):
        super().__init__(info)
        self.options = {"colour": "gray", "quantize": True, **options}

    def compute(self, x, ref):
        return cw_ssim(x, ref, **self.options)
