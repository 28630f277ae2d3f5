"""``optiqa train`` with bad configs: one-line error, exit code 2, nothing written."""
from __future__ import annotations

from pathlib import Path

import pytest
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


# ------------------------------------------------------------------ the command (issue 14)
# in this process (`run_main`: stdout, stderr and exit status as a subprocess gives them;
# test_resume.py runs training through the real entry point in subprocesses)
from clitools import one_error_line, run_main  # noqa: E402

SHORT = ["train.total_iter=4", "train.pixel_only_iter=2", "train.warmup_iter=1",
         "logger.print_freq=1", "logger.save_checkpoint_freq=2", "val.val_freq=4",
         "datasets.val.max_images=1", "datasets.train.batch_size=2"]


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    """A complete 4-iteration run, trained with -q: (run folder, the finished process)."""
    run = tmp_path_factory.mktemp("train") / "run"
    proc = run_main("train", TINY, *SHORT, "--run-dir", run, "-q")
    assert proc.returncode == 0, proc.stderr
    return run, proc


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_quiet_prints_only_warnings_and_the_final_line(done_run):
    run, proc = done_run
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == [proc.stdout.strip()]
    assert proc.stdout.startswith(f"run {run}: iteration 4; validation psnr_y ")
    log = (run / "log.txt").read_text()  # the log keeps everything
    assert "iter 4/4" in log and "saved checkpoint 4" in log
    # where the LR images come from
    assert ("data: 6 training images, batch 2 per process, HR crop 64; LR images: made on the "
            "fly from the HR images (x4 MATLAB imresize bicubic") in log
    assert "validation: 1 images; LR images: made on the fly" in log


def test_log_names_lr_files_when_the_set_has_them(tmp_path):
    from optiqa.data.io import write_image

    for i in range(2):
        write_image(tmp_path / "set" / "HR" / f"{i}.png", torch.rand(3, 64, 64))
        write_image(tmp_path / "set" / "LR_bicubic" / "X4" / f"{i}.png", torch.rand(3, 16, 16))
    proc = run_main("train", TINY, "train.total_iter=1", "train.pixel_only_iter=1",
                    "train.warmup_iter=0", "val=null", "datasets.val=null", "network_d=null",
                    "train.gan_opt.weight=0", f"datasets.train.dataroot_gt={tmp_path / 'set'}",
                    "datasets.train.gt_size=32", "--run-dir", tmp_path / "run", "-q")
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "run" / "log.txt").read_text()
    assert f"LR images: files under {tmp_path / 'set' / 'LR_bicubic' / 'X4'}" in log


def test_resume_of_a_missing_run_says_how_to_start_it(tmp_path):
    run = tmp_path / "nothing_here"
    line = one_error_line(run_main("train", TINY, *SHORT, "--run-dir", run, "--resume"))
    assert f"{run}: there is no run to resume; start it with: optiqa train {TINY}" in line
    assert line.endswith(f"--run-dir {run}") and "--resume" not in line
    assert not run.exists()


def test_resume_never_rewrites_a_complete_run(done_run):
    run, _ = done_run
    before = _snapshot(run)
    # other values on a complete run: nothing trained, nothing written, and it says so
    proc = run_main("train", TINY, *SHORT, "train.ema_decay=0.5", "--run-dir", run,
                    "--resume")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"run {run}: complete at iteration 4; nothing to train"
    assert "its config.yaml is kept" in proc.stderr and "train.ema_decay: 0.99 -> 0.5" in \
        proc.stderr
    assert _snapshot(run) == before
    # total_iter below the run's iteration: refused in one line
    line = one_error_line(run_main("train", TINY, *SHORT, "train.total_iter=3",
                                   "--run-dir", run, "--resume"))
    assert "train.total_iter 3 is below the iteration 4" in line
    assert _snapshot(run) == before
    # a checkpoint that does not fit the config: refused before anything is saved
    line = one_error_line(run_main("train", TINY, *SHORT, "train.total_iter=6",
                                   "network_g.num_feat=16", "--run-dir", run, "--resume"))
    assert "checkpoint 4" in line and "does not fit the config" in line
    assert (run / "config.yaml").read_bytes() == before[run / "config.yaml"]


def test_resume_that_continues_saves_the_new_values(done_run, tmp_path):
    import shutil

    import yaml

    run = tmp_path / "run"
    shutil.copytree(done_run[0], run)
    proc = run_main("train", TINY, *SHORT, "train.total_iter=6", "--run-dir", run,
                    "--resume", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"run {run}: iteration 6")
    assert "continuing run" in proc.stderr and "train.total_iter: 4 -> 6" in proc.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["total_iter"] == 6
    log = (run / "log.txt").read_text()
    assert "train.total_iter: 4 -> 6" in log and "resumed from iteration 4" in log


def test_bicubic_is_not_a_trainable_generator(tmp_path):
    line = one_error_line(run_main("train", TINY, "network_g={type: bicubic}",
                                   "--run-dir", tmp_path / "r"))
    assert "'bicubic' has no parameters to train" in line
    assert "trainable generators: swinir, swinir_light, rrdbnet, srresnet" in line
    line = one_error_line(run_main("train", TINY, "network_g.type=swinirr",
                                   "--run-dir", tmp_path / "r"))
    assert "did you mean 'swinir'" in line and "bicubic" not in line
    proc = run_main("train", "--help")
    assert "Not trainable (baselines for `optiqa evaluate`): bicubic." in " ".join(
        proc.stdout.split())
