"""Degradations that turn a ground-truth image into a restoration network's input (pluggable step).

A degradation is a small object with a ``scale`` (input size = ground truth / scale) and
``__call__(gt, generator) -> lq`` on ``(N, 3, H, W)`` tensors in [0, 1]; random ones draw only from
the ``torch.Generator`` they are given, so a sample is reproducible from its seed. They are listed
in :data:`DEGRADATIONS` (data, not import-time registration) and built by
:func:`create_degradation` from a config value:

- ``bicubic`` (SR x2/x3/x4; the default): MATLAB ``imresize(gt, 1/scale, 'bicubic')`` with
  antialiasing, implemented by :func:`optiqa.ops.resize.imresize`, rounded to 8 bits after each
  pass as MATLAB does on ``uint8`` images (``resize: torch`` uses
  ``F.interpolate(mode="bicubic", antialias=True)`` instead). On the benchmark LR files in
  ``../shared/data/sr`` the MATLAB path matches every interior pixel (91 dB mean PSNR away from
  the 3-pixel border; the files' borders were cut from larger images), the torch path 57.8 dB.
- ``gaussian_noise`` (denoising, scale 1): ``gt + N(0, (sigma/255)^2)`` per pixel and channel,
  not clipped, as in DnCNN / SwinIR colour denoising (sigma 15, 25, 50).
- ``jpeg`` (JPEG artefact removal, scale 1): Pillow JPEG at ``quality`` (4:2:0 chroma
  subsampling, Pillow's default), decoded back to RGB.
- ``gaussian_blur`` and ``motion_blur`` (deblurring, scale 1; :mod:`optiqa.data.blur`):
  Gaussian blur (a sigma or a list of sigmas) or camera-shake motion blur from random
  trajectories (Boracchi & Foi 2012), plus Gaussian noise, rounded to 8 bits.
- ``realesrgan`` (real-world SR x``scale``; :mod:`optiqa.data.realesrgan`): the second-order
  degradation model of Real-ESRGAN with its official x4plus ranges, drawn per sample.

A config value may also name a task preset of :data:`optiqa.data.tasks.TASKS` (``deblur_motion``,
``realsr_x4``, ...): its degradation, with the task's scale required to match. Each
degradation class has a ``version`` (changed whenever its output changes: test sets made with
another version are rebuilt) and may have ``degrade_one(gt, generator) -> (lq, params)``, which
also returns what it drew (recorded in test-set manifests), and ``describe()``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from optiqa.core.errors import ConfigError
from optiqa.core.registry import Registry
from optiqa.data.blur import GaussianBlur, MotionBlur
from optiqa.data.realesrgan import RealESRGANDegradation
from optiqa.ops.rounding import quantize_8bit

# HR pixels of context, in LR pixels, that make "degrade a crop" equal "crop the degraded image"
# for the bicubic step: the stretched kernel reaches 2 LR pixels either side; one more is spare.
BICUBIC_CONTEXT_LR = 3


@dataclass
class BicubicDownscale:
    """Bicubic downscaling by ``scale`` (SR); ``resize``: ``matlab`` (exact) or ``torch``."""

    scale: int = 4
    resize: str = "matlab"
    quantize: bool = True

    context_lr = BICUBIC_CONTEXT_LR
    version = "1"
    keeps_size = False

    def __post_init__(self):
        if self.resize not in ("matlab", "torch"):
            raise ConfigError(f"degradation bicubic: resize must be 'matlab' or 'torch', "
                              f"got {self.resize!r}")
        if int(self.scale) != self.scale or self.scale < 1:
            raise ConfigError(f"degradation bicubic: scale must be a positive integer, "
                              f"got {self.scale!r}")
        self.scale = int(self.scale)

    def __call__(self, gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        from optiqa.ops.resize import imresize, torch_bicubic

        h, w = gt.shape[-2:]
        if h % self.scale or w % self.scale:
            raise ValueError(f"bicubic x{self.scale}: image size {w}x{h} is not a multiple of "
                             "the scale (crop it first)")
        size = (h // self.scale, w // self.scale)
        if self.scale == 1:
            return gt.clone()
        if self.resize == "matlab":
            lq = imresize(gt, size=size, round_uint8=self.quantize)
        else:
            lq = torch_bicubic(gt, size=size)
            if self.quantize:
                lq = quantize_8bit(lq)
        return lq

    def describe(self) -> str:
        how = ("MATLAB imresize bicubic, antialiased" if self.resize == "matlab" else
               "torch interpolate bicubic, antialias=True")
        return f"x{self.scale} {how}" + (", 8-bit" if self.quantize else "")


@dataclass
class GaussianNoise:
    """Additive white Gaussian noise, ``sigma`` on the 0-255 scale (denoising; scale 1)."""

    sigma: float = 25.0
    clip: bool = False
    scale: int = 1

    context_lr = 0
    version = "1"

    def __call__(self, gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(gt.shape, generator=generator, dtype=torch.float32)
        lq = gt + (self.sigma / 255.0) * noise.to(gt)
        return lq.clamp(0, 1) if self.clip else lq

    def describe(self) -> str:
        return f"Gaussian noise sigma {self.sigma:g}/255" + (", clipped" if self.clip else "")


@dataclass
class JPEGCompression:
    """JPEG compression at ``quality`` 1-100 through Pillow (artefact removal; scale 1)."""

    quality: int = 40
    scale: int = 1

    context_lr = 0
    version = "1"

    def __post_init__(self):
        if not 1 <= int(self.quality) <= 100:
            raise ConfigError(f"degradation jpeg: quality must be in 1..100, got {self.quality}")

    def __call__(self, gt: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        from optiqa.data.distortions import jpeg

        single = gt.ndim == 3
        out = jpeg(gt[None] if single else gt, int(self.quality), generator)
        return out[0] if single else out

    def describe(self) -> str:
        return f"JPEG quality {self.quality} (Pillow)"


DEGRADATIONS: Registry = Registry("degradation", {
    "bicubic": BicubicDownscale,
    "gaussian_noise": GaussianNoise,
    "jpeg": JPEGCompression,
    "gaussian_blur": GaussianBlur,
    "motion_blur": MotionBlur,
    "realesrgan": RealESRGANDegradation,
})


def degradation_spec(d) -> dict:
    """``{type, **options}`` of a built degradation (what a manifest records)."""
    import dataclasses

    kind = next((n for n in DEGRADATIONS.names() if DEGRADATIONS.get(n) is type(d)),
                type(d).__name__)
    return {"type": kind, **dataclasses.asdict(d)}


def create_degradation(spec=None, scale: int = 4):
    """Build a degradation from a config value: ``None`` (bicubic at ``scale``), a type name, a
    task name (:data:`optiqa.data.tasks.TASKS`), or a mapping ``{type: ..., **options}``.
    Size-keeping degradations (noise, JPEG, blur) require ``scale: 1``."""
    if spec is None:
        spec = {"type": "bicubic"}
    elif isinstance(spec, str):
        spec = _task_degradation(spec, scale) or {"type": spec}
    elif not isinstance(spec, dict):
        raise ConfigError(f"degradation must be a name or a mapping, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("type", "bicubic")
    cls = DEGRADATIONS.get(kind)
    fields = set(cls.__dataclass_fields__) - {"scale"}
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise ConfigError(f"degradation {kind}: unknown option(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(sorted(fields))}")
    if not getattr(cls, "keeps_size", True):
        return cls(scale=scale, **spec)
    if scale != 1:
        raise ConfigError(f"degradation {kind} keeps the image size: set scale: 1 (got {scale})")
    return cls(**spec)


def _task_degradation(name: str, scale: int) -> dict | None:
    """The degradation mapping of task preset ``name`` (None if no such task)."""
    from optiqa.data.tasks import TASKS

    if name in DEGRADATIONS or name not in TASKS:
        return None
    task = TASKS.get(name)
    if task.scale != scale:
        raise ConfigError(f"task {name!r} is x{task.scale} but the scale is {scale}")
    return dict(task.degradation)
