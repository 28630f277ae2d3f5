"""Training checkpoints: what is saved with each one, in which order, and how resume finds it.

A checkpoint of iteration ``i`` in a :class:`~optiqa.core.runs.RunFolder` is
``models/net_g_<i>.pth`` (``{'params': G, 'params_ema': EMA of G, 'network_g': {...}, 'scale'}``),
``models/net_d_<i>.pth`` (``{'params': D}``) and ``state/<i>.state``: optimizers, iteration,
NaN-skip count, the data sampler's position and every RNG state (python, numpy, torch CPU, CUDA),
one set per process rank.

Durability: every file is written atomically and durably (:func:`optiqa.core.atomic.
atomic_torch_save`), so a reader (or a resumed run) never sees a truncated checkpoint, whatever
the moment of a crash or ``SIGKILL``. The model files of iteration ``i`` are written *before*
``state/i.state``: a state is *complete* only when the files it names are on disk, and
:func:`find_resume_point` takes the newest state whose files all load. Everything is saved as
tensors and plain Python types so that loads can use ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from optiqa.core.atomic import atomic_torch_save, load_torch
from optiqa.core.runs import RunFolder

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# RNG states as tensors / plain types (weights_only-loadable)
# --------------------------------------------------------------------------------------------
def capture_rng() -> dict:
    """Every global RNG this process uses: python ``random``, numpy, torch CPU and CUDA."""
    version, mt, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            log.warning("CUDA RNG states saved for %d devices, %d present: not restored",
                        len(state["cuda"]), torch.cuda.device_count())


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
def save_checkpoint(run: RunFolder, iteration: int, models: dict[str, dict], state: dict,
                    keep: int | None = None) -> None:
    """Write ``models`` (``{'g': {...}, 'd': {...}}``) then the state of ``iteration``; prune.

    ``state['models']`` is set to the list of model files the state needs (resume checks them).
    """
    for net, payload in models.items():
        atomic_torch_save(payload, run.model_path(net, iteration))
    state = dict(state, iteration=iteration, models=sorted(models))
    atomic_torch_save(state, run.state_path(iteration))
    if keep:
        prune_checkpoints(run, keep)


def prune_checkpoints(run: RunFolder, keep: int) -> list[Path]:
    """Keep the newest ``keep`` states and their models; delete older ones (state first, so no
    state ever names a deleted model) and model files older than the oldest kept state."""
    removed = []
    its = run.state_iterations()
    for it in its[keep:]:
        p = run.state_path(it)
        p.unlink(missing_ok=True)
        removed.append(p)
    kept = its[:keep]
    if kept:
        oldest = min(kept)
        for _net, it, p in run.model_files():
            if it < oldest:
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


@dataclass
class ResumePoint:
    iteration: int
    state: dict
    models: dict[str, dict]   # net -> contents of models/net_<net>_<iteration>.pth


def find_resume_point(run: RunFolder) -> ResumePoint | None:
    """The newest complete checkpoint: a state that loads and whose model files all load.

    Unreadable states or models (which atomic writes should never produce, but a copied or
    damaged folder might) are skipped with a warning, falling back to the previous one.
    """
    for it in run.state_iterations():
        path = run.state_path(it)
        try:
            state = load_torch(path)
            if not isinstance(state, dict) or state.get("iteration") != it:
                raise ValueError("not a training state of this iteration")
            models = {net: load_torch(run.model_path(net, it)) for net in state["models"]}
        except Exception as e:  # noqa: BLE001 - any unreadable file means "not complete"
            log.warning("skipping checkpoint %d: %s: %s", it, type(e).__name__,
                        str(e).splitlines()[0] if str(e) else "")
            continue
        return ResumePoint(it, state, models)
    return None
