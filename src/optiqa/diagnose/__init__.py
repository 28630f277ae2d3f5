"""Why a metric fails as a loss: diagnostics of fidelity metrics used as objectives.

* :mod:`~optiqa.diagnose.recovery`: the recovery test (Ding et al., IJCV 2021);
* :mod:`~optiqa.diagnose.spectrum`: which spatial frequencies a loss gradient pushes;
* :mod:`~optiqa.diagnose.local`: the loss along lines through the reference;
* :mod:`~optiqa.diagnose.synthesis`: MAD competition (Wang & Simoncelli 2008) and
  eigendistortions (Berardino et al. 2017), synthesised by plenoptic (optional dependency);
* :mod:`~optiqa.diagnose.figures` and :mod:`~optiqa.diagnose.outputs`: figures, tables, images.

Typed options in, results out; the ``optiqa diagnose`` command is a thin layer over these.
"""
from optiqa.diagnose.inputs import bicubic_restoration, centre_crop, load_reference
from optiqa.diagnose.local import LineScan, scan_lines
from optiqa.diagnose.recovery import (RecoveryOptions, RecoveryReport, classical_metrics,
                                      run_recovery)
from optiqa.diagnose.spectrum import GradientSpectrum, gradient_spectrum

__all__ = ["RecoveryOptions", "RecoveryReport", "run_recovery", "classical_metrics",
           "GradientSpectrum", "gradient_spectrum", "LineScan", "scan_lines",
           "load_reference", "centre_crop", "bicubic_restoration"]
