"""The one place that turns a device name into a ``torch.device``, and says why it cannot.

Accepted names: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda``, ``cuda:N`` and
``mps`` (Apple GPUs). An unknown name, or a device this machine does not have, is a
:class:`~optiqa.core.errors.ConfigError` that lists what is available, instead of a traceback from
deep inside torch.
"""
from __future__ import annotations

import re

from optiqa.core.errors import ConfigError

DEVICE_FORMS = ("auto", "cpu", "cuda", "cuda:N", "mps")
_NAME = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def available_devices() -> list[str]:
    """What this machine offers, e.g. ``['cpu']`` or ``['cpu', 'cuda:0', 'cuda:1']``."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device=None, local_rank: int | None = None):
    """``device`` (a name, a ``torch.device`` or None = ``auto``) as an available ``torch.device``.

    ``cuda`` without an index is ``cuda:<local_rank>`` when ``local_rank`` is given (one GPU per
    process under torchrun), else the current CUDA device. Raises :class:`ConfigError` for a
    name torch does not know or a device this machine lacks (the message names the device and
    what is available, so no ``option`` is attached).
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    m = _NAME.match(name)
    available = available_devices()
    if m is None:
        raise ConfigError(f"unknown device {device!r}; valid forms: {', '.join(DEVICE_FORMS)} "
                          f"(available on this machine: {', '.join(available)})")
    kind, index = m.group(1), m.group(2)
    if kind == "cpu":
        if index not in (None, "0"):
            raise ConfigError(f"device {device!r}: the CPU has no index (use 'cpu')")
        return torch.device("cpu")
    if kind == "mps":
        if "mps" not in available:
            raise _unavailable(device, available)
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise _unavailable(device, available)
    if index is None and local_rank is not None:
        index = local_rank
    if index is not None and int(index) >= torch.cuda.device_count():
        raise _unavailable(device, available)
    return torch.device("cuda", int(index)) if index is not None else torch.device("cuda")


def _unavailable(device, available) -> ConfigError:
    return ConfigError(f"device {str(device)!r} is not available on this machine "
                       f"(available: {', '.join(available)})")


def device_name(device=None) -> str:
    """The checked device as a string (``auto`` resolved): what a command passes on."""
    return str(resolve_device(device))
