"""Restoration tasks: named presets of a degradation and a scale, kept as data.

A task is what a study puts on its grid: ``TASKS.get('deblur_motion')`` gives the scale and the
degradation mapping (``{type, **options}`` of :data:`optiqa.data.task_degradations.DEGRADATIONS`).
In a training config either name the task as the degradation (``datasets.train.degradation:
deblur_motion`` with ``scale: 1``) or apply :func:`task_overrides` (``scale`` and the train/val
degradations). Test sets of a task are made once from HR folders by
:func:`optiqa.data.testsets.make_testset`. Users add their own with ``TASKS.register``.

=====================  =====  ==================================================================
task                   scale  degradation
=====================  =====  ==================================================================
``sr_x2/x3/x4``        2-4    MATLAB bicubic downscaling (the classical SR benchmark)
``denoise_sigma15``    1      AWGN sigma 15/255, not clipped (DnCNN / SwinIR colour denoising);
``..25``, ``..50``            likewise sigma 25, 50
``jpeg_q10 .. q40``    1      Pillow JPEG at quality 10, 20, 30, 40 (4:2:0)
``deblur_gaussian``    1      Gaussian blur, sigma one of 1.0, 2.0, 3.0 px per image, 19x19
                              kernel, + AWGN sigma 2.55/255 (1%), 8-bit
``deblur_motion``      1      camera-shake motion blur (Boracchi & Foi 2012 trajectories,
                              length U(16, 48) px, anxiety 0.005 as DeblurGAN; PSFs of about
                              7-33 px) + AWGN sigma 2.55/255, 8-bit
``realsr_x4``, ``_x2`` 4, 2   Real-ESRGAN second-order degradation (official x4plus ranges)
=====================  =====  ==================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

from optiqa.core.registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    name: str
    scale: int
    degradation: dict = field(hash=False)
    summary: str = ""
    reference: str = ""


_DNCNN = "Zhang et al., DnCNN, IEEE TIP 2017; SwinIR (Liang et al., ICCVW 2021) colour denoising"
_ARCNN = "Dong et al., ARCNN, ICCV 2015; SwinIR JPEG artefact removal"
_BF = ("Boracchi & Foi, Modeling the performance of image restoration from motion blur, "
       "IEEE TIP 2012")
_REAL = "Wang et al., Real-ESRGAN, ICCVW 2021 (options/train_realesrgan_x4plus.yml)"

_PRESETS = [
    TaskSpec(f"sr_x{s}", s, {"type": "bicubic"}, f"bicubic x{s} super-resolution",
             "MATLAB imresize; EDSR/RCAN/SwinIR benchmark protocol") for s in (2, 3, 4)
] + [
    TaskSpec(f"denoise_sigma{s}", 1, {"type": "gaussian_noise", "sigma": s},
             f"colour denoising, AWGN sigma {s}/255 (not clipped)", _DNCNN) for s in (15, 25, 50)
] + [
    TaskSpec(f"jpeg_q{q}", 1, {"type": "jpeg", "quality": q},
             f"JPEG artefact removal, quality {q}", _ARCNN) for q in (10, 20, 30, 40)
] + [
    TaskSpec("deblur_gaussian", 1,
             {"type": "gaussian_blur", "sigma": [1.0, 2.0, 3.0], "noise_sigma": 2.55},
             "Gaussian deblurring, sigma 1/2/3 px, 1% noise",
             "non-blind Gaussian deconvolution benchmarks (kernel saved per test image)"),
    TaskSpec("deblur_motion", 1,
             {"type": "motion_blur", "length": [16.0, 48.0], "anxiety": 0.005,
              "noise_sigma": 2.55},
             "camera-shake motion deblurring, path 16-48 px, anxiety 0.005, 1% noise",
             _BF + "; anxiety 0.005 as DeblurGAN (Kupyn et al., CVPR 2018)"),
] + [
    TaskSpec(f"realsr_x{s}", s, {"type": "realesrgan"},
             f"real-world SR x{s}, Real-ESRGAN degradations", _REAL) for s in (4, 2)
]

TASKS: Registry[TaskSpec] = Registry("task", {t.name: t for t in _PRESETS})


def get_task(task) -> TaskSpec:
    """A :class:`TaskSpec` from a name or a spec (a spec passes through)."""
    return task if isinstance(task, TaskSpec) else TASKS.get(task)


def task_overrides(task) -> dict:
    """Training-config overrides (dotted keys) that make a run learn ``task``: its scale and
    the degradation of the training and validation data."""
    spec = get_task(task)
    return {"scale": spec.scale,
            "datasets.train.degradation": dict(spec.degradation),
            "datasets.val.degradation": dict(spec.degradation)}
