"""Deblurring degradations: Gaussian blur and camera-shake motion blur, plus Gaussian noise.

Both are *non-blind* tasks in the sense of the deblurring literature: the blur of every image is
fully determined by its seed and recorded (test sets save each image's kernel beside it, see
:mod:`optiqa.data.testsets`), so a method that takes the kernel can be given it; the networks
trained here learn the inverse of the whole kernel family.

``y = round8(clip(k * x + n))`` with ``k`` the PSF (convolution, reflect padding at the image
border), ``n ~ N(0, (noise_sigma/255)^2)`` per pixel and channel, and ``round8`` the rounding to 8
bits (``quantize``; a blurred photo is an 8-bit image).

**Motion trajectories** follow Boracchi & Foi, "Modeling the performance of image restoration
from motion blur", IEEE TIP 21(8), 2012 (their ``createTrajectory``; the generator DeblurGAN
also uses): a particle moves in ``T`` steps of constant speed ``L/(T-1)`` (``L`` the path
length); at each step its velocity ``v`` gets

    dv = s_t + a (g (e1 + i e2) - c x_t) L/(T-1),   e1, e2 ~ N(0, 1),
    s_t = 2 v exp(i (pi + u - 1/2))  with probability p * a, else 0   (an abrupt shake),

then ``v`` is renormalised to speed ``L/(T-1)``; ``a`` (anxiety) ~ U(0, 0.1), ``c`` (centripetal
pull towards the start) ~ U(0, 0.7), ``g`` (Gaussian term) ~ U(0, 10), ``p`` ~ U(0, 0.2), the
initial direction ~ U(0, 2 pi), as in the original. ``a = 0`` gives straight (rectilinear) blur.
The PSF integrates the whole exposure (all ``T`` samples, bilinear splatting, centroid at the
kernel centre: :func:`optiqa.ops.kernels.rasterize_trajectory`). Our code, written from the
paper's description; every draw comes from the ``torch.Generator`` passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from optiqa.core.errors import ConfigError
from optiqa.ops.rounding import quantize_8bit


def _uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _as_range(value, name: str, what: str) -> tuple[float, float]:
    """A number ``v`` (the range ``[v, v]``) or a pair ``[lo, hi]``."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] <= value[1]:
        return float(value[0]), float(value[1])
    raise ConfigError(f"degradation {what}: {name} must be a number or a pair [low, high], "
                      f"got {value!r}")


def camera_shake_trajectory(g: torch.Generator, length: float, samples: int = 2000,
                            anxiety: float | None = None) -> torch.Tensor:
    """Positions ``(samples, 2)`` (x, y in pixels) of a random camera-shake path of total
    length ``length`` (Boracchi & Foi 2012; the model is in the module docstring)."""
    if samples < 2:
        raise ValueError("a trajectory needs at least 2 samples")
    # every random number the path uses, drawn up front in a fixed order (then plain floats)
    a = 0.1 * _uniform(g) if anxiety is None else float(anxiety)
    centripetal, gaussian_term, big_shake = 0.7 * _uniform(g), 10 * _uniform(g), 0.2 * _uniform(g)
    angle = 2 * math.pi * _uniform(g)
    u = torch.rand(samples - 1, 2, generator=g, dtype=torch.float64).tolist()
    e = torch.randn(samples - 1, 2, generator=g, dtype=torch.float64).tolist()

    step = length / (samples - 1)
    v = complex(math.cos(angle), math.sin(angle)) * (a if a > 0 else step)
    x = [0j] * samples
    for t in range(samples - 1):
        shake = 2 * v * complex(math.cos(math.pi + u[t][1] - 0.5),
                                math.sin(math.pi + u[t][1] - 0.5)) \
            if u[t][0] < big_shake * a else 0
        v = v + shake + a * (gaussian_term * complex(e[t][0], e[t][1]) - centripetal * x[t]) * step
        speed = abs(v)
        v = v / speed * step if speed > 0 else complex(step, 0)
        x[t + 1] = x[t] + v
    return torch.tensor([[z.real, z.imag] for z in x], dtype=torch.float64)


