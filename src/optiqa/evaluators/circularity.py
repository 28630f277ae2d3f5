"""The circularity rule: which evaluator may judge which trained model (the one place it lives).

A model trained with fidelity loss M (and, in an adversarial cell, discriminator D) is **not**
judged by evaluator E when

1. E is M itself, or (``exclude_family``) E is of M's family
   (:data:`~optiqa.evaluators.families.FAMILY_RULES`): metrics built alike are optimised
   together; or
2. E shares a **feature extractor** (backbone architecture *and* weights) with M: a network
   trained to match VGG-16 features (``dists_vgg16``) also matches them under another formula
   (``lpips_vgg``), so E would measure the loss, not the image; or
3. E shares a feature extractor with D: a generator trained against a discriminator built on
   ImageNet EfficientNet-Lite0 features learns to move those very features, which
   ``dists_effnet_lite0`` then reads.

The feature extractors, as data (:data:`FEATURE_RULES`, first match wins; ``*`` in the value is
what the glob's ``*`` matched; weights are part of the name: ``vgg16`` is ImageNet VGG-16,
``vgg16_r`` the fixed-seed random VGG-16-R, so the two share nothing):

==================  ================================  =========================================
metric              extractor                          why
==================  ================================  =========================================
``dists``           ``vgg16``                          the published DISTS: ImageNet VGG-16
``dists_<b>``       ``<b>``                            DISTS formula on backbone ``<b>``
``lpips_vgg``       ``vgg16``                          LPIPS v0.1 on ImageNet VGG-16 features
``lpips_alex``      ``alexnet``                        LPIPS v0.1 on ImageNet AlexNet features
others              none                               hand-made features (SSIM, GMSD, NIQE, ...)
==================  ================================  =========================================

A discriminator's extractor is its optiqa backbone when it starts from pretrained weights
(``network_d.pretrained``, default true); scratch discriminators (PatchGAN, U-Net) and
randomly initialised backbones share nothing.

Every output of a study applies this rule through :func:`exclusion`: the analysis leaves the
judgment out of every statistic, and the report (HTML, Markdown, CSV) and ``analysis.json`` show
the words ``excluded (circular)`` in its place, never the number.
"""
from __future__ import annotations

import fnmatch
from typing import Mapping

from optiqa.evaluators.families import FAMILY_RULES, family_of

# (glob over metric names, feature extractor), first match wins
FEATURE_RULES: tuple[tuple[str, str], ...] = (
    ("dists", "vgg16"),
    ("dists_*", "*"),
    ("lpips_vgg", "vgg16"),
    ("lpips_alex", "alexnet"),
)
EXCLUDED_MARK = "excluded (circular)"


def feature_extractor(metric: str, rules=FEATURE_RULES) -> str | None:
    """The backbone (with its weights) whose features ``metric`` compares, or None."""
    for pattern, extractor in rules:
        if fnmatch.fnmatchcase(metric, pattern):
            if "*" in extractor:
                prefix = pattern.split("*")[0]
                return extractor.replace("*", metric[len(prefix):])
            return extractor
    return None


def discriminator_extractor(network_d: Mapping | None) -> str | None:
    """The pretrained backbone a discriminator is built on (None: scratch or random init)."""
    if not network_d:
        return None
    from optiqa.nets.discriminators import describe_discriminator

    backbone = describe_discriminator(network_d)["backbone"]
    if backbone is None or not network_d.get("pretrained", True):
        return None
    return backbone


def circular_reason(evaluator: str, evaluator_family: str, evaluator_features: str | None,
                    fidelity: str, fidelity_family: str, fidelity_features: str | None,
                    discriminator_features: str | None = None,
                    extra_families: tuple[str, ...] = ()) -> str | None:
    """The rule on resolved families and extractors: why the judgment is circular, or None.

    ``extra_families``: the families of the objective's other loss terms (an L1 pixel term kept
    beside the fidelity loss): an evaluator of such a family measures a term the model was
    optimised for, so it may not judge it either (rule 1 applied to every term)."""
    if evaluator == fidelity:
        return "the training loss"
    if evaluator_family == fidelity_family:
        return f"family {fidelity_family!r} of the training loss {fidelity}"
    if evaluator_features is not None and evaluator_features == fidelity_features:
        return f"shares the {evaluator_features} features of the training loss {fidelity}"
    if evaluator_features is not None and evaluator_features == discriminator_features:
        return f"shares the {evaluator_features} features of the discriminator"
    if evaluator_family in extra_families:
        return (f"its objective also has a {evaluator_family}-family term; {evaluator} is of "
                "that family")
    return None


def family(metric: str, exclude_family: bool = True, families=FAMILY_RULES) -> str:
    """The family the rule compares: the metric's family, or the metric itself when
    ``exclude_family`` is off (each metric its own family)."""
    return family_of(metric, families) if exclude_family else metric


def exclusion(evaluator: str, fidelity: str, discriminator_features: str | None = None,
              exclude_family: bool = True, families=FAMILY_RULES,
              features=FEATURE_RULES, extra_terms: tuple[str, ...] = ()) -> str | None:
    """Why ``evaluator`` may not judge a model trained with ``fidelity`` (and a discriminator on
    ``discriminator_features``, and the other loss terms ``extra_terms``, e.g. ``('l1',)`` for a
    kept pixel term), or None when it may. The reason names the rule that applies.
    With ``exclude_family=False`` each metric is its own family (the extractor rule stays)."""
    def fam(name):
        return family(name, exclude_family, families)
    return circular_reason(evaluator, fam(evaluator), feature_extractor(evaluator, features),
                           fidelity, fam(fidelity), feature_extractor(fidelity, features),
                           discriminator_features, tuple(fam(t) for t in extra_terms))
