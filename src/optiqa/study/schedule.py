"""The order in which a study's cells are taken: the most expensive first.

When several processes share the cells (:mod:`optiqa.study.pool`), the stage ends when the last
cell ends. Cells taken in the config's order leave the most expensive ones (the built-in
example's VGG-16 DISTS losses, listed last) to the end, where one process trains the last of
them while the others have nothing left; taken longest first, the last cells are the cheapest
and the processes finish close together (the greedy "longest processing time first" rule of
list scheduling: at most 4/3 of the optimal makespan, Graham, SIAM J. Appl. Math. 17, 1969).

A cell's cost is estimated without training it, as the floating-point operations
(:class:`torch.utils.flop_counter.FlopCounterMode`) of what differs between cells in one
training step on one crop of the training size: the fidelity loss on an (output, reference) pair
and, with a discriminator, three of its forward passes (the real and the generated crop for its
own update, the generated one again for the generator's adversarial term). The generator is the
same for every cell of a task and is left out. Only the order uses the estimate: it changes
which process trains a cell and when, never a result (each cell runs on one torch thread).

The estimate builds every loss network and discriminator (about 3-4 s of CPU for the example),
so the runner hands its order to the pool's workers (:func:`order_env`, in their environment)
instead of each worker computing it again while the runner assesses beside it. A worker uses
it only for the very cells (names and training configurations) it was computed for.
"""
from __future__ import annotations

import functools

# discriminator forward passes per training step (see the module docstring)
DISCRIMINATOR_PASSES = 3
ORDER_ENV = "OPTIQA_CELL_ORDER"


def _flops(fn) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=None)
def fidelity_flops(metric: str, size: int) -> int:
    """FLOPs of ``metric``'s loss on one pair of ``size`` x ``size`` RGB crops (0 for losses
    without convolutions or matrix products, such as L1)."""
    import torch

    from optiqa.metrics import create_metric

    m = create_metric(metric)
    gen = torch.Generator().manual_seed(0)
    x, ref = torch.rand(2, 1, 3, size, size, generator=gen)
    return _flops(lambda: m.loss(x, ref))


def discriminator_flops(network_d: dict, size: int) -> int:
    """FLOPs of one forward pass of the discriminator ``network_d`` on one ``size``-px crop
    (built without pretrained weights: the count does not depend on them)."""
    return _discriminator_flops(_frozen(network_d), size)


@functools.lru_cache(maxsize=None)
def _discriminator_flops(frozen, size: int) -> int:
    import json

    import torch

    from optiqa.nets import create_discriminator
    from optiqa.transfer.init import discriminator_backbone_name

    opts = json.loads(frozen)
    d_type = opts.pop("type")
    if discriminator_backbone_name({"type": d_type, **opts}):
        opts["pretrained"] = False
    model = create_discriminator(d_type, **opts).eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return _flops(lambda: model(x))


def _frozen(mapping: dict) -> str:
    import json

    return json.dumps(mapping, sort_keys=True, default=str)


def cell_cost(cell) -> int:
    """The estimated FLOPs of one training step of ``cell`` that differ between cells."""
    data = (cell.train_config.get("datasets") or {}).get("train") or {}
    size = int(data.get("gt_size") or 64)
    batch = int(data.get("batch_size") or 1)
    cost = fidelity_flops(cell.fidelity, size)
    net_d = cell.train_config.get("network_d")
    if cell.adversarial and net_d:
        cost += DISCRIMINATOR_PASSES * discriminator_flops(net_d, size)
    total = int((cell.train_config.get("train") or {}).get("total_iter") or 1)
    return cost * batch * total


def longest_first(cells) -> list:
    """``cells`` ordered by :func:`cell_cost`, the most expensive first; equal costs keep the
    config's order (a stable sort), so every process computes the same order (a pool worker
    takes it from its runner: :func:`order_env`)."""
    cells = list(cells)
    given = _handed_order(cells)
    if given is not None:
        return given
    costs = {c.name: cell_cost(c) for c in cells}
    return sorted(cells, key=lambda c: -costs[c.name])


def _cells_key(cells) -> str:
    from optiqa.core.hashing import stable_hash

    return stable_hash([[c.name, c.train_config] for c in cells])


def order_env(cells) -> dict[str, str]:
    """What the runner adds to its pool workers' environment: :func:`longest_first` of
    ``cells``, under a hash of their names and training configurations."""
    import json

    return {ORDER_ENV: json.dumps({"cells": _cells_key(cells),
                                   "order": [c.name for c in longest_first(cells)]})}


def _handed_order(cells) -> list | None:
    """The order of :data:`ORDER_ENV` when it was computed for exactly ``cells``, else None."""
    import json
    import os

    text = os.environ.get(ORDER_ENV)
    if not text:
        return None
    try:
        given = json.loads(text)
        by_name = {c.name: c for c in cells}
        if (given["cells"] != _cells_key(cells) or len(given["order"]) != len(by_name)
                or set(given["order"]) != set(by_name)):
            return None
        return [by_name[n] for n in given["order"]]
    except (ValueError, KeyError, TypeError):
        return None
