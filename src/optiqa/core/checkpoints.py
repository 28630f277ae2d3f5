"""Reading weight files: one reader, one unwrapping rule, one mismatch report, one error type.

Checkpoints come in many wrappings: our run folders and BasicSR save ``{'params': ...,
'params_ema': ...}``, SwinIR's releases ``{'params': ...}`` or ``{'params_ema': ...}``, other
code ``{'state_dict': ...}`` or ``{'model': ...}``, many a bare state dict; models saved under
DDP prefix every key with ``module.``. :func:`unwrap_state_dict` turns all of them into a plain
``{name: tensor}``; :func:`match_state_dict` compares it with a model's own and raises one
:class:`CheckpointError` that lists the first missing, unexpected and differently shaped keys.
Loads always use ``torch.load(..., weights_only=True)``: no code from a file ever runs.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from optiqa.core.errors import ConfigError

# wrappers looked for by ``key='auto'``, in order: the EMA weights first (what BasicSR-style
# runs and the official SwinIR GAN releases evaluate with)
AUTO_KEYS = ("params_ema", "params", "state_dict", "model")
SHOWN_KEYS = 4  # keys named per kind of mismatch


class CheckpointError(ConfigError):
    """A weight file that cannot be read, or whose tensors do not fit the model."""


def read_checkpoint(path: str | os.PathLike) -> Mapping:
    """The contents of a ``.pth``/``.pt``/``.safetensors`` file, read on the CPU safely.

    Raises :class:`CheckpointError` naming the file when it is missing, truncated, not a torch
    file, or a pickle that needs code to load.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, pickled code objects, not a torch file
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {first})"
                              ) from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a state dict or a mapping of them, got "
                              f"{type(state).__name__}")
    return state


def unwrap_state_dict(state: Mapping, key: str = "auto", source: str = "checkpoint"
                      ) -> tuple[dict, str | None]:
    """``(state dict, wrapper key used)`` from any of the wrappings in the module docstring.

    ``key='auto'`` takes the first of :data:`AUTO_KEYS` that holds a mapping, else the mapping
    itself when its values are tensors (wrapper ``None``); another ``key`` names the wrapper
    (``params`` to evaluate the raw weights instead of the EMA). DDP's ``module.`` prefixes are
    removed; non-tensor entries (metadata saved beside the weights) are dropped.
    """
    import torch

    if key != "auto":
        inner = state.get(key)
        if not isinstance(inner, Mapping):
            raise CheckpointError(f"{source} has no {key!r} entry (it has: "
                                  f"{', '.join(map(str, list(state)[:8]))})")
        used, params = key, inner
    else:
        used = next((k for k in AUTO_KEYS if isinstance(state.get(k), Mapping)), None)
        params = state[used] if used else state
    tensors = {str(k).removeprefix("module."): v for k, v in params.items()
               if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source} holds no parameters (keys: "
                              f"{', '.join(map(str, list(state)[:8]))})")
    return tensors, used


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more


def mismatch_report(params: Mapping, expected: Mapping, strict: bool = True) -> list[str]:
    """The problems of loading ``params`` into a model whose state dict is ``expected``.

    Missing and unexpected keys count only when ``strict``; shape mismatches always do.
    """
    problems = []
    missing = [k for k in expected if k not in params and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in params if k not in expected]
    shapes = [f"{k} {tuple(params[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in params and tuple(params[k].shape) != tuple(v.shape)]
    for what, items, counts in (("missing", missing, strict), ("unexpected", unexpected, strict),
                                ("shape mismatch (file vs model)", shapes, True)):
        if items and counts:
            problems.append(f"{what}: {_listed(items)}")
    return problems


def match_state_dict(params: Mapping, expected: Mapping, strict: bool = True,
                     what: str = "the model", source: str = "checkpoint") -> dict:
    """``params`` restricted to ``expected``'s keys, or :class:`CheckpointError` listing every
    kind of mismatch (``what`` names the model, ``source`` the file) in one message."""
    problems = mismatch_report(params, expected, strict)
    if problems:
        raise CheckpointError(f"{source} does not fit {what}: " + "; ".join(problems))
    return {k: params[k] for k in expected if k in params}


def load_into(model, params: Mapping, strict: bool = True, what: str | None = None,
              source: str = "checkpoint") -> int:
    """Check ``params`` against ``model`` (:func:`match_state_dict`), then load; returns the
    number of tensors loaded."""
    matched = match_state_dict(params, model.state_dict(), strict,
                               what or type(model).__name__, source)
    model.load_state_dict(matched, strict=False)
    return len(matched)
