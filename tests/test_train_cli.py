"""``optiqa train`` with bad configs: one-line error, exit code 2, nothing written."""
from __future__ import annotations

from pathlib import Path

import torch

from optiqa.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny_cpu.yaml")


def _fails(capsys, tmp_path, *overrides) -> str:
    study = tmp_path / "study"
    code = main(["train", TINY, *overrides, "--study", str(study), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("optiqa: error: "), err
    assert not study.exists(), "a bad config must not write anything"
    return err[0]


def test_bad_configs_exit_2_before_training(capsys, tmp_path):
    assert "unknown key train.optim_g.lrr" in _fails(capsys, tmp_path, "train.optim_g.lrr=1")
    assert "unknown metric 'ssimm'" in _fails(capsys, tmp_path,
                                              "train.fidelity_opt.metric=ssimm")
    assert "unknown metric 'foo'" in _fails(capsys, tmp_path, "val.metrics=[psnr_y,foo]")
    assert "network_d.type: unknown discriminator 'nope'" in _fails(
        capsys, tmp_path, "network_d.type=nope")
    msg = _fails(capsys, tmp_path, f"datasets.train.dataroot_gt={tmp_path}/missing")
    assert "data folder not found" in msg
    assert "gt_size 256 is larger than image" in _fails(
        capsys, tmp_path, "datasets.train.gt_size=256",
        "datasets.train.dataroot_gt=builtin:samples/128")
    assert "train.ema_decay: must be in [0, 1)" in _fails(capsys, tmp_path, "train.ema_decay=2")


def test_scale_mismatch_between_hr_and_lr(capsys, tmp_path):
    from optiqa.data.io import write_image

    for i in range(2):
        write_image(tmp_path / "HR" / f"{i}.png", torch.rand(3, 64, 64))
        write_image(tmp_path / "LR" / f"{i}.png", torch.rand(3, 32, 32))
    msg = _fails(capsys, tmp_path, f"datasets.train.dataroot_gt={tmp_path / 'HR'}",
                 f"datasets.train.dataroot_lq={tmp_path / 'LR'}", "datasets.train.gt_size=32")
    assert "LR size 32x32 times scale 4 does not match HR" in msg


def test_discriminator_too_big_for_the_crop(capsys, tmp_path):
    msg = _fails(capsys, tmp_path, "datasets.train.gt_size=8", "train.fidelity_opt=null")
    assert "gt_size 8 is smaller than the 12x12 that discriminator 'patchgan' needs" in msg


def test_existing_run_needs_resume(capsys, tmp_path):
    run = tmp_path / "study" / "runs" / "tiny_cpu"
    run.mkdir(parents=True)
    (run / "log.txt").write_text("an earlier run\n")
    code = main(["train", TINY, "--study", str(tmp_path / "study"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "already exists; resume it" in err and "--resume" in err
    assert sorted(p.name for p in run.iterdir()) == ["log.txt"]


def test_bad_override_syntax(capsys, tmp_path):
    assert "expected key.path=value" in _fails(capsys, tmp_path, "train.total_iter")
    assert "is not valid YAML" in _fails(capsys, tmp_path, "val.metrics=[a")
