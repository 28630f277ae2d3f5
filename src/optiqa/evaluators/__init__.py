"""The evaluator panel: which FR and NR metrics judge restored images, without circularity.

:mod:`optiqa.evaluators.circularity` holds the circularity rule (families and shared feature
extractors); :func:`panel` builds a :class:`Panel` from metric names and the training loss; the
panel scores restored images (and their references for full-reference evaluators) per image.
Families are data: :mod:`optiqa.evaluators.families`.
"""
from optiqa.evaluators.circularity import (EXCLUDED_MARK, FEATURE_RULES, discriminator_extractor,
                                          exclusion, feature_extractor)
from optiqa.evaluators.families import FAMILY_RULES, family_of
from optiqa.evaluators.panel import Evaluator, Panel, excluded_judges, panel

__all__ = ["panel", "excluded_judges", "Panel", "Evaluator", "FAMILY_RULES", "family_of", "FEATURE_RULES",
           "feature_extractor", "discriminator_extractor", "exclusion", "EXCLUDED_MARK"]
