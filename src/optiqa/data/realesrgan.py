"""Real-world SR: the second-order degradation model of Real-ESRGAN, seeded per sample.

Wang, Xie, Dong & Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data", ICCV Workshops 2021. Defaults are the official ``train_realesrgan_x4plus.yml``
options; the sampling rules are those of the official code (``RealESRGANDataset`` draws the
kernels, ``RealESRGANModel.feed_data`` the rest; BasicSR ``data/degradations.py``), re-written:

1. (``usm_input``) the ground truth is USM-sharpened first (weight 0.5, threshold 10/255, a
   51x51 Gaussian of sigma 8; the official model degrades ``gt_usm``);
2. first order: blur with a random kernel, random resize, Gaussian or Poisson noise, JPEG;
3. second order: blur (probability ``second_blur_prob``), resize to ``size/scale x factor``,
   noise; then, in random order (1/2 each), [resize to ``size/scale`` + final sinc filter]
   and JPEG; finally clamp and round to 8 bits.

Blur kernels: size uniform over 7, 9, ..., 21; with probability ``sinc_prob`` a sinc of cut-off
U(pi/3, pi) (size < 13) or U(pi/5, pi); else a family from ``kernel_list`` with
``kernel_prob`` (sigmas U(``blur_sigma``) per axis, rotation U(-pi, pi), beta U(low, 1) or
U(1, high) with probability 1/2 each, from ``betag_range`` / ``betap_range``). Final sinc: with
``final_sinc_prob``, size as above, cut-off U(pi/3, pi); else no filter. Resize: up / down /
keep with ``resize_prob``, factor U(1, high) / U(low, 1) / 1, mode uniform over area, bilinear,
bicubic (``F.interpolate``, as the official code). Noise: Gaussian with ``gaussian_noise_prob``
(sigma U(``noise_range``)/255), else Poisson (scale U(``poisson_scale_range``)); grey (the same
noise on every channel) with ``gray_noise_prob``; clipped to [0, 1]. JPEG quality
U(``jpeg_range``), rounded to an integer.

Differences from the official code, on purpose: every choice is drawn **per sample** from one
``torch.Generator`` (the official code draws the resize, noise kind and final order once per
batch and mixes batches through a 180-sample pool; per-sample draws give the same marginal
distributions without the pool), and JPEG is libjpeg through ``torchvision.io`` (nvJPEG on CUDA
tensors) on the 8-bit image instead of DiffJPEG's float pipeline (same standard tables, 4:2:0;
on the CPU it is bit-identical to Pillow, tested). All parameters come from the CPU generator,
so they are identical on every device; noise maps are drawn on the image's device from a seed
taken from that generator (so the GPU path is seeded too, but its noise realisations differ
from the CPU's). :meth:`RealESRGANDegradation.draw` returns the parameters without rendering.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from optiqa.core.errors import ConfigError
from optiqa.ops.rounding import quantize_8bit, to_uint8

KERNEL_FAMILIES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso",
                   "plateau_aniso")
KERNEL_SIZES = tuple(range(7, 22, 2))
RESIZE_MODES = ("area", "bilinear", "bicubic")
RESIZE_KINDS = ("up", "down", "keep")


def _uniform(g, lo, hi) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _coin(g, p) -> bool:
    return float(torch.rand((), generator=g, dtype=torch.float64)) < p


def _choice(g, options, probs=None):
    if probs is None:
        return options[int(torch.randint(len(options), (), generator=g))]
    w = torch.tensor(probs, dtype=torch.float64)
    return options[int(torch.multinomial(w / w.sum(), 1, generator=g))]


@dataclass(frozen=True)
class KernelDraw:
    """One drawn blur kernel: ``family`` in :data:`KERNEL_FAMILIES`, ``sinc`` or ``pulse``."""

    family: str
    size: int
    sigma_x: float | None = None
    sigma_y: float | None = None
    theta: float | None = None
    beta: float | None = None
    cutoff: float | None = None

    def render(self, pad_to: int = 21) -> torch.Tensor:
        from optiqa.ops import kernels as K

        f = self.family
        if f == "pulse":
            k = torch.ones(1, 1)
        elif f == "sinc":
            k = K.sinc_kernel2d(self.size, self.cutoff)
        elif f.startswith("generalized"):
            k = K.generalized_gaussian_kernel2d(self.size, self.sigma_x, self.sigma_y,
                                                self.theta, self.beta)
        elif f.startswith("plateau"):
            k = K.plateau_kernel2d(self.size, self.sigma_x, self.sigma_y, self.theta, self.beta)
        else:
            k = K.gaussian_kernel2d(self.size, self.sigma_x, self.sigma_y, self.theta)
        return K.pad_kernel(k, pad_to)


@dataclass(frozen=True)
class StageDraw:
    """The draws of one degradation order (blur, resize, noise, and JPEG for the first)."""

    blur: KernelDraw | None          # None: no blur in this order (second_blur_prob)
    resize: str                      # up / down / keep
    resize_factor: float
    resize_mode: str
    noise: str                       # gaussian / poisson
    noise_level: float               # sigma on the 0-255 scale, or the Poisson scale
    gray_noise: bool
    noise_seed: int
    jpeg_quality: float | None       # continuous draw (first order only)


@dataclass(frozen=True)
class RealESRGANDraw:
    first: StageDraw
    second: StageDraw
    final_sinc: KernelDraw           # ``pulse`` when no final sinc is applied
    sinc_before_jpeg: bool           # final order: [resize + sinc] then JPEG, or the reverse
    final_resize_mode: str
    final_jpeg_quality: float

    def to_dict(self) -> dict:
        return asdict(self)


def _range(v, name):
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and v[0] <= v[1]):
        raise ConfigError(f"degradation realesrgan: {name} must be [low, high], got {v!r}")
    return float(v[0]), float(v[1])


def _probs(v, n, name):
    if not (isinstance(v, (list, tuple)) and len(v) == n and all(p >= 0 for p in v)
            and sum(v) > 0):
        raise ConfigError(f"degradation realesrgan: {name} must be {n} probabilities, got {v!r}")


_KLIST = list(KERNEL_FAMILIES)
_KPROB = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]


@dataclass
class RealESRGANDegradation:
    """Real-ESRGAN's degradation x ``scale`` (options: BasicSR names, official x4plus values)."""

    scale: int = 4
    usm_input: bool = True
    # first order
    kernel_list: list = field(default_factory=lambda: list(_KLIST))
    kernel_prob: list = field(default_factory=lambda: list(_KPROB))
    sinc_prob: float = 0.1
    blur_sigma: list = field(default_factory=lambda: [0.2, 3.0])
    betag_range: list = field(default_factory=lambda: [0.5, 4.0])
    betap_range: list = field(default_factory=lambda: [1.0, 2.0])
    resize_prob: list = field(default_factory=lambda: [0.2, 0.7, 0.1])
    resize_range: list = field(default_factory=lambda: [0.15, 1.5])
    gaussian_noise_prob: float = 0.5
    noise_range: list = field(default_factory=lambda: [1.0, 30.0])
    poisson_scale_range: list = field(default_factory=lambda: [0.05, 3.0])
    gray_noise_prob: float = 0.4
    jpeg_range: list = field(default_factory=lambda: [30.0, 95.0])
    # second order
    second_blur_prob: float = 0.8
    kernel_list2: list = field(default_factory=lambda: list(_KLIST))
    kernel_prob2: list = field(default_factory=lambda: list(_KPROB))
    sinc_prob2: float = 0.1
    blur_sigma2: list = field(default_factory=lambda: [0.2, 1.5])
    betag_range2: list = field(default_factory=lambda: [0.5, 4.0])
    betap_range2: list = field(default_factory=lambda: [1.0, 2.0])
    resize_prob2: list = field(default_factory=lambda: [0.3, 0.4, 0.3])
    resize_range2: list = field(default_factory=lambda: [0.3, 1.2])
    gaussian_noise_prob2: float = 0.5
    noise_range2: list = field(default_factory=lambda: [1.0, 25.0])
    poisson_scale_range2: list = field(default_factory=lambda: [0.05, 2.5])
    gray_noise_prob2: float = 0.4
    jpeg_range2: list = field(default_factory=lambda: [30.0, 95.0])
    final_sinc_prob: float = 0.8

    version = "1"
    keeps_size = False
    # LR pixels of context around a training crop: the official code degrades a 400x400 crop
    # and cuts a 256x256 one from it; the first blur's 21x21 kernel reaches 10 HR pixels
    context_lr = 4

    def __post_init__(self):
        if int(self.scale) != self.scale or self.scale < 1:
            raise ConfigError(f"degradation realesrgan: scale must be a positive integer, got "
                              f"{self.scale!r}")
        self.scale = int(self.scale)
        for suffix in ("", "2"):
            klist, kprob = getattr(self, "kernel_list" + suffix), getattr(self, "kernel_prob" + suffix)
            unknown = [k for k in klist if k not in KERNEL_FAMILIES]
            if unknown:
                raise ConfigError(f"degradation realesrgan: kernel_list{suffix}: unknown kernel "
                                  f"{unknown[0]!r}; valid: {', '.join(KERNEL_FAMILIES)}")
            _probs(kprob, len(klist), "kernel_prob" + suffix)
            _probs(getattr(self, "resize_prob" + suffix), 3, "resize_prob" + suffix)
            for name in ("blur_sigma", "betag_range", "betap_range", "resize_range",
                         "noise_range", "poisson_scale_range", "jpeg_range"):
                _range(getattr(self, name + suffix), name + suffix)
            q = getattr(self, "jpeg_range" + suffix)
            if not 1 <= q[0] <= q[1] <= 100:
                raise ConfigError(f"degradation realesrgan: jpeg_range{suffix} must lie in "
                                  f"[1, 100], got {q}")

    # ------------------------------------------------------------------------------- draws
    def _kernel(self, g, suffix: str) -> KernelDraw:
        size = _choice(g, KERNEL_SIZES)
        if _coin(g, getattr(self, "sinc_prob" + suffix)):
            low = math.pi / 3 if size < 13 else math.pi / 5
            return KernelDraw("sinc", size, cutoff=_uniform(g, low, math.pi))
        family = _choice(g, getattr(self, "kernel_list" + suffix),
                         getattr(self, "kernel_prob" + suffix))
        sigma = getattr(self, "blur_sigma" + suffix)
        sx = _uniform(g, *sigma)
        sy, theta = (sx, 0.0)
        if family.endswith("aniso"):
            sy, theta = _uniform(g, *sigma), _uniform(g, -math.pi, math.pi)
        beta = None
        if family.startswith(("generalized", "plateau")):
            lo, hi = getattr(self, ("betag_range" if family.startswith("gen") else "betap_range")
                             + suffix)
            beta = _uniform(g, lo, 1.0) if _coin(g, 0.5) else _uniform(g, 1.0, hi)
        return KernelDraw(family, size, sx, sy, theta, beta)

    def _stage(self, g, suffix: str, blur: KernelDraw | None) -> StageDraw:
        kind = _choice(g, RESIZE_KINDS, getattr(self, "resize_prob" + suffix))
        lo, hi = getattr(self, "resize_range" + suffix)
        factor = _uniform(g, 1.0, hi) if kind == "up" else \
            _uniform(g, lo, 1.0) if kind == "down" else 1.0
        mode = _choice(g, RESIZE_MODES)
        gaussian = _coin(g, getattr(self, "gaussian_noise_prob" + suffix))
        level = _uniform(g, *getattr(self, ("noise_range" if gaussian else "poisson_scale_range")
                                     + suffix))
        gray = _coin(g, getattr(self, "gray_noise_prob" + suffix))
        seed = int(torch.randint(2 ** 62, (), generator=g))
        jpeg = _uniform(g, *self.jpeg_range) if suffix == "" else None
        return StageDraw(blur, kind, factor, mode, "gaussian" if gaussian else "poisson", level,
                         gray, seed, jpeg)

    def draw(self, g: torch.Generator) -> RealESRGANDraw:
        """All random choices of one sample, from ``g`` only, without rendering anything."""
        k1, k2 = self._kernel(g, ""), self._kernel(g, "2")
        if _coin(g, self.final_sinc_prob):
            size = _choice(g, KERNEL_SIZES)
            final = KernelDraw("sinc", size, cutoff=_uniform(g, math.pi / 3, math.pi))
        else:
            final = KernelDraw("pulse", 1)
        first = self._stage(g, "", k1)
        second = self._stage(g, "2", k2 if _coin(g, self.second_blur_prob) else None)
        sinc_first = _coin(g, 0.5)
        return RealESRGANDraw(first, second, final, sinc_first, _choice(g, RESIZE_MODES),
                              _uniform(g, *self.jpeg_range2))

    # ----------------------------------------------------------------------------- render
    def __call__(self, gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        return torch.cat([self.degrade_one(img[None], g)[0] for img in gt])

    def degrade_one(self, gt: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        d = self.draw(g)
        return self.render(gt, d), d.to_dict()

    def render(self, gt: torch.Tensor, d: RealESRGANDraw) -> torch.Tensor:
        """The degraded ``(1, C, H/scale, W/scale)`` image of ``gt`` ``(1, C, H, W)`` for draw
        ``d``, on ``gt``'s device."""
        from optiqa.ops.kernels import blur

        h, w = gt.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"realesrgan x{self.scale}: image size {w}x{h} is not a multiple "
                             "of the scale (crop it first)")
        out_size = (h // self.scale, w // self.scale)
        x = usm_sharpen(gt.float()) if self.usm_input else gt.float()
        # first order
        x = blur(x, d.first.blur.render().to(x.device))
        if d.first.resize != "keep":
            x = F.interpolate(x, scale_factor=d.first.resize_factor, mode=d.first.resize_mode)
        x = add_noise(x, d.first)
        x = jpeg_roundtrip(x, d.first.jpeg_quality)
        # second order
        if d.second.blur is not None:
            x = blur(x, d.second.blur.render().to(x.device))
        size2 = (int(h / self.scale * d.second.resize_factor),
                 int(w / self.scale * d.second.resize_factor))
        x = F.interpolate(x, size=size2, mode=d.second.resize_mode)
        x = add_noise(x, d.second)
        sinc = d.final_sinc.render().to(x.device)
        if d.sinc_before_jpeg:
            x = blur(F.interpolate(x, size=out_size, mode=d.final_resize_mode), sinc)
            x = jpeg_roundtrip(x, d.final_jpeg_quality)
        else:
            x = jpeg_roundtrip(x, d.final_jpeg_quality)
            x = blur(F.interpolate(x, size=out_size, mode=d.final_resize_mode), sinc)
        return quantize_8bit(x)

    def describe(self) -> str:
        return (f"Real-ESRGAN second-order degradation x{self.scale} (official x4plus ranges"
                + ("" if self.usm_input else ", no USM") + "), 8-bit")


# --------------------------------------------------------------------------------------------
def usm_sharpen(img: torch.Tensor, weight: float = 0.5, threshold: float = 10.0,
                radius: int = 50) -> torch.Tensor:
    """Unsharp masking as Real-ESRGAN's ``USMSharp``: ``sharp = img + weight (img - G*img)``,
    blended in where ``|img - G*img| > threshold/255`` (mask smoothed by ``G``); ``G`` a
    Gaussian of size ``radius + 1`` (odd) and OpenCV's default sigma for that size."""
    from optiqa.ops.filters import gaussian_kernel1d, separable_filter

    size = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel(size, 0)
    k = gaussian_kernel1d(size, sigma, dtype=img.dtype, device=img.device)
    padding = "reflect" if min(img.shape[-2:]) > size // 2 else "replicate"
    residual = img - separable_filter(img, k, padding=padding)
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft = separable_filter(mask, k, padding=padding)
    sharp = (img + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * img


def add_noise(x: torch.Tensor, s: StageDraw) -> torch.Tensor:
    """Gaussian (``sigma/255``) or Poisson noise of draw ``s``, grey or per channel, clipped.

    Poisson as BasicSR: the image is rounded to 8 bits, ``v = 2^ceil(log2(#distinct values))``,
    ``noise = (Poisson(v img) / v - img) * scale``.
    """
    g = torch.Generator(device=x.device).manual_seed(s.noise_seed)
    n, c, h, w = x.shape
    if s.noise == "gaussian":
        shape = (n, 1, h, w) if s.gray_noise else x.shape
        noise = torch.randn(shape, generator=g, device=x.device, dtype=x.dtype) * (s.noise_level
                                                                                   / 255.0)
    else:
        src = x
        if s.gray_noise:  # torchvision's rgb_to_grayscale weights, as BasicSR
            src = (x * x.new_tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        src = quantize_8bit(src)
        levels = torch.tensor([2.0 ** math.ceil(math.log2(len(torch.unique(im)))) for im in src],
                              device=x.device, dtype=x.dtype).view(n, 1, 1, 1)
        noise = (torch.poisson(src * levels, generator=g) / levels - src) * s.noise_level
    return (x + noise).clamp(0, 1)


def jpeg_roundtrip(x: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG-compress and decode each image at ``round(quality)`` (libjpeg via torchvision.io;
    nvJPEG for CUDA tensors). Input clamped to [0, 1] and rounded to 8 bits first."""
    from torchvision.io import decode_jpeg, encode_jpeg

    q = int(min(100, max(1, round(quality))))
    u8 = to_uint8(x)
    data = encode_jpeg(list(u8), quality=q)
    device = "cuda" if x.is_cuda else "cpu"
    dec = decode_jpeg(data, device=device)
    return torch.stack(dec).to(x.dtype) / 255.0
