"""Small pieces of the training loop: learning-rate schedules, EMA, the NaN guard, logging.

Schedules are pure functions of the iteration (no scheduler object with hidden state), so a
resumed run recomputes exactly the learning rate it would have had.
"""
from __future__ import annotations

import copy
import logging
import math
import sys

import torch
from torch import nn

from optiqa.errors import OptiqaError


class TrainingDiverged(OptiqaError, RuntimeError):
    """Too many steps with a non-finite loss or gradient."""


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def network_g_spec(cfg) -> dict:
    """``network_g`` with the run's scale filled in (unless the options name their own)."""
    net = dict(cfg.network_g)
    if "scale" not in net and "upscale" not in net:
        net["scale"] = cfg.scale
    return net


def make_optimizer(opts, params, device) -> torch.optim.Optimizer:
    cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[opts.type]
    kw = dict(lr=opts.lr, betas=tuple(opts.betas), weight_decay=opts.weight_decay, eps=opts.eps)
    if device.type == "cuda":
        kw["fused"] = True  # one kernel for all parameters
    return cls(params, **kw)


def no_buffer_sync_kwargs() -> dict:
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    params = inspect.signature(DDP.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else \
        {"broadcast_buffers": False}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA with bf16 support, or a CPU with the
    AVX512-BF16 or AMX-BF16 instructions (Linux flags); elsewhere bf16 is emulated and slow."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_bf16(setting, device: torch.device) -> bool:
    return native_bf16(device) if setting == "auto" else bool(setting)


# --------------------------------------------------------------------------------------------
# learning rate
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# EMA of the generator
# --------------------------------------------------------------------------------------------
class EMA:
    """Exponential moving average of a model's parameters: ``ema = decay * ema + (1 - decay) * p``
    after each optimizer step (Polyak averaging; BasicSR's ``net_g_ema``); buffers are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.model = copy.deepcopy(model).requires_grad_(False).eval()

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_p = [p for p in self.model.parameters()]
        src_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state)


# --------------------------------------------------------------------------------------------
# NaN guard
# --------------------------------------------------------------------------------------------
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
                "rate, set train.grad_clip, or disable train.bf16, then --resume")


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


# --------------------------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------------------------
class TqdmHandler(logging.StreamHandler):
    """Console handler that writes through ``tqdm.write`` so log lines do not break the bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logger(log_file=None, console: bool = True, name: str = "optiqa.train"
                 ) -> logging.Logger:
    """The training logger: INFO to ``log_file`` (appending) and the console; not propagated,
    so the CLI's root configuration does not print each line twice."""
    logger = logging.getLogger(name)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    if log_file is not None:
        fh = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    if console:
        ch = TqdmHandler()
        ch.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(ch)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def format_terms(terms: dict) -> str:
    """``name value`` pairs; 7 significant digits (enough to compare runs)."""
    return " ".join(f"{k} {float(v):.7g}" for k, v in terms.items())
