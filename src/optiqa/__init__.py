"""optiqa: fidelity metrics as image quality models and as training objectives.

Entry points: :func:`create_metric`, :func:`list_metrics`, :mod:`optiqa.backbones`.
"""
from optiqa.errors import InputError, OptiqaError, WeightsUnavailable
from optiqa.metrics import create_metric, list_metrics

__version__ = "0.1.0"
__all__ = ["create_metric", "list_metrics", "InputError", "OptiqaError", "WeightsUnavailable",
           "__version__"]
