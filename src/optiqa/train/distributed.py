"""Process-group helpers for multi-GPU training under ``torchrun`` (PyTorch DDP).

``torchrun --nproc_per_node N -m optiqa.cli train CONFIG`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` joins the group (NCCL on CUDA, gloo on the CPU, which is
how the tests run two processes). Rank 0 writes every file; the others only compute. Each helper
is a no-op in a single process, so the trainer has one code path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | None, info: DistInfo) -> torch.device:
    """``auto`` (or None): ``cuda:<local_rank>`` when CUDA is present, else the CPU; checked by
    :func:`optiqa.core.device.resolve_device` (a missing device is a one-line ConfigError)."""
    from optiqa.core.device import resolve_device as check

    dev = check(device, local_rank=info.local_rank if info.enabled else 0)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def init_distributed(device: str | None = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        info = DistInfo()
        return info, resolve_device(device, info)
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    dev = resolve_device(device, info)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return info, dev


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_true(flag: torch.Tensor) -> bool:
    """True when the boolean tensor ``flag`` is true on every rank (one tiny all-reduce, then
    the only host synchronisation)."""
    if not _active():
        return bool(flag.item())
    t = (~flag.reshape(1)).float()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return bool(t.item() == 0)


def any_true(flag: bool, device) -> bool:
    """True when ``flag`` is true on any rank (one tiny all-reduce; every rank must call it)."""
    if not _active():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj) -> list:
    """Every rank's ``obj`` in rank order (on every rank)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if _active():
        dist.barrier()


def no_buffer_sync_kwargs() -> dict:
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    params = inspect.signature(DDP.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else \
        {"broadcast_buffers": False}
