"""The evaluator panel: which FR and NR metrics judge restored images, without circularity.

:func:`panel` builds a :class:`Panel` from metric names and the training loss; the panel scores
restored images (and their references for full-reference evaluators) per image. Families are
data: :mod:`optiqa.evaluators.families`.
"""
from optiqa.evaluators.families import FAMILY_RULES, family_of
from optiqa.evaluators.panel import Evaluator, Panel, panel

__all__ = ["panel", "Panel", "Evaluator", "FAMILY_RULES", "family_of"]
