"""The evaluator panel: the FR and NR metrics that judge restored images, minus the circular ones.

::

    p = panel(["psnr_y", "ssim_y", "lpips_alex", "dists", "dists_resnet50", "niqe"],
              exclude_for="dists_vgg16", exclude_family=True)
    p.names          # ['psnr_y', 'ssim_y', 'lpips_alex', 'niqe']: no DISTS-style metric
    p.score(sr, hr)  # {'psnr_y': tensor (N,), ..., 'niqe': tensor (N,)}

The rule (:mod:`optiqa.evaluators.circularity`): a model trained with metric M is never judged
by M, with ``exclude_family=True`` by no metric of M's family, and never by a metric sharing a
feature extractor with M or with the discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch

from optiqa.core.errors import ConfigError, InputError, UnknownNameError
from optiqa.evaluators.circularity import exclusion
from optiqa.evaluators.families import FAMILY_RULES, family_of
from optiqa.metrics.base import MetricInfo
from optiqa.metrics.registry import REGISTRY, create_metric


@dataclass(frozen=True)
class Evaluator:
    """One metric of the panel: its name, kind (``fr``/``nr``), orientation and family."""

    name: str
    kind: str
    lower_better: bool
    family: str
    info: MetricInfo = field(repr=False, compare=False)

    @property
    def orientation(self) -> str:
        return self.info.orientation

    @property
    def needs_reference(self) -> bool:
        return self.kind == "fr"


@dataclass
class Panel:
    """The evaluators that remain after the circularity rule, and what was left out and why."""

    evaluators: tuple[Evaluator, ...]
    excluded: dict[str, str]           # name -> reason
    exclude_for: tuple[str, ...] = ()
    exclude_family: bool = False
    _metrics: dict = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.evaluators]

    @property
    def needs_reference(self) -> bool:
        return any(e.needs_reference for e in self.evaluators)

    def metric(self, name: str, device: str | torch.device = "cpu"):
        """The created metric module of one evaluator (created once per device)."""
        key = (name, str(torch.device(device)))
        if key not in self._metrics:
            self._metrics[key] = create_metric(name, device=device)
        return self._metrics[key]

    def score(self, sr: torch.Tensor, hr: torch.Tensor | None = None,
              batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """Per-image scores ``{evaluator: (N,) float tensor on the CPU}`` of restored images.

        ``sr``: restored images ``(N, 3, H, W)`` in [0, 1]; ``hr``: their references (same shape),
        needed when the panel has full-reference evaluators. Each metric runs on ``sr``'s device,
        in batches of ``batch_size`` images (all at once by default), without gradients. Scores
        are in each metric's published orientation (``Evaluator.lower_better``).
        """
        if hr is None and self.needs_reference:
            fr = [e.name for e in self.evaluators if e.needs_reference]
            raise InputError(f"full-reference evaluators {', '.join(fr)} need the reference "
                             "images (hr)")
        n = sr.shape[0]
        step = batch_size or n
        out = {}
        with torch.no_grad():
            for e in self.evaluators:
                m = self.metric(e.name, sr.device)
                parts = []
                for i in range(0, n, step):
                    x = sr[i:i + step]
                    s = m(x, hr[i:i + step].to(sr.device)) if e.needs_reference else m(x)
                    parts.append(s.detach().float().cpu())
                out[e.name] = torch.cat(parts)
        return out

    def describe(self) -> str:
        """A table of the evaluators (kind, orientation, family) and of the excluded ones."""
        from optiqa.core.tables import format_table

        rows = [[e.name, e.kind, e.orientation, e.family] for e in self.evaluators]
        text = format_table(["evaluator", "kind", "orientation", "family"], rows)
        if self.excluded:
            text += "\nexcluded: " + "; ".join(f"{n} ({why})" for n, why in self.excluded.items())
        return text

    def to_dict(self) -> dict:
        return {"evaluators": [{"name": e.name, "kind": e.kind, "lower_better": e.lower_better,
                                "family": e.family} for e in self.evaluators],
                "excluded": dict(self.excluded), "exclude_for": list(self.exclude_for),
                "exclude_family": self.exclude_family}


def _as_names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def excluded_judges(names: Iterable[str], exclude_for: str | Iterable[str] | None = None,
                    exclude_family: bool = False, families=FAMILY_RULES,
                    discriminator_features: str | None = None,
                    extra_terms: Iterable[str] = ()) -> dict[str, str]:
    """``{evaluator: reason}`` of the ``names`` that may not judge a model trained with the
    loss(es) ``exclude_for``, a discriminator on ``discriminator_features`` and the other loss
    terms ``extra_terms`` (``('l1',)`` for a kept ``train.pixel_opt``): the circularity rule
    (:func:`optiqa.evaluators.circularity.exclusion`) as every caller applies it, the panel,
    the analysis, the report and the dry run alike."""
    losses, extra = _as_names(exclude_for), tuple(extra_terms)
    out = {}
    for name in dict.fromkeys(_as_names(names)):
        # the one circularity rule against each loss (the discriminator alone without a loss)
        why = "the training loss" if name in losses else next(
            (w for loss in (losses or ("",)) if (w := exclusion(
                name, loss, discriminator_features, exclude_family, families,
                extra_terms=extra))), None)
        if why:
            out[name] = why
    return out


def panel(names: Iterable[str], exclude_for: str | Iterable[str] | None = None,
          exclude_family: bool = False, families=FAMILY_RULES,
          discriminator_features: str | None = None, extra_terms: Iterable[str] = ()) -> Panel:
    """Build the panel of ``names`` for a model trained with ``exclude_for``.

    ``exclude_for``: the metric (or metrics) of the training loss; each is dropped from the
    panel, and with ``exclude_family=True`` so is every metric of its family (``families``:
    ``(glob, family)`` rules, default :data:`~optiqa.evaluators.families.FAMILY_RULES`).
    Evaluators sharing a feature extractor (backbone and weights) with the loss, or with the
    discriminator's pretrained backbone ``discriminator_features``, are excluded too, and so are
    those of the family of another loss term ``extra_terms`` (:func:`excluded_judges`). Unknown
    names raise :class:`UnknownNameError`; a panel left empty raises :class:`ConfigError`.
    """
    wanted = list(dict.fromkeys(_as_names(names)))
    if not wanted:
        raise ConfigError("the evaluator panel needs at least one metric", option="names")
    infos = {n: REGISTRY.get(n).info for n in wanted}
    losses = _as_names(exclude_for)
    for loss in losses:
        if loss not in REGISTRY:
            raise UnknownNameError("metric", loss, REGISTRY.names(), option="exclude_for")
    excluded = excluded_judges(wanted, losses, exclude_family, families, discriminator_features,
                               extra_terms)
    kept = [Evaluator(name, infos[name].kind, infos[name].lower_better,
                      family_of(name, families), infos[name])
            for name in wanted if name not in excluded]
    if not kept:
        raise ConfigError(f"every evaluator of the panel ({', '.join(wanted)}) is excluded for "
                          f"training loss {', '.join(losses)}", option="names")
    return Panel(tuple(kept), excluded, losses, exclude_family)
