"""The generic Registry and user registration of metrics and backbones."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import optiqa
from optiqa import backbones
from optiqa.core.errors import ConfigError, InputError, UnknownNameError
from optiqa.core.registry import Registry
from optiqa.metrics import FRMetric, MetricInfo, NRMetric, register_metric
from optiqa.metrics.registry import REGISTRY as METRICS
from optiqa.nets.discriminators import REGISTRY as DISCRIMINATORS


def test_registry_get_names_glob_and_did_you_mean():
    reg = Registry("colour", {"red": 1, "green": 2, "blue": 3})
    assert reg.get("green") == 2 and "red" in reg and "pink" not in reg
    assert reg.names() == ["red", "green", "blue"] and reg.names("*e*") == ["red", "green", "blue"]
    assert reg.names("b*") == ["blue"] and reg.names("x*") == []
    with pytest.raises(UnknownNameError, match=r"unknown colour 'gren' \(did you mean 'green'\?\)"):
        reg.get("gren")
    with pytest.raises(UnknownNameError) as err:
        reg.get("zzzzzz")
    assert "did you mean" not in str(err.value) and "valid names: blue, green, red" in str(err.value)
    reg.register("pink", 4)
    assert reg.get("pink") == 4 and len(reg) == 4
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("pink", 5)
    reg.register("pink", 5, overwrite=True)
    assert reg.unregister("pink") == 5 and "pink" not in reg
    with pytest.raises(ConfigError, match="glob characters"):
        reg.register("a*", 1)


def test_resolver_derives_family_members():
    reg = Registry("thing", {"base": 0}, resolver=lambda n: len(n) if n.startswith("x_") else None,
                   resolvable=lambda: ["x_a", "x_bb"])
    assert reg.get("x_bb") == 4 and reg.get("x_anything") == 10
    assert reg.names() == ["base", "x_a", "x_bb"] and reg.names("x_*") == ["x_a", "x_bb"]
    with pytest.raises(UnknownNameError):
        reg.get("y")


class MeanShift(FRMetric):
    def compute(self, x, ref):
        return (x.mean(dim=(1, 2, 3)) - ref.mean(dim=(1, 2, 3))).abs()


class Brightness(NRMetric):
    def compute(self, x):
        return x.mean(dim=(1, 2, 3))


@pytest.fixture
def user_metrics():
    fr = MetricInfo("test_mean_shift", lower_better=True, differentiable=True,
                    score_range=(0.0, 1.0), family="test", reference="a test")
    nr = MetricInfo("test_brightness", lower_better=False, differentiable=False,
                    score_range=(0.0, 1.0), family="test", reference="a test", kind="nr")
    register_metric(fr, MeanShift)
    register_metric(nr, Brightness)
    yield
    METRICS.unregister("test_mean_shift")
    METRICS.unregister("test_brightness")


def test_user_metrics_follow_the_contract(user_metrics):
    x, ref = torch.full((2, 3, 8, 8), 0.25), torch.full((2, 3, 8, 8), 0.5)
    fr = optiqa.create_metric("test_mean_shift")
    assert torch.allclose(fr(x, ref), torch.tensor([0.25, 0.25]))
    assert fr.loss(x, ref).item() == pytest.approx(0.25)
    assert not any(p.requires_grad for p in fr.parameters()) and not fr.training
    with pytest.raises(InputError, match="full-reference metric: call it as m\\(x, ref\\)"):
        fr(x)
    nr = optiqa.create_metric("test_brightness")
    assert nr.info.kind == "nr" and torch.allclose(nr(x), torch.tensor([0.25, 0.25]))
    with pytest.raises(InputError, match="no-reference metric: call it as m\\(x\\)"):
        nr(x, ref)
    with pytest.raises(InputError, match="not differentiable"):
        nr.loss(x)
    with pytest.raises(InputError, match="image: values must lie in \\[0, 1\\]"):
        nr(x * 10)
    assert "test_brightness" in optiqa.list_metrics("test_*")


def test_register_metric_refuses_bad_entries(user_metrics):
    info = optiqa.list_metrics()["test_mean_shift"]
    with pytest.raises(ConfigError, match="already registered"):
        register_metric(info, MeanShift)
    with pytest.raises(ConfigError, match="not callable"):
        register_metric(info, 3, overwrite=True)
    register_metric(info, lambda info: nn.Identity(), overwrite=True)
    with pytest.raises(ConfigError, match="not an optiqa metric module"):
        optiqa.create_metric("test_mean_shift")


class TinyFeatures(nn.Module):
    """Two conv stages; forward gives [image, stage1, stage2] as backbones do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.channels = [3, 4, 6]

    def forward(self, x):
        f1 = torch.relu(self.a(x))
        return [x, f1, torch.relu(self.b(f1))]


def test_a_registered_backbone_gives_a_dists_metric_and_discriminators():
    backbones.register("tiny_test", lambda pretrained: TinyFeatures(), title="Tiny", min_size=8)
    try:
        assert "tiny_test" in backbones.names("tiny*")
        assert "dists_tiny_test" in optiqa.list_metrics("dists_*")
        m = optiqa.create_metric("dists_tiny_test")
        x = torch.rand(2, 3, 16, 16)
        assert torch.allclose(m(x, x), torch.zeros(2), atol=1e-6)
        assert (m(x, torch.rand(2, 3, 16, 16)) > 0).all()
        assert "tiny_test_patch" in DISCRIMINATORS.names("tiny_test_*")
        with pytest.raises(ConfigError, match="already registered"):
            backbones.register("tiny_test", lambda pretrained: TinyFeatures())
    finally:
        backbones.REGISTRY.unregister("tiny_test")
    assert "dists_tiny_test" not in optiqa.list_metrics()
    with pytest.raises(UnknownNameError, match="unknown metric 'dists_tiny_test'"):
        optiqa.create_metric("dists_tiny_test")


def _readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index(heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


def test_readme_registration_example_runs(capsys):
    code = _readme_block("## Your own metric or backbone")
    assert len(code.strip().splitlines()) <= 16  # the short example the README promises
    try:
        exec(compile(code, "README.md", "exec"), {})
        assert capsys.readouterr().out.strip() == "torch.Size([2]) True"
        assert optiqa.create_metric("mean_shift").info.family == "toy"
    finally:
        if "mean_shift" in METRICS.names():
            METRICS.unregister("mean_shift")
