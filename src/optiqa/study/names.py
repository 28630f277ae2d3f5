"""Run names: the one module that builds and parses the names of a study's runs and results.

A name is made of parts joined by ``__`` (a separator no task, metric or discriminator label may
contain: :mod:`optiqa.study.config` checks it), so that every name is also a folder name::

    <task>__<fidelity>__none[__s<seed>]                 a cell without a discriminator
    <task>__<fidelity>__<disc>__w<weight>[__s<seed>]    a cell with one (sr_x4__ssim__patch__w0.005)
    <task>__<fidelity>__<disc>__r<ratio>[__s<seed>]     ... with a relative weight (adversarial.relative)
    pretrain__<task>                                    the study's shared L1 pre-training
    bicubic__<task> / input__<task>                     the model-free baseline (SR / scale 1)
    start__<task>                                       a generator file every cell starts from
    <kind>__<backbone>__<init>                          a transfer experiment (imagenet, random)
    <kind>__<backbone>__gan__<cell>                     ... from the discriminator of a cell
    zeroshot__<cell>                                    zero-shot scores of a cell's discriminator

Nothing else formats or splits a name; the study folder (:class:`optiqa.study.folder.StudyFolder`)
turns names into paths.
"""
from __future__ import annotations

SEP = "__"
NONE = "none"
PRETRAIN = "pretrain"
BICUBIC = "bicubic"
INPUT = "input"
START = "start"
ZEROSHOT = "zeroshot"
GAN = "gan"
# the prefixes of runs that are not cells of the grid, in the order the report shows them
BASELINES = (BICUBIC, INPUT, PRETRAIN, START)


def weight_label(weight: float, relative: bool = False) -> str:
    """``0.005 -> 'w0.005'``, ``1e-05 -> 'w1e-05'``: short, exact and file-name safe; a ratio of
    gradient norms (``adversarial.relative``) ``0.1 -> 'r0.1'``, so that a name never leaves
    open which of the two a number is."""
    return f"{'r' if relative else 'w'}{weight:g}"


def cell_name(task: str, fidelity: str, discriminator: str, weight: float | None,
              seed: int | None = None, relative: bool = False) -> str:
    """``<task>__<loss>__<disc>__w<weight>[__s<seed>]`` (``__none`` without a discriminator;
    ``__r<ratio>`` for a relative weight)."""
    parts = [task, fidelity, discriminator]
    if discriminator != NONE:
        parts.append(weight_label(weight, relative))
    if seed is not None:
        parts.append(f"s{seed}")
    return SEP.join(parts)


def baseline_name(kind: str, task: str) -> str:
    """``<kind>__<task>`` for ``kind`` in :data:`BASELINES`."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline kind {kind!r}; expected one of {', '.join(BASELINES)}")
    return f"{kind}{SEP}{task}"


def pretrain_name(task: str) -> str:
    return baseline_name(PRETRAIN, task)


def start_name(task: str) -> str:
    return baseline_name(START, task)


def degraded_name(task: str, scale: int) -> str:
    """The model-free baseline of a task: bicubic upsampling for SR (``bicubic__<task>``), the
    degraded input itself for scale-1 tasks (``input__<task>``)."""
    return baseline_name(BICUBIC if scale > 1 else INPUT, task)


def parse_baseline(name: str) -> tuple[str, str] | None:
    """``(kind, task)`` of a baseline's name, None for any other name."""
    kind, sep, task = name.partition(SEP)
    return (kind, task) if sep and kind in BASELINES and task and SEP not in task else None


def is_degraded(name: str) -> bool:
    """True for the model-free baseline (``bicubic__<task>``, ``input__<task>``)."""
    parsed = parse_baseline(name)
    return parsed is not None and parsed[0] in (BICUBIC, INPUT)


def transfer_name(kind: str, backbone: str, init: str, cell: str | None = None) -> str:
    """``<kind>__<backbone>__<init>``, or ``<kind>__<backbone>__gan__<cell>`` for a
    discriminator's backbone (``init == 'gan'``)."""
    if init == GAN:
        if not cell:
            raise ValueError("a gan-initialised transfer experiment needs its cell's name")
        return SEP.join([kind, backbone, GAN, cell])
    return SEP.join([kind, backbone, init])


def parse_transfer_gan(name: str) -> tuple[str, str] | None:
    """``(experiment without its cell, cell)`` of a gan-initialised transfer name, else None."""
    head, sep, cell = name.partition(f"{SEP}{GAN}{SEP}")
    return (head, cell) if sep else None


def zeroshot_name(cell: str) -> str:
    return f"{ZEROSHOT}{SEP}{cell}"


def parse_zeroshot(name: str) -> str | None:
    """The cell of a ``zeroshot__<cell>`` name, else None."""
    prefix = f"{ZEROSHOT}{SEP}"
    return name[len(prefix):] if name.startswith(prefix) else None


def lock_name(stage: str, run: str) -> str:
    """The lock file's name of one stage working on one run."""
    return f"{stage}{SEP}{run}.lock"


def valid_part(label: str) -> bool:
    """True when ``label`` can be one part of a name (no separator, no path)."""
    return SEP not in str(label) and "/" not in str(label)
