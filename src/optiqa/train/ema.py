"""Exponential moving average of the generator's weights, with a warm-up of its decay."""
from __future__ import annotations

import copy

import torch
from torch import nn

WARMUP_OFFSET = 10  # decay_t = (1 + t) / (WARMUP_OFFSET + t) before it reaches ``decay``


def warmed_up_decay(decay: float, updates: int, warmup: bool = True) -> float:
    """The decay of update number ``updates + 1`` (``updates`` already made):

        decay_t = min(decay, (1 + t) / (10 + t))

    (TensorFlow's ``ExponentialMovingAverage(num_updates=t)``; the same role as the warm-up of
    timm's ``ModelEmaV3``). Without it an average with ``decay`` 0.999 still holds
    ``0.999^t`` of the *initial* weights after ``t`` updates (74 % after 300), so a short run is
    validated on weights close to its random initialisation. With it the weight left on the
    initial weights after ``t`` updates is ``prod (1+s)/(10+s) = 9! t! / (t+9)!`` (< 1e-3 after
    20 updates) and the average follows the recent weights until ``decay`` takes over
    (from ``t = (10 decay - 1) / (1 - decay)``: 9 989 updates for 0.999).
    """
    if not warmup:
        return float(decay)
    return min(float(decay), (1.0 + updates) / (WARMUP_OFFSET + updates))


class EMA:
    """Exponential moving average of a model's parameters: ``ema = d_t * ema + (1 - d_t) * p``
    after each optimizer step (Polyak averaging; BasicSR's ``net_g_ema``), ``d_t`` from
    :func:`warmed_up_decay`; buffers are copied. :attr:`updates` counts the updates made (saved
    with each checkpoint so that a resumed run continues the same decay sequence)."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay, self.warmup, self.updates = float(decay), bool(warmup), 0
        self.model = copy.deepcopy(model).requires_grad_(False).eval()

    @property
    def current_decay(self) -> float:
        """The decay the next update will use."""
        return warmed_up_decay(self.decay, self.updates, self.warmup)

    @property
    def last_decay(self) -> float:
        """The decay of the latest update (what the log reports; ``decay`` before any)."""
        return warmed_up_decay(self.decay, max(0, self.updates - 1), self.warmup)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.model.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.current_decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def describe(self) -> str:
        """What the averaged weights are, in words, for the log."""
        if not self.warmup:
            return f"EMA of G, decay {self.decay:g} after {self.updates} updates"
        return (f"EMA of G, decay {self.last_decay:.4g} after {self.updates} updates "
                f"(warm-up min({self.decay:g}, (1+t)/(10+t)))")

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state)
