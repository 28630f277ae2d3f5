"""``pyiqa:<name>``: a model of an installed IQA-PyTorch (``pyiqa``) under optiqa's contract.

Deep no-reference models (MUSIQ, CLIP-IQA, MANIQA, TOPIQ, ...) and the rest of IQA-PyTorch's
zoo, when the user has it: ``create_metric("pyiqa:musiq")`` returns an :class:`~optiqa.metrics.
base.NRMetric` (or :class:`~optiqa.metrics.base.FRMetric` for pyiqa's full-reference models)
with pyiqa's orientation (``lower_better``) and score range in its :class:`MetricInfo`, scores
``(N,)`` and optiqa's input validation. Install with ``pip install 'optiqa[pyiqa]'``.
IQA-PyTorch's own code is under a non-commercial licence (PolyForm Noncommercial 1.0.0), and
many of its pretrained weights have their own terms: check them before any commercial use.

Weights are pyiqa's business (its cache, ``$TORCH_HOME/hub/pyiqa``); when a file is missing and
the machine is offline (``HF_HUB_OFFLINE=1``) or the download fails, creation raises
:class:`~optiqa.core.errors.WeightsUnavailable` naming the file, its URL and the folder to put it
in. The adapter is for evaluation: its models are not offered as losses
(``info.differentiable`` is False; use pyiqa's ``as_loss=True`` directly for that).
"""
from __future__ import annotations

import contextlib
import importlib
import math
import os
from pathlib import Path

import torch

from optiqa.core.errors import UnknownNameError, WeightsUnavailable
from optiqa.metrics.base import FRMetric, MetricInfo, MetricSpec, NRMetric

PREFIX = "pyiqa:"
INSTALL = ("pip install 'optiqa[pyiqa]' (IQA-PyTorch; non-commercial licence, PolyForm "
           "Noncommercial 1.0.0)")


def _pyiqa():
    try:
        return importlib.import_module("pyiqa")
    except ImportError as e:
        raise WeightsUnavailable(f"pyiqa metrics need IQA-PyTorch, which is not installed: "
                                 f"{INSTALL}") from e


def _configs() -> dict:
    _pyiqa()
    return importlib.import_module("pyiqa.default_model_configs").DEFAULT_CONFIGS


def _score_range(text) -> tuple[float, float]:
    """pyiqa's ``score_range`` (``'0, 100'``, ``'~0, ~1'``) as numbers; unbounded if unknown."""
    try:
        lo, hi = (float(str(v).strip().lstrip("~")) for v in str(text).split(","))
        return (lo, hi) if lo < hi else (-math.inf, math.inf)
    except (TypeError, ValueError):
        return (-math.inf, math.inf)


def pyiqa_spec(name: str):
    """The registry entry of ``pyiqa:<model>`` (None for another prefix)."""

    if not name.startswith(PREFIX):
        return None
    model = name[len(PREFIX):]
    configs = _configs()
    if model not in configs:
        raise UnknownNameError("pyiqa metric", model, list(configs))
    cfg = configs[model]
    mode = str(cfg.get("metric_mode", "NR")).upper()
    info = MetricInfo(
        name=name, lower_better=bool(cfg.get("lower_better", False)), differentiable=False,
        score_range=_score_range(cfg.get("score_range")), approach=f"pyiqa {model}",
        citation=f"IQA-PyTorch (pyiqa) model {model!r}: see its model card",
        kind="fr" if mode == "FR" else "nr",
        summary=f"IQA-PyTorch's {model}, wrapped (non-commercial licence)",
        extra={"needs": "pyiqa package"})
    return MetricSpec(info, PyiqaMetric.create, {"model": model})


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _missing(url: str, dst, why: str) -> WeightsUnavailable:
    dst = Path(dst)
    return WeightsUnavailable(
        f"pyiqa weights {dst.name} are not on this machine and {why}. Download {url} on a machine "
        f"with internet access and put it in {dst.parent} (pyiqa's cache), or run once online.")


@contextlib.contextmanager
def _guarded_downloads(record: list):
    """While a pyiqa model is built: record the weight files it loads, and turn a download that
    is forbidden (offline) or fails into :class:`WeightsUnavailable` naming the file."""
    try:
        dl = importlib.import_module("pyiqa.utils.download_util")
    except ImportError:
        dl = None
    original_download = getattr(dl, "download_url_to_file", None)
    original_load = torch.load

    def download(url, dst, *args, **kwargs):
        if _offline():
            raise _missing(url, dst, "HF_HUB_OFFLINE=1 forbids downloading them")
        try:
            return original_download(url, dst, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any failure means "not available", reported
            raise _missing(url, dst, f"the download failed ({e})") from e

    def load(f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            record.append(Path(f))
        return original_load(f, *args, **kwargs)

    if original_download is not None:
        dl.download_url_to_file = download
    torch.load = load
    try:
        yield
    finally:
        torch.load = original_load
        if original_download is not None:
            dl.download_url_to_file = original_download


class _PyiqaMixin:
    """Calls the wrapped pyiqa model and returns ``(N,)`` scores."""

    runs_under_autocast = False

    def _setup(self, net, files):
        self.net = net
        self._files = files

    def _scores(self, *images):
        with torch.no_grad():
            out = self.net(*images)
        if isinstance(out, (tuple, list)):
            out = out[0]
        out = torch.as_tensor(out, device=images[0].device).float()
        return out.reshape(images[0].shape[0], -1).mean(1)

    def weight_files(self):
        return list(self._files)


class PyiqaNR(_PyiqaMixin, NRMetric):
    def __init__(self, info, net, files):
        NRMetric.__init__(self, info)
        self._setup(net, files)

    def compute(self, x):
        return self._scores(x)


class PyiqaFR(_PyiqaMixin, FRMetric):
    def __init__(self, info, net, files):
        FRMetric.__init__(self, info)
        self._setup(net, files)

    def compute(self, x, ref):
        return self._scores(x, ref)


class PyiqaMetric:
    """Factory for the registry: builds the pyiqa model and wraps it (FR or NR per pyiqa)."""

    @staticmethod
    def create(info: MetricInfo, model: str, device: str | torch.device = "cpu", **kwargs):
        pyiqa = _pyiqa()
        files: list[Path] = []
        with _guarded_downloads(files):
            net = pyiqa.create_metric(model, as_loss=False, device=torch.device(device),
                                      **kwargs)
        # pyiqa's instance knows its orientation; the registry read it from the same config
        lower = bool(getattr(net, "lower_better", info.lower_better))
        mode = str(getattr(net, "metric_mode", "FR" if info.kind == "fr" else "NR")).upper()
        if lower != info.lower_better or (mode == "FR") != (info.kind == "fr"):
            from dataclasses import replace
            info = replace(info, lower_better=lower, kind="fr" if mode == "FR" else "nr")
        cls = PyiqaFR if info.kind == "fr" else PyiqaNR
        return cls(info, net, list(dict.fromkeys(files)))
