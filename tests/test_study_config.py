"""Study configs: typed loading, one-line errors naming the study key, the grid's cells."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from optiqa.core.errors import ConfigError
from optiqa.study.cells import expand_cells, select_cells
from optiqa.study.names import cell_name
from optiqa.study.checks import check_study_config
from optiqa.study.config import load_study_config

from clitools import run_main

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "configs" / "study" / "quick.yaml"
PAPER = REPO / "configs" / "study" / "paper.yaml"


def _err(overrides, path=QUICK) -> str:
    with pytest.raises(ConfigError) as e:
        check_study_config(load_study_config(path, overrides), check_data=True)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_quick_config_expands_into_named_cells():
    cfg = load_study_config(QUICK)
    check_study_config(cfg)
    cells = expand_cells(cfg)
    assert len(cells) == 5 * (1 + 2 * 2)
    names = [c.name for c in cells]
    assert len(set(names)) == len(names)
    assert "sr_x4__ssim__none" in names and "sr_x4__ssim__patch__w0.03" in names
    assert "sr_x4__dists__none" in names  # the published DISTS (ImageNet VGG-16) is a loss
    c = next(c for c in cells if c.name == "sr_x4__dists_effnet_lite0__image__w0.003")
    assert (c.fidelity, c.discriminator, c.adversarial_weight) == (
        "dists_effnet_lite0", "image", 0.003)
    assert c.level == "image" and c.backbone == "effnet_lite0" and c.architecture == "conv"
    t = c.train_config
    assert t["train"]["fidelity_opt"] == {"metric": "dists_effnet_lite0", "weight": 1.0}
    assert t["train"]["gan_opt"]["weight"] == 0.003 and t["network_d"]["head"] == "image"
    assert t["path"]["pretrain_network_g"] == "../pretrain__sr_x4/models/net_g_400.pth"
    assert t["val"] is None and t["datasets"]["train"]["dataroot_gt"] == "builtin:train"
    none = next(c for c in cells if c.name == "sr_x4__l1__none")
    assert none.train_config["network_d"] is None and none.train_config["train"]["gan_opt"] is None
    assert select_cells(cells, "*__none") == [c for c in cells if not c.adversarial]


def test_names_are_stable_when_the_grid_grows():
    cfg = load_study_config(QUICK)
    before = {c.name: c.train_config for c in expand_cells(cfg)}
    bigger = load_study_config(QUICK, ["adversarial.weights=[0.001,0.003,0.03]",
                                       "fidelity.metrics=[gmsd,l1,ssim,dists_vgg16_r,"
                                       "dists_effnet_lite0,dists]"])
    after = {c.name: c.train_config for c in expand_cells(bigger)}
    assert set(before) < set(after)
    assert all(after[n] == cfg_ for n, cfg_ in before.items())  # old cells are untouched
    assert cell_name("sr_x4", "l1", "patch", 1e-5) == "sr_x4__l1__patch__w1e-05"


def test_per_cell_overrides_by_glob():
    cfg = load_study_config(QUICK, ["cells={'*__dists_*': {train.total_iter: 7}}"])
    cells = {c.name: c for c in expand_cells(cfg)}
    assert cells["sr_x4__dists_vgg16_r__none"].train_config["train"]["total_iter"] == 7
    base = load_study_config(QUICK).train.overrides["train.total_iter"]
    assert base != 7 and cells["sr_x4__ssim__none"].train_config["train"]["total_iter"] == base


def test_bad_configs_name_the_key():
    assert "unknown key fidelty" in _err(["fidelty.metrics=[l1]"])
    assert "did you mean fidelity?" in _err(["fidelty.metrics=[l1]"])
    assert _err(["fidelity.metrics=[l1,ssimm]"]).startswith("fidelity.metrics[1]: unknown metric")
    assert "did you mean 'ssim'" in _err(["fidelity.metrics=[l1,ssimm]"])
    assert "evaluators.metrics[0]: unknown metric 'psnrr'" in _err(["evaluators.metrics=[psnrr]"])
    assert "transfer.backbones[0]: unknown backbone 'vgg19'" in _err(
        ["transfer.backbones=[vgg19]"])
    assert "adversarial.discriminators.patch.backbone: unknown backbone" in _err(
        ["adversarial.discriminators.patch.backbone=vgg19"])
    assert "adversarial.weights[0]: must be a number > 0" in _err(["adversarial.weights=[-1]"])
    assert "adversarial.weights[1]: expected a number, got 'lots'" in _err(
        ["adversarial.weights=[0.1,lots]"])
    assert _err(["data.train=/nonexistent/hr"]) == \
        "data.train: /nonexistent/hr: data folder not found"
    assert "data.test.photos" in _err(["data.test.photos=/nonexistent/set"])
    assert "assessment.datasets[0].name: unknown dataset 'kadid'" in _err(
        ["assessment.datasets=[{name: kadid}]"])


def test_study_cli_dry_run_and_bad_config_exit_codes(tmp_path):
    # in this process (clitools.run_main: the exit status and output a subprocess would give);
    # without timing CPU steps (a 10 s budget each; the CPU estimate is checked on this config
    # in test_edges_cli)
    cmd = ["study", QUICK, "--out", tmp_path / "s"]
    bad = run_main(*cmd, "fidelity.metrics=[nope]")
    assert bad.returncode == 2 and bad.stderr.startswith("optiqa: error: fidelity.metrics[0]")
    assert not (tmp_path / "s").exists()  # nothing written before the config is checked
    ok = run_main(*cmd, "--dry-run", "--no-cpu-estimate")
    assert ok.returncode == 0, ok.stderr
    assert "25 cells" in ok.stdout and "pretrain__sr_x4" in ok.stdout
    assert "GPU hours unknown" in ok.stdout
    step = tmp_path / "step.json"
    step.write_text('{"trainer_ms_per_iter": 112.0}')
    hours = run_main(*cmd, "--dry-run", "--no-cpu-estimate", "--step-time", step)
    # 400 pre-training steps + 25 cells x total_iter steps at 0.112 s
    cfg = load_study_config(QUICK)
    steps = cfg.train.pretrain.total_iter + 25 * cfg.train.overrides["train.total_iter"]
    assert f"{steps * 0.112 / 3600:.1f} GPU hours" in hours.stdout


def test_missing_metric_weights_fail_before_any_work(tmp_path):
    """An evaluator whose pretrained weights are not here (AlexNet for lpips_alex, offline) is
    one line naming the study key, exit 2, before training writes anything."""
    from optiqa.core.errors import WeightsUnavailable
    from optiqa.metrics import create_metric

    try:
        create_metric("lpips_alex")
        pytest.skip("AlexNet's weights are on this machine (in a torch hub cache)")
    except WeightsUnavailable:
        pass
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "optiqa", "study", str(QUICK), "--out", str(out),
                           "fidelity.metrics=[l1, ssim]",  # dists would fail first (VGG-16)
                           "evaluators.metrics=[psnr_y, lpips_alex]"], capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                          "OPTIQA_WEIGHTS": str(tmp_path / "no_weights")})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("optiqa: error: evaluators.metrics[1]: pretrained weights of "
                                  "backbone 'alexnet'") and proc.stderr.count("\n") == 1
    assert not out.exists()


@pytest.mark.skipif(not PAPER.is_file(), reason="paper config not written yet")
def test_paper_config_dry_run_works_here(tmp_path):
    # without timing CPU steps (paper-size SwinIR steps took minutes of the suite's tail; the
    # CPU estimate is checked on the quick config in test_edges_cli)
    out = run_main("study", PAPER, "--out", tmp_path / "p", "--dry-run", "--json",
                   "--no-cpu-estimate")
    assert out.returncode == 0, out.stderr
    info = yaml.safe_load(out.stdout)
    assert info["cells"] >= 100 and info["remaining_steps"] > 0


def test_two_task_config_takes_the_task_presets():
    """`denoise_sigma25: {}` is scale 1 with its noise; `sr_x4: {}` keeps the sets' LR files;
    every cell trains its own task, and each task gets its model-free baseline."""
    from optiqa.study.names import degraded_name

    cfg = load_study_config(REPO / "configs" / "study" / "two_tasks.yaml")
    check_study_config(cfg)
    tasks = cfg.task_opts
    assert (tasks["sr_x4"].scale, tasks["sr_x4"].degradation) == (4, None)
    assert tasks["denoise_sigma25"].scale == 1
    assert tasks["denoise_sigma25"].degradation == {"type": "gaussian_noise", "sigma": 25}
    cells = expand_cells(cfg)
    assert len(cells) == 2 * 3 * 2
    den = next(c for c in cells if c.name == "denoise_sigma25__ssim__patch__w0.03")
    assert den.train_config["scale"] == 1  # network_g takes the run's scale
    assert den.train_config["datasets"]["train"]["degradation"]["sigma"] == 25
    sr = next(c for c in cells if c.name == "sr_x4__ssim__none")
    assert sr.train_config["scale"] == 4 and "degradation" not in sr.train_config["datasets"][
        "train"]
    assert degraded_name("sr_x4", tasks["sr_x4"].scale) == "bicubic__sr_x4"
    assert degraded_name("denoise_sigma25", tasks["denoise_sigma25"].scale) == \
        "input__denoise_sigma25"
    # what the study gives wins over the preset
    cfg = load_study_config(REPO / "configs" / "study" / "two_tasks.yaml",
                            ["tasks.denoise_sigma25={degradation: {type: gaussian_noise, "
                             "sigma: 15}}"])
    assert cfg.task_opts["denoise_sigma25"].degradation["sigma"] == 15


def test_a_job_whose_config_omits_total_iter_takes_the_default():
    """``--dry-run`` and the train stage read a run's length through the typed config, so a
    cell whose overrides replace the whole ``train`` block still has its (default) length."""
    from optiqa.study.training import TrainJob
    from optiqa.train.config import TrainOpts

    base = {"name": "x", "network_g": {"type": "srresnet"}}
    job = TrainJob("x", {**base, "train": {"ema_decay": 0.5, "pixel_opt": {"weight": 1.0}}})
    assert job.total_iter == TrainOpts().total_iter == 1000
    assert TrainJob("y", {**base, "train": {"total_iter": 7, "pixel_opt": {"weight": 1.0}}}
                    ).total_iter == 7


def test_the_library_checks_the_device_like_the_cli(tmp_path):
    """``run_study`` called from Python checks the device as the CLI does (its own resolver
    passed any name on to torch), before anything is written."""
    from optiqa.study.runner import StudyOptions, run_study

    cfg = load_study_config(REPO / "tests" / "data" / "tiny_study.yaml")
    for bad, why in (("gpu", "unknown device 'gpu'"), ("cuda:99", "not available")):
        with pytest.raises(ConfigError, match=why):
            run_study(cfg, tmp_path / "s", StudyOptions(device=bad))
    assert not (tmp_path / "s").exists()


def test_the_recovery_test_is_configured_where_it_runs(tmp_path):
    """``recovery`` is its own stage and its own top-level key; the old ``report.recovery`` is
    moved there for one release, and giving both is an error naming the old key."""
    from optiqa.core.errors import ConfigError
    from optiqa.study.runner import STAGE_TABLE

    assert list(STAGE_TABLE)[-2:] == ["recovery", "report"]
    assert STAGE_TABLE["recovery"][1] is False          # the runner's, never a GPU worker's
    cfg = load_study_config(REPO / "configs" / "study" / "quick.yaml")
    assert cfg.recovery.image == "astronaut" and cfg.report.recovery is None
    text = (REPO / "tests" / "data" / "tiny_study.yaml").read_text()
    old = text.replace("recovery: {image", "report_recovery_placeholder: {image")
    old = old.replace("report:\n", "report:\n  recovery: {image: chelsea, size: 32, steps: 2}\n")
    old = old.replace("report_recovery_placeholder: {image: astronaut, size: 32, steps: 3, "
                      "starts: [noise]}\n", "")
    path = tmp_path / "old.yaml"
    path.write_text(old.replace("../../configs", str(REPO / "configs")))
    moved = load_study_config(path)
    assert moved.recovery.image == "chelsea" and moved.report.recovery is None
    both = old.replace("report:\n", "recovery: {image: astronaut}\nreport:\n", 1)
    path.write_text(both.replace("../../configs", str(REPO / "configs")))
    with pytest.raises(ConfigError, match="report.recovery"):
        load_study_config(path)


def test_a_cells_training_config_is_parsed_once_per_study_run(tmp_path, monkeypatch):
    """The config check, status checks, the run-folder check and the launch each parsed every
    cell's training config again (three or more times per study run)."""
    import optiqa.train.config as schema
    from optiqa.study import training
    from optiqa.study.folder import StudyFolder
    from optiqa.study.plan import StudyPlan
    from optiqa.study.training import stored_config, train_status

    parsed = []
    real = schema.load_train_config
    monkeypatch.setattr(schema, "load_train_config",
                        lambda *a, **k: parsed.append(1) or real(*a, **k))
    monkeypatch.setattr(training, "_PARSED", {})
    cfg = load_study_config(REPO / "tests" / "data" / "tiny_study.yaml")
    check_study_config(cfg)
    plan = StudyPlan(cfg, StudyFolder(tmp_path / "s"))
    jobs = plan.train_jobs()
    for _ in range(3):
        for job in plan.train_jobs().values():
            train_status(plan.folder, job)
            stored_config(plan.folder, job)
            assert job.total_iter == 4
    assert len(parsed) == len(jobs)
