"""optiqa: fidelity metrics as image quality models and as training objectives.

Entry points: :func:`create_metric`, :func:`list_metrics`, :func:`register_metric`,
:mod:`optiqa.backbones`. They are imported on first use, so that ``import optiqa.cli`` (and
``optiqa --help``) does not pay for torch.
"""
from __future__ import annotations

__version__ = "0.2.0"

_LAZY = {
    "create_metric": "optiqa.metrics.registry",
    "list_metrics": "optiqa.metrics.registry",
    "register_metric": "optiqa.metrics.registry",
    "InputError": "optiqa.core.errors",
    "OptiqaError": "optiqa.core.errors",
    "ConfigError": "optiqa.core.errors",
    "WeightsUnavailable": "optiqa.core.errors",
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in ("backbones", "metrics", "nets", "data"):
        import importlib

        return importlib.import_module(f"optiqa.{name}")
    raise AttributeError(f"module 'optiqa' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
