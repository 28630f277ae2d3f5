"""Metric families for the circularity rule, as data.

A model trained with metric M is never judged by M; with ``exclude_family=True`` it is not
judged by any metric of M's family either, because metrics that share their construction are
optimised together (a network trained on DISTS over VGG-16 features also lowers DISTS over
ResNet-50 features far more than the images improve). The families:

=================  ==========================================================================
family             metrics
=================  ==========================================================================
``dists``          ``dists`` and every ``dists_<backbone>`` (the DISTS formula on any backbone)
``lpips``          ``lpips_alex``, ``lpips_vgg``
``ssim``           ``ssim``, ``ssim_y``, ``ms_ssim``, ``cw_ssim``
``pixel``          ``psnr``, ``psnr_y``, ``mse``, ``l1``
one each           ``gmsd``, ``nlpd``, ``fsim``, ``vsi``, ``vif``, ``mad``
one each (NR)      ``niqe``, ``brisque``, ``piqe``; ``pyiqa:<model>`` is its own family
=================  ==========================================================================

NIQE, BRISQUE and PIQE all start from MSCN coefficients but model them differently (a pristine
Gaussian, a trained SVR, block thresholds), so each is its own family; pass your own table to
:func:`optiqa.evaluators.panel` (``families=``) for a stricter grouping. A name that matches no
rule (a metric registered by the user) is its own family.
"""
from __future__ import annotations

import fnmatch

# (glob over metric names, family), first match wins
FAMILY_RULES: tuple[tuple[str, str], ...] = (
    ("dists", "dists"),
    ("dists_*", "dists"),
    ("lpips_*", "lpips"),
    ("ssim", "ssim"),
    ("ssim_y", "ssim"),
    ("ms_ssim", "ssim"),
    ("cw_ssim", "ssim"),
    ("psnr", "pixel"),
    ("psnr_y", "pixel"),
    ("mse", "pixel"),
    ("l1", "pixel"),
)


def family_of(name: str, rules=FAMILY_RULES) -> str:
    """The family of metric ``name`` under ``rules`` (its own name when no rule matches)."""
    for pattern, family in rules:
        if fnmatch.fnmatchcase(name, pattern):
            return family
    return name
