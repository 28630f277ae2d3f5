"""Test helpers: fixed-seed random "stand-in" weight files for backbones.

Pretrained weights cannot be downloaded in the offline test suite. :func:`standin_weights` writes
random weights, drawn with a fixed seed, into a temporary ``$OPTIQA_WEIGHTS`` folder under the
file names :func:`optiqa.backbones.weights_file_name` gives, so that tests exercise the real
pretrained code path (file lookup, key checks, loading) with numbers that mean nothing. Never use
them for results.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

from optiqa.models import backbones

STANDIN_SEED = 0
_FOLDER: Path | None = None


def standin_state_dict(name: str, seed: int = STANDIN_SEED) -> dict[str, torch.Tensor]:
    """Random trunk weights of backbone ``name`` under its timm key names (fixed seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = backbones.create(name, pretrained=False)
    return {k.removeprefix("trunk."): v.contiguous() for k, v in model.state_dict().items()}


def torchvision_state_dict(name: str, seed: int = STANDIN_SEED,
                           features: dict | None = None) -> dict[str, torch.Tensor]:
    """Stand-in weights as a complete torchvision checkpoint of ``vgg16`` or ``alexnet``.

    For reference packages (DISTS_pytorch, lpips) that load ``vgg16-397923af.pth`` or
    ``alexnet-owt-7be5be79.pth`` from ``$TORCH_HOME/hub/checkpoints`` with a strict
    ``load_state_dict``: the features are :func:`standin_state_dict`'s (or ``features``, e.g. the
    real ones of ``backbones.create(name).trunk``), the classifier (unused by the metrics)
    stride-0 views of one zero, so ``torch.save`` writes one element, not 500 MB.
    """
    import torchvision

    if features is None:
        features = standin_state_dict(name, seed)
    with torch.device("meta"):
        shapes = getattr(torchvision.models, name)().state_dict()
    return {k: features[k] if k in features else torch.zeros(()).expand(v.shape)
            for k, v in shapes.items()}


def write_standin_weights(folder: str | os.PathLike, names=None, seed: int = STANDIN_SEED) -> Path:
    """Write stand-in weight files for ``names`` (default: every backbone) into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names if names is not None else backbones.names(internal=True):
        file = backbones.weights_file_name(name)
        if file is None:
            continue  # needs no weights (vgg16_r)
        path = folder / file
        if not path.exists():
            sd = standin_state_dict(name, seed)
            tmp = path.with_name(path.name + ".tmp")
            if path.suffix == ".safetensors":
                save_file(sd, str(tmp))
            else:
                torch.save(sd, tmp)
            os.replace(tmp, path)
    return folder


@contextlib.contextmanager
def standin_weights(*names: str):
    """Point ``$OPTIQA_WEIGHTS`` at stand-in files for ``names`` (default all) while inside.

    The files live in one temporary folder per process (written lazily, removed at exit), so
    repeated use costs nothing. Only the construction of a model needs to happen inside.
    """
    global _FOLDER
    if _FOLDER is None:
        _FOLDER = Path(tempfile.mkdtemp(prefix="optiqa-standin-"))
        atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
    write_standin_weights(_FOLDER, names or None)
    old = os.environ.get("OPTIQA_WEIGHTS")
    os.environ["OPTIQA_WEIGHTS"] = str(_FOLDER)
    try:
        yield _FOLDER
    finally:
        if old is None:
            os.environ.pop("OPTIQA_WEIGHTS", None)
        else:
            os.environ["OPTIQA_WEIGHTS"] = old
