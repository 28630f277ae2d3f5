"""The evaluator panel: the circularity rule with and without families, unknown names, scoring."""
import pytest
import torch

import optiqa
from optiqa.core.errors import ConfigError, InputError, UnknownNameError
from optiqa.evaluators import FAMILY_RULES, family_of, panel

NAMES = ["psnr_y", "ssim_y", "ms_ssim", "lpips_vgg", "lpips_alex", "dists", "dists_vgg16",
         "dists_resnet50", "gmsd", "niqe", "brisque", "piqe"]


def test_families_as_documented():
    expected = {"dists": "dists", "dists_vgg16": "dists", "dists_dinov2_s14": "dists",
                "dists_my_backbone": "dists", "lpips_alex": "lpips", "lpips_vgg": "lpips",
                "ssim": "ssim", "ssim_y": "ssim", "ms_ssim": "ssim", "cw_ssim": "ssim",
                "psnr": "pixel", "psnr_y": "pixel", "mse": "pixel", "l1": "pixel",
                "gmsd": "gmsd", "niqe": "niqe", "brisque": "brisque", "piqe": "piqe",
                "pyiqa:musiq": "pyiqa:musiq"}
    assert {n: family_of(n) for n in expected} == expected
    # every built-in metric has a family (its own name at least)
    assert all(family_of(n) for n in optiqa.list_metrics())
    assert ("dists_*", "dists") in FAMILY_RULES


def test_training_loss_is_never_an_evaluator():
    p = panel(NAMES, exclude_for="dists_vgg16")
    assert "dists_vgg16" not in p.names
    # same family stays without exclude_family, but not what shares ImageNet VGG-16 features
    assert p.names == [n for n in NAMES if n not in ("dists_vgg16", "dists", "lpips_vgg")]
    assert p.excluded["dists_vgg16"] == "the training loss"


def test_exclude_family_drops_every_backbone_of_dists():
    p = panel(NAMES, exclude_for="dists_vgg16", exclude_family=True)
    assert not any(n.startswith("dists") for n in p.names)
    # lpips_vgg shares ImageNet VGG-16 features with dists_vgg16 (circularity by construction)
    assert set(p.excluded) == {"dists", "dists_vgg16", "dists_resnet50", "lpips_vgg"}
    assert "family 'dists'" in p.excluded["dists"]
    assert p.excluded["lpips_vgg"] == "shares the vgg16 features of the training loss dists_vgg16"
    assert {"lpips_alex", "niqe", "ssim_y"} <= set(p.names)


@pytest.mark.parametrize("loss, gone", [
    ("ssim", {"ssim_y", "ms_ssim"}),
    ("lpips_alex", {"lpips_alex", "lpips_vgg"}),
    ("l1", {"psnr_y"}),
    ("niqe", {"niqe"}),                        # NR metrics are each their own family
    (["l1", "dists_vgg16"], {"psnr_y", "dists", "dists_vgg16", "dists_resnet50", "lpips_vgg"}),
])
def test_family_rule_per_family(loss, gone):
    with_family = panel(NAMES, exclude_for=loss, exclude_family=True)
    assert set(with_family.excluded) == gone
    assert set(with_family.names) == set(NAMES) - gone
    without = panel(NAMES, exclude_for=loss)
    losses = {loss} if isinstance(loss, str) else set(loss)
    # without families: the loss itself and what shares its feature extractor
    shared = {"dists", "lpips_vgg"} if "dists_vgg16" in losses else set()
    assert set(without.excluded) == (losses & set(NAMES)) | shared


def test_evaluators_know_kind_orientation_family():
    p = panel(["psnr_y", "dists_resnet50", "niqe"])
    kinds = {e.name: (e.kind, e.lower_better, e.family) for e in p.evaluators}
    assert kinds == {"psnr_y": ("fr", False, "pixel"), "dists_resnet50": ("fr", True, "dists"),
                     "niqe": ("nr", True, "niqe")}
    assert p.needs_reference
    assert not panel(["niqe", "piqe"]).needs_reference


def test_unknown_names_and_empty_panels():
    with pytest.raises(UnknownNameError, match="'nqie'.*did you mean 'niqe'"):
        panel(["psnr", "nqie"])
    with pytest.raises(UnknownNameError) as err:
        panel(["psnr"], exclude_for="dist")
    assert err.value.option == "exclude_for"
    with pytest.raises(ConfigError, match="excluded"):
        panel(["dists", "dists_vgg16"], exclude_for="dists_vgg16", exclude_family=True)
    with pytest.raises(ConfigError):
        panel([])


def test_custom_family_table():
    strict = FAMILY_RULES + (("niqe", "nss"), ("brisque", "nss"))
    p = panel(["niqe", "brisque", "piqe"], exclude_for="niqe", exclude_family=True,
              families=strict)
    assert p.names == ["piqe"]


def test_score_returns_per_image_scores_per_evaluator():
    g = torch.Generator().manual_seed(0)
    hr = torch.nn.functional.avg_pool2d(torch.rand(3, 3, 66, 66, generator=g), 3, 1)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    p = panel(["psnr_y", "ssim", "dists_vgg16_r", "piqe", "mse"], exclude_for="mse")
    scores = p.score(sr, hr)
    assert list(scores) == ["psnr_y", "ssim", "dists_vgg16_r", "piqe"]
    for name, s in scores.items():
        assert s.shape == (3,) and s.device.type == "cpu" and s.dtype == torch.float32
        m = optiqa.create_metric(name)
        with torch.no_grad():
            direct = m(sr, hr) if m.info.kind == "fr" else m(sr)
        torch.testing.assert_close(s, direct, rtol=1e-5, atol=1e-5)
    batched = p.score(sr, hr, batch_size=2)
    for name in scores:
        torch.testing.assert_close(batched[name], scores[name], rtol=1e-5, atol=1e-5)


def test_score_needs_references_only_for_fr_evaluators():
    sr = torch.rand(2, 3, 48, 48)
    with pytest.raises(InputError, match="psnr.*need the reference"):
        panel(["psnr", "piqe"]).score(sr)
    scores = panel(["piqe"]).score(sr)
    assert scores["piqe"].shape == (2,)


def test_describe_and_to_dict():
    p = panel(["psnr_y", "dists", "niqe"], exclude_for="dists_vgg16", exclude_family=True)
    text = p.describe()
    assert "psnr_y" in text and "nr" in text and "lower is better" in text
    assert "excluded: dists (family 'dists' of the training loss dists_vgg16)" in text
    d = p.to_dict()
    assert d["exclude_for"] == ["dists_vgg16"] and d["exclude_family"] is True
    assert [e["name"] for e in d["evaluators"]] == ["psnr_y", "niqe"]
