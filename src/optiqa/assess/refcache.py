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
