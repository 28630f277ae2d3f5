"""Reusing the reference side of a metric across the many distortions of one reference.

IQA databases distort each reference many times (KADID-10k: 125 times). Metrics whose reference
side is costly implement :meth:`~optiqa.metrics.base.FRMetric.prepare_reference` (DISTS: the
backbone features, half of every pair's work; SSIM: the reference's windowed moments); the
benchmark prepares each reference once and scores each batch of its distortions against it,
through :meth:`~optiqa.metrics.base.FRMetric.reference_scorer`, which validates inputs exactly as
calling the metric does.
"""
from __future__ import annotations

import torch


class ReferenceReuse:
    """Score ``(x, ref)`` batches that share one reference, preparing each reference once."""

    def __init__(self, metric):
        self.metric = metric
        self._key = None
        self._score = None

    def __call__(self, x: torch.Tensor, ref: torch.Tensor, ref_key, chunk: int | None = None
                 ) -> torch.Tensor:
        """``ref`` must hold the same reference image in every row (the batch sampler does this);
        ``x`` is scored ``chunk`` images at a time (default: all at once)."""
        if ref_key != self._key:
            self._score = self.metric.reference_scorer(ref[:1])
            self._key = ref_key
        chunk = chunk or x.shape[0]
        return torch.cat([self._score(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])


class ReferenceCache:
    """Prepared references kept across calls: the evaluate stage scores every model's output of
    a test image against the same ground truth, so each full-reference evaluator's share of the
    reference (DISTS: the backbone's features of it, about half of every score; FSIM: its phase
    congruency; SSIM: its windowed moments) is done once per process instead of once per model.

    An entry is reused only when the reference is equal, element for element, to the one it was
    prepared from (so a key can never give another image's scores). Prepared states are kept up
    to ``budget_bytes`` in all (the first ones prepared stay; past the budget a reference is
    prepared for that call and not kept), so a large test set costs no more memory than that.
    Scores equal ``metric(x, ref)`` up to float rounding (:meth:`FRMetric.reference_scorer`).
    """

    def __init__(self, budget_bytes: int = 1 << 30):
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._entries: dict = {}

    def __call__(self, name: str, metric, key, x: torch.Tensor, ref: torch.Tensor
                 ) -> torch.Tensor:
        """``metric(x, ref)`` for one reference ``ref (1, 3, H, W)`` known under ``key``."""
        entry = self._entries.get((name, key))
        if entry is not None and entry[0].shape == ref.shape and torch.equal(entry[0], ref):
            return entry[1](x)
        score = metric.reference_scorer(ref)
        size = _nbytes(score) + ref.numel() * ref.element_size()
        if entry is None and self.used_bytes + size <= self.budget_bytes:
            self._entries[(name, key)] = (ref.clone(), score)
            self.used_bytes += size
        return score(x)


def _nbytes(score) -> int:
    """Bytes of the tensors a :meth:`reference_scorer` closure holds (its prepared state)."""
    seen, total, stack = set(), 0, [c.cell_contents for c in (score.__closure__ or ())]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return total
