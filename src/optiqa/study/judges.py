"""Which evaluators may judge a study cell: the circularity rule
(:mod:`optiqa.evaluators.circularity`) applied to what a cell is trained with.

A cell's loss is its fidelity metric M, plus the adversarial term of its discriminator and,
when it keeps ``train.pixel_opt``, an L1 pixel term. The rule leaves out every evaluator of M's
family (each metric its own family with ``evaluators.exclude_family: false``), every evaluator
sharing a feature extractor with M or with the discriminator's pretrained backbone, and, with a
pixel term, every pixel-family evaluator.

One module for the evaluate stage (which does not score a left-out judgment), the analysis
(which leaves it out of every statistic), the report and the dry run, so that the four apply the
same rule with the same reasons; it sits apart from :mod:`optiqa.study.analysis` so that the
evaluation's code key (:func:`optiqa.core.sources.code_fingerprint`) does not include the
statistics.
"""
from __future__ import annotations


def discriminator_features(cell) -> str | None:
    """The pretrained backbone of a study cell's discriminator (circularity rule), or None."""
    from optiqa.evaluators import discriminator_extractor

    return discriminator_extractor(cell.train_config.get("network_d")) if cell.adversarial \
        else None


def pixel_weight(train_config: dict) -> float:
    """The weight of the L1 pixel term (``train.pixel_opt``) a cell keeps beside its fidelity
    loss (0 when off)."""
    opt = (train_config.get("train") or {}).get("pixel_opt") or {}
    return float(opt.get("weight", 0.0) or 0.0)


def extra_terms(cell) -> tuple[str, ...]:
    """The loss terms a cell has beside its fidelity loss: ``l1`` when it keeps ``pixel_opt``
    (its loss is then M + w L1, so pixel evaluators may not judge it either)."""
    return ("l1",) if pixel_weight(cell.train_config) > 0 else ()


def excluded_evaluators(cfg, cell) -> dict[str, str]:
    """``{evaluator: reason}`` of the evaluators of ``cfg.evaluators.metrics`` that may not
    judge study cell ``cell`` (None: a baseline, which no loss trained, so every evaluator
    judges it): :func:`optiqa.evaluators.excluded_judges`, the one circularity rule, with the
    cell's discriminator and its other loss terms."""
    from optiqa.evaluators import excluded_judges

    if cell is None:
        return {}
    return excluded_judges(cfg.evaluators.metrics, cell.fidelity, cfg.evaluators.exclude_family,
                           discriminator_features=discriminator_features(cell),
                           extra_terms=extra_terms(cell))
