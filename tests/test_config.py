"""Typed config: YAML -> dataclasses, dotted-path errors, overrides, validation, saved configs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from optiqa.core.errors import ConfigError, OptiqaError
from optiqa.core.config import apply_overrides, load_config, parse_override, save_config
from optiqa.train.config import TrainConfig, load_train_config
from optiqa.train.config_checks import check_train_config
from optiqa.train.datasets import build_train_datasets

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"
PAPER_CONFIGS = sorted(p for p in (REPO / "configs" / "train").glob("*.yaml") if p != TINY)


def _err(overrides, check_data=False, source=TINY) -> str:
    with pytest.raises(OptiqaError) as e:
        cfg = load_train_config(source, overrides)
        check_train_config(cfg)
        if check_data:
            build_train_datasets(cfg)
    msg = str(e.value)
    # one line per problem (several problems: a count, then one indented line each)
    problems = getattr(e.value, "problems", [msg])
    assert all("\n" not in p for p in problems)
    assert "\n" not in msg if len(problems) == 1 else msg.splitlines()[1:] == [
        f"  - {p}" for p in problems]
    return msg


def test_tiny_config_loads_and_round_trips(tmp_path):
    cfg = load_train_config(TINY)
    assert cfg.name == "tiny_cpu" and cfg.scale == 4
    assert cfg.network_g["type"] == "srresnet" and cfg.network_d["type"] == "patchgan"
    assert cfg.train.optim_g.betas == [0.9, 0.99] and cfg.uses_gan
    assert cfg.val.num_samples == 2
    save_config(cfg, tmp_path / "config.yaml")
    again = load_train_config(tmp_path / "config.yaml")
    assert again == cfg
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temp file left


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_configs_parse_and_validate(path):
    """Every GPU config in configs/train/ is valid (data folders are not checked here)."""
    cfg = load_train_config(path)
    check_train_config(cfg)
    assert cfg.datasets.train.gt_size % cfg.scale == 0


def test_unknown_keys_name_their_dotted_path():
    assert _err(["train.optim_g.lrr=1"]).startswith("unknown key train.optim_g.lrr")
    assert "did you mean lr?" in _err(["train.optim_g.lrr=1"])
    assert "unknown key datasets.train.gt_szie" in _err(["datasets.train.gt_szie=64"])
    assert "unknown key bogus" in _err(["bogus=1"])
    msg = _err(["network_g.num_feats=8"])  # options of the network are checked too
    assert "network_g.num_feats" in msg and "did you mean num_feat?" in msg
    assert "network_d.ndff" in _err(["network_d.ndff=8"])


def test_wrong_types_and_nonsensical_numbers():
    assert _err(["train.total_iter=abc"]) == "train.total_iter: expected an integer, got 'abc'"
    assert "datasets.train.use_flip: expected true or false" in _err(
        ["datasets.train.use_flip=3"])
    assert "train.bf16: must be true, false or auto, got 'maybe'" in _err(["train.bf16=maybe"])
    cases = {
        "train.total_iter=0": "train.total_iter: must be >= 1",
        "train.pixel_only_iter=5000": "train.pixel_only_iter: must be in [0, total_iter=1000]",
        "train.ema_decay=1.5": "train.ema_decay: must be in [0, 1)",
        "train.optim_g.lr=-1": "train.optim_g.lr: must be > 0",
        "train.optim_d.betas=[0.9]": "train.optim_d.betas: must be two numbers in [0, 1)",
        "train.scheduler.milestones=[500,100]": "train.scheduler.milestones: must be increasing",
        "train.scheduler.type=linear": "train.scheduler.type: unknown scheduler 'linear'",
        "train.optim_g.type=SGD": "train.optim_g.type: unknown optimizer 'SGD'",
        "datasets.train.batch_size=0": "datasets.train.batch_size: must be >= 1",
        "train.gan_opt.weight=-0.1": "train.gan_opt.weight: must be a number >= 0",
        "logger.save_checkpoint_freq=0": "logger.save_checkpoint_freq: must be >= 1",
        "scale=0": "scale: must be >= 1",
        "datasets.train.gt_size=66": "datasets.train.gt_size 66 is not a multiple of scale 4",
    }
    for override, expected in cases.items():
        assert expected in _err([override]), override


def test_registry_names_are_checked():
    assert "network_g.type: unknown generator 'edsr'" in _err(["network_g={type: edsr}"])
    assert "network_d.type: unknown discriminator 'stylegan'" in _err(["network_d.type=stylegan"])
    assert "did you mean 'patchgan'" in _err(["network_d.type=patchgn"])
    assert "'bicubic' has no parameters to train" in _err(["network_g={type: bicubic}"])
    assert "train.fidelity_opt.metric: unknown metric 'ssimm'" in _err(
        ["train.fidelity_opt.metric=ssimm"])
    assert "val.metrics[1]: unknown metric 'lpips'" in _err(["val.metrics=[psnr_y,lpips]"])
    assert "train.gan_opt.type: unknown gan type 'wgan'" in _err(["train.gan_opt.type=wgan"])
    assert "network_d.backbone: unknown backbone 'vgg19'" in _err(
        ["network_d={type: backbone, backbone: vgg19}"])
    assert "needs a discriminator (network_d)" in _err(["network_d=null"])
    assert "network_g.scale is 2 but scale is 4" in _err(["network_g.scale=2"])


def test_overrides_parse_yaml_and_create_blocks():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=null") == (["a"], None)
    raw = apply_overrides({"a": {"b": 1}}, ["a.c.d=x", "e=1e-4"])
    assert raw == {"a": {"b": 1, "c": {"d": "x"}}, "e": "1e-4"}
    with pytest.raises(ConfigError, match="a.b is a value"):
        apply_overrides({"a": {"b": 1}}, ["a.b.c=2"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["novalue"])
    cfg = load_train_config(TINY, ["train.optim_g.lr=1e-4", "network_d=null",
                                   "train.gan_opt.weight=0", "datasets.train.gt_size=32",
                                   "val=null"])
    assert cfg.train.optim_g.lr == pytest.approx(1e-4)  # YAML 1.1 reads 1e-4 as a string
    assert cfg.network_d is None and cfg.val is None and not cfg.uses_gan
    check_train_config(cfg)


@dataclass
class Inner:
    size: int = 3
    names: list[str] = field(default_factory=list)


@dataclass
class Study:
    title: str
    inner: Inner = field(default_factory=Inner)
    ratio: float | None = None


def test_loader_is_generic():
    s = load_config({"title": "x", "inner": {"names": ["a"]}}, Study, ["ratio=0.5"])
    assert s == Study("x", Inner(3, ["a"]), 0.5)
    with pytest.raises(ConfigError, match="missing key title"):
        load_config({}, Study)
    with pytest.raises(ConfigError, match=r"inner.names\[0\]: expected a string"):
        load_config({"title": "x", "inner": {"names": [1]}}, Study)


def _write_images(folder: Path, size: int, n: int = 2):
    import torch

    from optiqa.data.io import write_image

    folder.mkdir(parents=True)
    for i in range(n):
        write_image(folder / f"img_{i}.png", torch.rand(3, size, size))


def test_data_checks(tmp_path):
    msg = _err([f"datasets.train.dataroot_gt={tmp_path / 'nope'}"], check_data=True)
    assert msg.startswith("datasets.train:") and "data folder not found" in msg
    assert "gt_size 256 is larger than image" in _err(
        ["datasets.train.gt_size=256", "datasets.train.dataroot_gt=builtin:samples/128"],
        check_data=True)
    _write_images(tmp_path / "HR", 64)
    _write_images(tmp_path / "LR", 32)  # x2 LR, but the config says x4
    msg = _err([f"datasets.train.dataroot_gt={tmp_path / 'HR'}",
                f"datasets.train.dataroot_lq={tmp_path / 'LR'}", "datasets.train.gt_size=32"],
               check_data=True)
    assert "datasets.train:" in msg and "does not match HR" in msg
    assert "path.pretrain_network_g" in _err([f"path.pretrain_network_g={tmp_path}/g.pth"],
                                             check_data=True)
    data = build_train_datasets(load_train_config(TINY))
    assert len(data["train"]) == 6 and len(data["val"]) == 6


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n  network_g: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_train_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "missing.yaml")
    bad.write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(ConfigError, match="missing key network_g"):
        load_train_config(bad)
    assert isinstance(load_train_config(TINY), TrainConfig)


def test_config_differences_name_every_changed_leaf():
    """The one config diff (a resumed run's warning, a study's run-folder check)."""
    from optiqa.core.config import config_differences

    old = {"train": {"total_iter": 4, "optim_g": {"lr": 1e-4}}, "name": "a", "gone": 1}
    new = {"train": {"total_iter": 8, "optim_g": {"lr": 1e-4}}, "name": "a", "new": [1]}
    assert config_differences(old, new) == ["gone: 1 -> None", "new: None -> [1]",
                                            "train.total_iter: 4 -> 8"]
    assert config_differences(None, {"a": {"b": 1}}) == ["a: None -> {'b': 1}"]  # whole section
    assert config_differences(new, new) == []


def test_dataset_building_moved_out_of_the_schema_with_its_old_import_path_kept():
    import optiqa.train.config as schema
    from optiqa.train import datasets

    with pytest.warns(DeprecationWarning, match="optiqa.train.datasets.build_train_datasets"):
        assert schema.build_train_datasets is datasets.build_train_datasets
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        schema.nothing  # noqa: B018


def test_the_cross_block_checks_keep_their_import_path_in_the_schema():
    import optiqa.train.config as schema
    from optiqa.train import config_checks

    assert schema.check_train_config is config_checks.check_train_config
