"""One object per trained network, with the ways the step calls it as named attributes.

A GAN step calls the discriminator in three ways, and mixing them up silently breaks DDP or R1:

- ``forward``: the network's own step. Under ``torchrun`` the DistributedDataParallel wrapper
  (its backward all-reduces the gradients that its optimizer then applies), under
  ``train.compile`` compiled;
- ``frozen_forward``: the bare module (compiled under ``train.compile``), for D inside the
  generator step. D's parameters get no gradient there, so DDP's gradient hooks must not run
  (they would wait for an all-reduce that never comes);
- ``synced``: the DDP wrapper never compiled, for R1's double backward
  (:func:`optiqa.train.gan.r1_forward`), which ``torch.compile`` does not support.

``module`` is the bare network (what is saved, loaded, averaged by the EMA and fingerprinted),
``params`` its trainable parameters (what its optimizer steps; frozen backbones stay out).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from optiqa.train.distributed import no_buffer_sync_kwargs


@dataclass
class TrainedNet:
    module: nn.Module
    params: list
    synced: nn.Module
    forward: Callable
    frozen_forward: Callable


def wrap(module: nn.Module, params: list, device: torch.device, distributed: bool,
         compile: bool, sync_buffers: bool = True) -> TrainedNet:
    """``module`` with its DDP wrapper (``distributed``) and compiled forwards (``compile``).
    ``sync_buffers=False``: no buffer broadcast before each forward (generators have no
    batch-norm, so there is nothing to broadcast)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    synced = module
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        synced = DDP(module, device_ids=ids,
                     **({} if sync_buffers else no_buffer_sync_kwargs()))
    forward, frozen_forward = synced, module
    if compile:
        forward, frozen_forward = torch.compile(synced), torch.compile(module)
    return TrainedNet(module, params, synced, forward, frozen_forward)
