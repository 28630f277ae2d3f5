"""Typed result rows of the analysis: what ``analysis.json`` holds and the report reads.

Every row is a dataclass on :class:`~optiqa.stats.rows.base.Row`: ``to_json`` gives the plain
dict written to ``analysis.json``, ``from_json`` reads it back strictly (a missing or unknown
key is an :class:`~optiqa.core.errors.InputError` naming the row type and the key). The whole
file is one :class:`Analysis`; the statistics build its rows, the report reads them by
attribute, never by string keys.

- :mod:`~optiqa.stats.rows.base`: the :class:`Row` machinery;
- :mod:`~optiqa.stats.rows.tables`: cells, evaluators, exclusions, per-cell means, the
  assessment side, paired tests;
- :mod:`~optiqa.stats.rows.agreement`: groups of settings, rank agreement and its permutation
  tests, the panel, contrasts, the weight sweep, seeds, agreement among evaluators;
- :mod:`~optiqa.stats.rows.human`: the human judgments;
- :mod:`~optiqa.stats.rows.analysis`: the protocol and the top-level :class:`Analysis`;
- :mod:`~optiqa.stats.rows.results`: the other result files the report reads, the assess
  stage's ``assess/<dataset>.json`` and the transfer stage's ``transfer/<name>.json``
  (imported from that module; not part of ``analysis.json``).

Rows defined beside their statistic and reused here: :class:`~optiqa.stats.permutation.
PermutationTest`, :class:`~optiqa.stats.permutation.PanelAgreement`,
:class:`~optiqa.stats.headline.Headline`, :class:`~optiqa.stats.replicates.SeedSpread`,
:class:`~optiqa.stats.incomplete.IncompleteAgreement`,
:class:`~optiqa.stats.multiplicity.TestFamily`.
"""
import importlib

# name -> submodule, imported on first use: the statistics modules that define rows of their own
# (permutation, headline, ...) import ``rows.base`` while the row modules import them
_WHERE = {
    "base": ["Row"],
    "tables": ["AssessmentRow", "CellRow", "DatasetSrcc", "EvaluatorRow", "Exclusion", "Judgment",
               "ModelMean", "OptimizationRow", "PairedTest"],
    "agreement": ["AgreementPoint", "CellLeftOut", "Contrast", "EvaluatorAgreement",
                  "LeaveOneOut", "LeftOut", "Pairwise", "PanelRow", "RankAgreement", "Seeds",
                  "SettingGroup", "SpreadRow", "SweepCurve", "WeightSweep"],
    "human": ["Human", "HumanAgreement", "HumanCrops", "HumanFit", "HumanPair", "HumanPoint",
              "HumanRater", "HumanRun", "HumanVsEvaluator"],
    "analysis": ["Analysis", "DatasetInfo", "Protocol", "Summary", "TestFamilies"],
}
_MODULE = {name: module for module, names in _WHERE.items() for name in names}
__all__ = list(_MODULE)


def __getattr__(name: str):
    if name not in _MODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE[name]}"), name)
