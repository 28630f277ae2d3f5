"""Optimizers, learning-rate schedules and gradient norms of the training loop.

Schedules are pure functions of the iteration (no scheduler object with hidden state), so a
resumed run recomputes exactly the learning rate it would have had.
"""
from __future__ import annotations

import math

import torch


def make_optimizer(opts, params, device) -> torch.optim.Optimizer:
    cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[opts.type]
    kw = dict(lr=opts.lr, betas=tuple(opts.betas), weight_decay=opts.weight_decay, eps=opts.eps)
    if device.type == "cuda":
        kw["fused"] = True  # one kernel for all parameters
    return cls(params, **kw)


def lr_at(iteration: int, base_lr: float, total_iter: int, kind: str = "constant",
          milestones=(), gamma: float = 0.5, eta_min: float = 0.0,
          warmup_iter: int = 0) -> float:
    """Learning rate of (1-based) ``iteration``.

    - ``constant``: ``base_lr``;
    - ``step``: ``base_lr * gamma ** #{m in milestones : m < iteration}`` (iterations after a
      milestone run at the reduced rate, as ``MultiStepLR`` stepped once per iteration);
    - ``cosine``: ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t)) / 2`` with ``t`` going
      from 0 at the first iteration after the warm-up to 1 at ``total_iter`` (Loshchilov &
      Hutter, SGDR, ICLR 2017, one period);
    - warm-up (any kind): the rate is multiplied by ``iteration / warmup_iter`` for the first
      ``warmup_iter`` iterations (Goyal et al., 2017, linear warm-up).
    """
    step = iteration - 1  # completed iterations before this one
    if kind == "constant":
        lr = base_lr
    elif kind == "step":
        lr = base_lr * gamma ** sum(1 for m in milestones if m < iteration)
    elif kind == "cosine":
        span = max(1, total_iter - warmup_iter - 1)
        t = min(1.0, max(0.0, (step - warmup_iter) / span))
        lr = eta_min + (base_lr - eta_min) * 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    if warmup_iter > 0 and iteration <= warmup_iter:
        lr *= iteration / warmup_iter
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def grad_norm(params) -> torch.Tensor:
    """Total L2 norm of the gradients (non-finite if any gradient is); no host sync."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norms = torch._foreach_norm(grads)
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def clip_grads(params, max_norm: float, total: torch.Tensor) -> None:
    grads = [p.grad for p in params if p.grad is not None]
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, coef.to(grads[0].device))
