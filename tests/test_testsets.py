"""Task presets, test sets made once from HR folders (manifest, hashes, staleness), and
``optiqa evaluate`` per task."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from optiqa.cli import main
from optiqa.core.errors import ConfigError, InputError
from optiqa.data import testsets
from optiqa.data.blur import GaussianBlur
from optiqa.data.task_datasets import SRTestDataset
from optiqa.data.tasks import TASKS, task_overrides
from optiqa.data.testsets import TaskTestSet, check_testset, make_testset, open_test_set

HR = "builtin:samples/48"  # six 48x48 photos, no files needed


def test_every_task_preset_builds_its_degradation():
    from optiqa.data.task_degradations import create_degradation

    assert {"sr_x4", "denoise_sigma25", "jpeg_q10", "deblur_gaussian", "deblur_motion",
            "realsr_x4"} <= set(TASKS.names())
    for name, spec in TASKS.items():
        d = create_degradation(name, spec.scale)
        assert d.scale == spec.scale and d.describe()
    over = task_overrides("deblur_motion")
    assert over["scale"] == 1 and over["datasets.train.degradation"]["type"] == "motion_blur"


def test_made_once_reused_and_equal_to_the_on_the_fly_test_data(tmp_path):
    out = tmp_path / "dg"
    m = make_testset("deblur_gaussian", HR, out, seed=3, progress=False)
    assert m["task"] == "deblur_gaussian" and m["seed"] == 3 and len(m["images"]) == 6
    im = m["images"][0]
    assert im["params"]["sigma"] in (1.0, 2.0, 3.0) and im["lq"].endswith(".png")
    kernel = np.load(out / im["kernel"])
    assert kernel.shape == (19, 19) and abs(kernel.sum() - 1) < 1e-5
    stamp = (out / im["lq"]).stat().st_mtime_ns
    again = make_testset("deblur_gaussian", HR, out, seed=3, progress=False)
    assert again == m and (out / im["lq"]).stat().st_mtime_ns == stamp  # reused, not rewritten
    ts = open_test_set(out, 1)
    fly = SRTestDataset(HR, scale=1, degradation="deblur_gaussian", seed=3)
    for i in range(len(ts)):
        a, b = ts[i], fly[i]
        assert a["key"] == b["key"] and torch.equal(a["gt"], b["gt"])
        assert torch.equal(a["lq"], b["lq"])
    other = make_testset("deblur_gaussian", HR, out, seed=4, progress=False)
    assert other["seed"] == 4 and other["images"][0]["lq_sha256"] != im["lq_sha256"]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no leftovers


def test_stale_sets_are_errors_and_rebuilt(tmp_path, monkeypatch):
    out = tmp_path / "dg"
    m = make_testset("deblur_gaussian", HR, out, progress=False)
    lq = out / m["images"][1]["lq"]
    good = lq.read_bytes()
    lq.write_bytes(good[:-10])
    with pytest.raises(InputError, match="modified"):
        TaskTestSet(out)
    make_testset("deblur_gaussian", HR, out, progress=False)  # rebuilt
    assert lq.read_bytes() == good and check_testset(out)
    (out / m["images"][2]["hr"]).unlink()
    with pytest.raises(InputError, match="missing"):
        check_testset(out)
    make_testset("deblur_gaussian", HR, out, progress=False)
    monkeypatch.setattr(GaussianBlur, "version", "2")  # the degradation's code changed
    with pytest.raises(InputError, match="version 1 .* version 2; rebuild"):
        check_testset(out)
    rebuilt = make_testset("deblur_gaussian", HR, out, progress=False)
    assert rebuilt["degradation_version"] == "2" and check_testset(out)


def test_source_change_and_folder_rules(tmp_path):
    from optiqa.data.io import write_image

    src = tmp_path / "hr"
    for i in range(2):
        write_image(src / f"im{i}.png", torch.rand(3, 16, 20))
    out = tmp_path / "sets" / "n25"
    m = make_testset("denoise_sigma25", src, out, progress=False)
    # unclipped noise is not an 8-bit image: saved as float32, read back exactly
    assert all(im["lq"].endswith(".npy") and "kernel" not in im for im in m["images"])
    ts = TaskTestSet(out)
    fly = SRTestDataset(str(src), scale=1, degradation="denoise_sigma25")
    assert torch.equal(ts[0]["lq"], fly[0]["lq"]) and float(ts[0]["lq"].min()) < 0
    write_image(src / "im1.png", torch.rand(3, 16, 20))
    with pytest.raises(InputError, match="source .* changed"):
        TaskTestSet(out)
    assert make_testset("denoise_sigma25", src, out, progress=False) != m
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a test set"):
        make_testset("jpeg_q10", src, tmp_path / "busy", progress=False)
    with pytest.raises(InputError, match="x1, the model is x4"):
        open_test_set(out, 4)


def test_evaluate_reports_per_task(tmp_path, capsys):
    from optiqa.restore.scoring import evaluate_sets, format_results
    from optiqa.restore.generator import load_generator

    sets = testsets.task_test_sets({"S": HR}, ["deblur_gaussian", "jpeg_q10"],
                                   tmp_path / "testsets", progress=False)
    assert set(sets) == {"S/deblur_gaussian", "S/jpeg_q10"}
    identity = load_generator("bicubic", scale=1)  # x1 "bicubic": the degraded input itself
    res = evaluate_sets(identity, sets, ["psnr_y"], progress=False)
    assert [s.task for s in res.sets] == ["deblur_gaussian", "jpeg_q10"]
    text = format_results(res, per_image=False)
    assert "[task deblur_gaussian]" in text and "[task jpeg_q10]" in text
    assert res.to_dict()["sets"]["S/jpeg_q10"]["task"] == "jpeg_q10"
    assert 20 < res.sets[1].mean("psnr_y") < 40
    # the command line: --task makes the sets once and names the task in every table title
    rc = main(["evaluate", "bicubic", "--scale", "1", "--set", f"S={HR}", "--task",
               "deblur_motion", "--testsets", str(tmp_path / "cli"), "-q", "--means-only"])
    out = capsys.readouterr().out
    assert rc == 0 and "S/deblur_motion [task deblur_motion]" in out
    manifest = json.loads((tmp_path / "cli" / "deblur_motion" / "S" / "manifest.json")
                          .read_text())
    assert manifest["degradation"]["type"] == "motion_blur"


def test_tasks_cli(tmp_path, capsys):
    assert main(["tasks", "list"]) == 0
    listing = capsys.readouterr().out
    assert "deblur_motion" in listing and "Real-ESRGAN" in listing
    assert main(["tasks", "make-testset", "jpeg_q20", HR, str(tmp_path / "q20"), "-q",
                 "--seed", "2"]) == 0
    assert "6 image(s)" in capsys.readouterr().out
    assert main(["tasks", "show", "realsr_x4"]) == 0
    assert json.loads(capsys.readouterr().out)["scale"] == 4
    assert main(["tasks", "show", "deblur"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_a_task_and_a_community_generator_train_from_a_config(tmp_path):
    """The study grid's two new axes in one tiny run: task deblur_gaussian, generator SPAN."""
    from pathlib import Path

    from optiqa.train.run import run_training

    tiny = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"
    summary = run_training(tiny, [
        "scale=1", "datasets.train.degradation=deblur_gaussian", "datasets.train.gt_size=32",
        "datasets.train.batch_size=2", "datasets.val.dataroot_gt=builtin:samples/48",
        "datasets.val.degradation=deblur_gaussian", "datasets.val.max_images=1",
        "network_g={type: span, feature_channels: 8}", "network_d=null", "train.gan_opt=null",
        "train.fidelity_opt=null", "train.total_iter=3", "train.pixel_only_iter=0",
        "train.warmup_iter=0", "val.val_freq=3", "logger.save_checkpoint_freq=3",
        "logger.print_freq=1"], run_dir=tmp_path / "run", progress=False, console=False)
    import math

    from optiqa.train.config import load_train_config
    from optiqa.restore.generator import load_generator

    assert summary["iteration"] == 3 and math.isfinite(summary["val"]["psnr_y"])
    saved = load_train_config(tmp_path / "run" / "config.yaml")
    assert saved.datasets.train.degradation == "deblur_gaussian"
    loaded = load_generator(tmp_path / "run")
    assert loaded.arch["type"] == "span" and loaded.scale == 1
    assert loaded.arch["feature_channels"] == 8


def test_a_made_test_set_is_validation_data(tmp_path):
    from optiqa.data.datasets import build_sr_dataset as build_dataset

    out = tmp_path / "q10"
    make_testset("jpeg_q10", HR, out, progress=False)
    val = build_dataset({"dataroot_gt": str(out)}, scale=1, train=False)
    assert isinstance(val, TaskTestSet) and len(val) == 6
    assert not torch.equal(val[0]["lq"], val[0]["gt"])
    with pytest.raises(ConfigError, match="task test set"):
        build_dataset({"dataroot_gt": str(out), "degradation": "jpeg_q10"}, scale=1,
                      train=False)
    with pytest.raises(InputError, match="x1, the model is x4"):
        build_dataset({"dataroot_gt": str(out)}, scale=4, train=False)
