"""Stopping a run whose losses or gradients keep going non-finite."""
from __future__ import annotations

import logging

from optiqa.core.errors import OptiqaError


class TrainingDiverged(OptiqaError, RuntimeError):
    """Too many steps with a non-finite loss or gradient."""


class NaNGuard:
    """Counts skipped steps (non-finite loss or gradient) and stops the run after too many."""

    def __init__(self, max_skips: int, logger: logging.Logger | None = None):
        self.max_skips = int(max_skips)
        self.skips = 0
        self.log = logger or logging.getLogger(__name__)

    def skip(self, iteration: int, what: str) -> None:
        self.skips += 1
        self.log.warning("iter %d: non-finite %s, step skipped (%d of at most %d)", iteration,
                         what, self.skips, self.max_skips)
        if self.skips > self.max_skips:
            raise TrainingDiverged(
                f"training stopped at iteration {iteration}: {self.skips} steps had a non-finite "
                f"loss or gradient (train.max_nan_skips = {self.max_skips}); lower the learning "
                "rate, set train.grad_clip, or disable train.bf16, then resume the run")