@dataclass
class _BlurBase:
    """Shared part: noise after the blur, 8-bit output, per-image draws."""

    noise_sigma: float = 0.0
    quantize: bool = True
    scale: int = 1

    def _finish(self, blurred: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.noise_sigma > 0:
            noise = torch.randn(blurred.shape, generator=g, dtype=torch.float32)
            blurred = blurred + (self.noise_sigma / 255.0) * noise.to(blurred)
        if self.quantize:
            blurred = quantize_8bit(blurred)
        return blurred

    def __call__(self, gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        return torch.cat([self.degrade_one(img[None], g)[0] for img in gt])

    def degrade_one(self, gt: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        """``(lq, params)`` of one image ``(1, C, H, W)``; ``params`` holds the drawn kernel."""
        from optiqa.ops.kernels import blur

        kernel, params = self.draw_kernel(g)
        lq = self._finish(blur(gt, kernel.to(gt.device), convolve=True), g)
        return lq, {**params, "kernel": kernel}


@dataclass
class GaussianBlur(_BlurBase):
    """Isotropic Gaussian blur; ``sigma`` a number or a list (one drawn per image, uniformly)."""

    sigma: float | list = 1.6
    kernel_size: int | None = None   # default: 2 * ceil(3 sigma) + 1 for the largest sigma

    version = "1"

    def __post_init__(self):
        sigmas = self.sigma if isinstance(self.sigma, (list, tuple)) else [self.sigma]
        if not sigmas or not all(isinstance(s, (int, float)) and s > 0 for s in sigmas):
            raise ConfigError(f"degradation gaussian_blur: sigma must be a positive number or a "
                              f"list of them, got {self.sigma!r}")
        self.sigmas = [float(s) for s in sigmas]
        if self.kernel_size is None:
            self.kernel_size = 2 * math.ceil(3 * max(self.sigmas)) + 1
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"degradation gaussian_blur: kernel_size must be odd, got "
                              f"{self.kernel_size}")
        if self.noise_sigma < 0:
            raise ConfigError("degradation gaussian_blur: noise_sigma must be >= 0")

    @property
    def context_lr(self) -> int:
        return self.kernel_size // 2

    def draw_kernel(self, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        from optiqa.ops.kernels import gaussian_kernel2d

        i = int(torch.randint(len(self.sigmas), (), generator=g)) if len(self.sigmas) > 1 else 0
        sigma = self.sigmas[i]
        return gaussian_kernel2d(self.kernel_size, sigma), {"sigma": sigma}

    def describe(self) -> str:
        s = "/".join(f"{s:g}" for s in self.sigmas)
        return (f"Gaussian blur sigma {s} px ({self.kernel_size}x{self.kernel_size})"
                + (f" + noise sigma {self.noise_sigma:g}/255" if self.noise_sigma else "")
                + (", 8-bit" if self.quantize else ""))


@dataclass
class MotionBlur(_BlurBase):
    """Camera-shake motion blur from random trajectories (Boracchi & Foi 2012).

    ``length``: the path length in pixels, a number or ``[low, high]`` (uniform per image);
    ``anxiety``: ``None`` draws it per image from U(0, 0.1) as the original, 0 gives straight
    lines; ``samples``: trajectory samples ``T``.
    """

    length: float | list = field(default_factory=lambda: [8.0, 32.0])
    anxiety: float | None = None
    samples: int = 2000

    version = "1"

    def __post_init__(self):
        self.length_range = _as_range(self.length, "length", "motion_blur")
        if self.length_range[0] <= 0:
            raise ConfigError("degradation motion_blur: length must be > 0")
        if self.anxiety is not None and not 0 <= self.anxiety <= 1:
            raise ConfigError("degradation motion_blur: anxiety must be in [0, 1] (or null)")
        if self.samples < 2:
            raise ConfigError("degradation motion_blur: samples must be >= 2")
        if self.noise_sigma < 0:
            raise ConfigError("degradation motion_blur: noise_sigma must be >= 0")

    @property
    def context_lr(self) -> int:
        # no point of a path of length L lies farther than L from its centroid
        return math.floor(self.length_range[1]) + 2

    def draw_kernel(self, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        from optiqa.ops.kernels import rasterize_trajectory

        length = _uniform(g, *self.length_range)
        path = camera_shake_trajectory(g, length, self.samples, self.anxiety)
        return rasterize_trajectory(path), {"length": length}

    def describe(self) -> str:
        lo, hi = self.length_range
        length = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
        anxiety = "U(0, 0.1)" if self.anxiety is None else f"{self.anxiety:g}"
        return (f"camera-shake motion blur (Boracchi & Foi 2012), path {length} px, "
                f"anxiety {anxiety}"
                + (f" + noise sigma {self.noise_sigma:g}/255" if self.noise_sigma else "")
                + (", 8-bit" if self.quantize else ""))
