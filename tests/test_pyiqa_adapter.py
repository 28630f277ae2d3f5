"""``pyiqa:<name>`` metrics, tested with a stand-in ``pyiqa`` package injected in sys.modules
(the real IQA-PyTorch is neither needed nor imported): orientation and kind from pyiqa's config,
the (N,) contract, unknown names, a missing package, missing weights offline, weight files."""
import sys
import types
from pathlib import Path

import pytest
import torch

import optiqa
from optiqa.core.errors import InputError, UnknownNameError, WeightsUnavailable

CONFIGS = {
    "fake_nr": {"metric_opts": {"type": "FakeNR"}, "metric_mode": "NR",
                "score_range": "~0, ~100"},
    "fake_fr": {"metric_opts": {"type": "FakeFR"}, "metric_mode": "FR", "lower_better": True,
                "score_range": "0, 1"},
    "needs_weights": {"metric_opts": {"type": "FakeNR"}, "metric_mode": "NR"},
}
URL = "https://example.invalid/weights/fake_ckpt-1234.pth"


class FakeModel(torch.nn.Module):
    """What pyiqa.create_metric returns: an InferenceModel-like module, scores (N, 1)."""

    def __init__(self, name, weights_dir):
        super().__init__()
        cfg = CONFIGS[name]
        self.lower_better = cfg.get("lower_better", False)
        self.metric_mode = cfg["metric_mode"]
        self.score_range = cfg.get("score_range")
        self.scale = torch.nn.Parameter(torch.tensor(100.0))
        if name == "needs_weights":
            dl = sys.modules["pyiqa.utils.download_util"]
            path = dl.load_file_from_url(URL, model_dir=str(weights_dir))
            self.scale.data = torch.load(path, weights_only=True)

    def forward(self, x, ref=None):
        if self.metric_mode == "FR":
            return (x - ref).abs().mean((1, 2, 3))[:, None]
        return self.scale * x.mean((1, 2, 3))[:, None]


@pytest.fixture
def fake_pyiqa(monkeypatch, tmp_path):
    """A stand-in pyiqa: create_metric, default_model_configs, utils.download_util."""
    pkg = types.ModuleType("pyiqa")
    configs = types.ModuleType("pyiqa.default_model_configs")
    configs.DEFAULT_CONFIGS = CONFIGS
    utils = types.ModuleType("pyiqa.utils")
    dl = types.ModuleType("pyiqa.utils.download_util")
    downloads = []

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):
        downloads.append(url)
        torch.save(torch.tensor(7.0), dst)

    def load_file_from_url(url, model_dir=None, progress=True, file_name=None):
        # pyiqa's logic: download only when the file is not cached, via the module global
        cached = Path(model_dir) / (file_name or url.rsplit("/", 1)[-1])
        if not cached.exists():
            dl.download_url_to_file(url, str(cached), hash_prefix=None, progress=progress)
        return str(cached)

    dl.download_url_to_file = download_url_to_file
    dl.load_file_from_url = load_file_from_url
    pkg.create_metric = lambda name, as_loss=False, device=None, **kw: FakeModel(name, tmp_path)
    pkg.default_model_configs, pkg.utils, utils.download_util = configs, utils, dl
    for name, mod in [("pyiqa", pkg), ("pyiqa.default_model_configs", configs),
                      ("pyiqa.utils", utils), ("pyiqa.utils.download_util", dl)]:
        monkeypatch.setitem(sys.modules, name, mod)
    pkg.downloads, pkg.weights_dir = downloads, tmp_path
    return pkg


def test_nr_model_is_wrapped_with_its_orientation(fake_pyiqa):
    m = optiqa.create_metric("pyiqa:fake_nr")
    assert isinstance(m, optiqa.metrics.NRMetric)
    assert m.info.kind == "nr" and m.info.lower_better is False
    assert m.info.score_range == (0.0, 100.0) and not m.info.differentiable
    x = torch.rand(3, 3, 32, 32)
    scores = m(x)
    assert scores.shape == (3,)
    torch.testing.assert_close(scores, 100 * x.mean((1, 2, 3)))
    assert m(x[:, :1]).shape == (3,)          # grey input expanded by our validation
    with pytest.raises(InputError, match="no-reference"):
        m(x, x)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        m(x * 3)
    with pytest.raises(InputError, match="not differentiable"):
        m.loss(x)


def test_fr_model_is_an_fr_metric(fake_pyiqa):
    m = optiqa.create_metric("pyiqa:fake_fr")
    assert isinstance(m, optiqa.metrics.FRMetric)
    assert m.info.kind == "fr" and m.info.lower_better is True
    assert m.info.orientation == "lower is better"
    x, ref = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(m(x, ref), (x - ref).abs().mean((1, 2, 3)))
    with pytest.raises(InputError, match="full-reference"):
        m(x)


def test_unknown_pyiqa_model_names_the_valid_ones(fake_pyiqa):
    with pytest.raises(UnknownNameError, match="unknown pyiqa metric 'fake_nx'.*fake_nr"):
        optiqa.create_metric("pyiqa:fake_nx")


def test_missing_pyiqa_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa", None)   # import pyiqa -> ImportError
    with pytest.raises(WeightsUnavailable, match=r"pip install 'optiqa\[pyiqa\]'.*non-commercial"):
        optiqa.create_metric("pyiqa:musiq")


def test_offline_without_weights_names_file_url_and_folder(fake_pyiqa, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as err:
        optiqa.create_metric("pyiqa:needs_weights")
    message = str(err.value)
    assert "fake_ckpt-1234.pth" in message and URL in message
    assert str(fake_pyiqa.weights_dir) in message and "HF_HUB_OFFLINE" in message
    assert fake_pyiqa.downloads == []          # nothing was attempted
    # the download hook is put back afterwards
    dl = sys.modules["pyiqa.utils.download_util"]
    assert dl.download_url_to_file.__name__ == "download_url_to_file"


def test_failed_download_is_weights_unavailable(fake_pyiqa, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    dl = sys.modules["pyiqa.utils.download_util"]

    def refuse(url, dst, **kw):
        raise OSError("network unreachable")

    monkeypatch.setattr(dl, "download_url_to_file", refuse)
    with pytest.raises(WeightsUnavailable, match="download failed.*network unreachable"):
        optiqa.create_metric("pyiqa:needs_weights")


def test_cached_weights_are_used_and_listed(fake_pyiqa, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = fake_pyiqa.weights_dir / "fake_ckpt-1234.pth"
    torch.save(torch.tensor(3.0), cached)
    m = optiqa.create_metric("pyiqa:needs_weights")
    assert m.weight_files() == [cached]
    x = torch.full((1, 3, 8, 8), 0.5)
    assert m(x).item() == pytest.approx(1.5)
    assert torch.load is not None and torch.load.__module__.startswith("torch")


def test_pyiqa_names_are_not_listed_but_resolve(fake_pyiqa):
    assert not any(n.startswith("pyiqa:") for n in optiqa.list_metrics())
    from optiqa.metrics.registry import get_spec
    assert get_spec("pyiqa:fake_fr").info.kind == "fr"
