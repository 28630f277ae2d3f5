"""Config errors through the ``optiqa`` command (issue 24, point 5): every problem of a
config at once, one rule for relative paths (from the config file's folder) with the absolute path
tried in the error, a hint for a YAML mapping override without spaces, and the source of a
defaulted key."""
from __future__ import annotations

from pathlib import Path

import yaml

from clitools import cli_env, one_error_line, run_main, run_optiqa

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"
TINY_STUDY = Path(__file__).resolve().parent / "data" / "tiny_study.yaml"


def _problems(proc) -> list[str]:
    """The problems of a failed run: ``optiqa: error: N problems ...`` then one line each."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("optiqa: error: ") and lines[0].endswith(
        "problems in the configuration:"), proc.stderr
    assert all(line.startswith("  - ") for line in lines[1:]), proc.stderr
    assert lines[0] == f"optiqa: error: {len(lines) - 1} problems in the configuration:"
    return [line[4:] for line in lines[1:]]


def test_every_number_problem_at_once(tmp_path):
    """Shrinking tiny_cpu.yaml to 2 iterations: warmup_iter and pixel_only_iter in one message
    (with an unknown key and a wrong type of another block)."""
    proc = run_main("train", TINY, "--run-dir", tmp_path / "run", "train.total_iter=2",
                    "train.warmup_iter=5", "train.pixel_only_iter=9", "logger.print_freqq=1",
                    "datasets.train.use_flip=3")
    problems = _problems(proc)
    assert any(p.startswith("train.warmup_iter: must be") for p in problems), problems
    assert any(p.startswith("train.pixel_only_iter: must be") for p in problems), problems
    assert any("unknown key logger.print_freqq (did you mean print_freq?)" in p
               for p in problems), problems
    assert "datasets.train.use_flip: expected true or false, got 3" in problems
    assert not (tmp_path / "run").exists()  # nothing written


def test_every_missing_folder_and_name_at_once(tmp_path):
    """A missing train folder, a missing val folder and an unknown metric in one message."""
    proc = run_main("train", TINY, "--run-dir", tmp_path / "run",
                    f"datasets.train.dataroot_gt={tmp_path / 'no_train'}",
                    f"datasets.val.dataroot_gt={tmp_path / 'no_val'}", "val.metrics=[psnr_yy]")
    problems = _problems(proc)
    assert f"datasets.train: {tmp_path / 'no_train'}: data folder not found" in problems
    assert f"datasets.val: {tmp_path / 'no_val'}: data folder not found" in problems
    assert any(p.startswith("val.metrics[0]: unknown metric 'psnr_yy'") for p in problems)
    assert not (tmp_path / "run").exists()


def _config_elsewhere(tmp_path: Path, **datasets) -> Path:
    """tiny_cpu.yaml copied into ``tmp_path/configs/`` with other data folders, tiny sizes."""
    raw = yaml.safe_load(TINY.read_text())
    raw["datasets"]["train"].update(datasets, gt_size=32, batch_size=2)
    raw["datasets"]["val"] = None
    raw["val"] = None
    raw["network_g"] = {"type": "srresnet", "num_feat": 8, "num_block": 1}
    raw["network_d"] = {"type": "patchgan", "ndf": 4, "n_layers": 1}
    raw["train"].update(total_iter=1, warmup_iter=0, pixel_only_iter=0)
    cfg = tmp_path / "configs" / "small.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(yaml.safe_dump(raw))
    return cfg


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path):
    """``dataroot_gt: ../photos`` in ``tmp/configs/small.yaml`` is ``tmp/photos`` wherever the
    command runs; a missing one is reported with the absolute path tried."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            tmp_path / "photos" / f"p{i}.png")
    elsewhere = tmp_path / "somewhere_else"
    elsewhere.mkdir()
    missing = _config_elsewhere(tmp_path / "a", dataroot_gt="../photos_missing")
    proc = run_main("train", missing, "--run-dir", tmp_path / "run_a", cwd=elsewhere)
    assert one_error_line(proc) == (f"optiqa: error: datasets.train: "
                                    f"{tmp_path / 'a' / 'photos_missing'}: data folder not found")
    found = _config_elsewhere(tmp_path, dataroot_gt="../photos")
    proc = run_main("train", found, "--run-dir", tmp_path / "run_b", "-q", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = yaml.safe_load((tmp_path / "run_b" / "config.yaml").read_text())
    assert saved["datasets"]["train"]["dataroot_gt"] == str(tmp_path / "photos")


def test_a_mapping_override_without_spaces_gets_a_hint():
    proc = run_main("train", TINY, "network_g={type:swinir,embed_dim:24}")
    line = one_error_line(proc)
    assert "'type:swinir', 'embed_dim:24' are keys without a value" in line
    assert "space after the colon" in line
    assert "network_g='{type: swinir,embed_dim: 24}'" in line


def test_an_error_about_a_defaulted_key_names_where_the_default_came_from(tmp_path):
    """Only ``fidelity.metrics`` is written; the assessment uses it by default, and the error
    about its weights says so (the weights are kept off this run: empty caches, offline)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = cli_env(OPTIQA_WEIGHTS=empty, TORCH_HOME=empty, HF_HOME=empty, HF_HUB_CACHE=empty,
                  XDG_CACHE_HOME=empty, OPTIQA_CACHE=tmp_path / "cache")
    proc = run_optiqa("study", TINY_STUDY, "fidelity.metrics=[l1,lpips_alex]", "--out",
                      tmp_path / "study", "--stage", "assess", env=env)
    line = one_error_line(proc)
    assert line.startswith("optiqa: error: assessment.metrics[1] (defaulted from "
                           "fidelity.metrics[1]): "), line
