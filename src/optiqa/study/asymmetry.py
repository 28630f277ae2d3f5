"""Moved to :mod:`optiqa.stats.asymmetry` (the analysis is pure statistics: the ``stats`` layer).

An import shim kept for one release, because ``optiqa.study.asymmetry`` was the documented home
of the analysis (``analyze``, ``Cell``, ``Evaluator``, ``OptimizationScores``,
``AssessmentScores``) that users call on their own scores; it will be removed after that
release. Note that :class:`OptimizationScores` now takes the circularity rule as ``rule=``,
and that ``analyze`` returns a typed :class:`optiqa.stats.rows.Analysis` (its ``to_json()`` is
the dict it returned before).
"""
from optiqa.stats.asymmetry import *  # noqa: F401,F403
from optiqa.stats.asymmetry import EvaluatorSpec as Evaluator  # noqa: F401 (renamed EvaluatorSpec)
