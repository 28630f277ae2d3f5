"""The evaluate stage leaves the circular judgments out (issue 23): which evaluators a cell's
evaluation skips, what its file then holds, and that a changed ``exclude_family`` re-scores
exactly the judgments it makes newly needed, with the same numbers as scoring from scratch.

The model of every evaluation here is the bicubic upsampler (no training), evaluated under a
cell's name: what decides the skipped evaluators is the cell (its loss and discriminator), what
decides the scores is the model.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from optiqa.study import evaluation
from optiqa.study.cells import expand_cells
from optiqa.study.config import load_study_config
from optiqa.study.folder import StudyFolder
from optiqa.study.judges import excluded_evaluators

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).resolve().parent / "data" / "tiny_study.yaml"
# the tiny study's panel is psnr_y, ssim_y, gmsd, mse; eight 48-px built-in photos are enough
SMALL = ["data.test.photos=builtin:test/48"]


def _cfg(*overrides):
    return load_study_config(TINY, [*SMALL, *overrides])


def _cells(cfg):
    return {c.name: c for c in expand_cells(cfg)}


@pytest.fixture
def spy(monkeypatch):
    """The evaluators each call of the scoring loop was asked for."""
    calls = []
    real = evaluation.evaluate_model

    def recording(model, scale, datasets, metrics, *args, **kwargs):
        calls.append(list(metrics))
        return real(model, scale, datasets, metrics, *args, **kwargs)
    monkeypatch.setattr(evaluation, "evaluate_model", recording)
    return calls


def _evaluate(folder, cfg, cell):
    from optiqa.restore.generator import load_generator

    return evaluation.evaluate_entry(folder, cfg, cell.name, cell.task, "model-a",
                                     lambda: load_generator("bicubic", scale=4), cell=cell)


def test_the_quick_studys_cells_skip_what_the_rule_excludes():
    """The known case of the issue: dists_vgg16_r on the 15 DISTS-family cells,
    dists_effnet_lite0 on those and on every cell with the EfficientNet discriminator."""
    cfg = load_study_config(ROOT / "configs" / "study" / "quick.yaml")
    cells = _cells(cfg)
    skip = {n: excluded_evaluators(cfg, c) for n, c in cells.items()}
    assert skip["sr_x4__l1__none"] == {"psnr_y": "family 'pixel' of the training loss l1"}
    assert skip["sr_x4__ssim__patch__w0.03"] == {
        "ssim_y": "family 'ssim' of the training loss ssim",
        "ms_ssim": "family 'ssim' of the training loss ssim",
        "dists_effnet_lite0": "shares the effnet_lite0 features of the discriminator"}
    assert skip["sr_x4__dists__none"] == {
        "dists_vgg16_r": "family 'dists' of the training loss dists",
        "dists_effnet_lite0": "family 'dists' of the training loss dists"}
    assert sum("dists_vgg16_r" in s for s in skip.values()) == 15
    assert sum("dists_effnet_lite0" in s for s in skip.values()) == 23
    assert excluded_evaluators(cfg, None) == {}          # a baseline: every evaluator judges it
    # the file's keys: the rest of the panel, in its order, next to the left-out reasons
    cell = cells["sr_x4__ssim__patch__w0.03"]
    keys, left = evaluation.judged_keys(cfg, cell.task, "model-a", {}, cell)
    assert left == skip[cell.name]
    assert list(keys) == [m for m in cfg.evaluators.metrics if m not in left]


def test_a_cells_file_holds_no_number_for_a_left_out_judgment(tmp_path, spy):
    cfg = _cfg()
    folder = StudyFolder(tmp_path)
    cell = _cells(cfg)["sr_x4__gmsd__none"]
    result = _evaluate(folder, cfg, cell)
    assert spy == [["psnr_y", "ssim_y", "mse"]]           # gmsd (its own loss) not computed
    saved = json.loads(folder.evaluation(cell.name).read_text())
    assert saved["left_out"] == {"gmsd": "the training loss"}
    assert saved["evaluators"] == ["psnr_y", "ssim_y", "mse"]
    assert all(set(st["scores"]) == {"psnr_y", "ssim_y", "mse"} for st in saved["sets"].values())
    assert result["key"] == evaluation.evaluation_key(cfg, cell.task, "model-a",
                                                      evaluation.data_identity(cfg), cell)
    # complete: found current, nothing scored again
    assert _evaluate(folder, cfg, cell)["key"] == saved["key"] and len(spy) == 1
    # the key names the cell's left-out judgments: as a baseline the same model is not current
    assert evaluation.evaluation_key(cfg, cell.task, "model-a",
                                     evaluation.data_identity(cfg)) != saved["key"]


def test_toggling_exclude_family_rescores_only_what_it_makes_needed(tmp_path, spy):
    """l1 is not in the panel: with the family rule the l1 cell is not judged by psnr_y and mse
    (pixel family), without it by everything. Off: only psnr_y and mse are scored; on again:
    nothing is scored, and the file loses their numbers. Every number equals a fresh
    evaluation's."""
    on, off = _cfg(), _cfg("evaluators.exclude_family=false")
    folder = StudyFolder(tmp_path / "study")
    cell_on, cell_off = _cells(on)["sr_x4__l1__none"], _cells(off)["sr_x4__l1__none"]
    first = _evaluate(folder, on, cell_on)
    assert spy == [["ssim_y", "gmsd"]] and set(first["left_out"]) == {"psnr_y", "mse"}
    second = _evaluate(folder, off, cell_off)
    assert spy[1] == ["psnr_y", "mse"] and second["left_out"] == {}
    assert second["evaluators"] == ["psnr_y", "ssim_y", "gmsd", "mse"]   # the panel's order
    assert folder.evaluation_complete(cell_off.name, evaluation.evaluation_key(
        off, "sr_x4", "model-a", evaluation.data_identity(off), cell_off)) is not None
    third = _evaluate(folder, on, cell_on)
    assert len(spy) == 2                                   # nothing scored: all kept
    assert third["sets"] == first["sets"]
    # the same numbers as one evaluation of everything from scratch
    fresh = _evaluate(StudyFolder(tmp_path / "fresh"), off, cell_off)
    assert spy[2] == ["psnr_y", "ssim_y", "gmsd", "mse"]
    assert second["sets"] == fresh["sets"]
    # a rebuilt study: the images are gone, so they are restored again (nothing to score)
    import shutil
    shutil.rmtree(folder.run_images(cell_on.name))
    folder.evaluation(cell_on.name).write_text(json.dumps(second))
    again = _evaluate(folder, on, cell_on)
    assert spy[3] == [] and again["sets"] == first["sets"]
    assert folder.run_image(cell_on.name, "sr_x4", "photos", first["sets"]["photos"]["images"][0]
                            ).is_file()


def test_a_changed_model_or_panel_rescores_what_it_decides(tmp_path, spy):
    from optiqa.restore.generator import load_generator

    cfg = _cfg()
    folder = StudyFolder(tmp_path)
    cell = _cells(cfg)["sr_x4__gmsd__none"]
    _evaluate(folder, cfg, cell)
    # another checkpoint: every score again
    evaluation.evaluate_entry(folder, cfg, cell.name, cell.task, "model-b",
                              lambda: load_generator("bicubic", scale=4), cell=cell)
    assert spy[-1] == ["psnr_y", "ssim_y", "mse"]
    # another protocol decides psnr_y and ssim_y only
    basicsr = _cfg("evaluators.protocol=basicsr")
    evaluation.evaluate_entry(folder, basicsr, cell.name, cell.task, "model-b",
                              lambda: load_generator("bicubic", scale=4),
                              cell=_cells(basicsr)[cell.name])
    assert spy[-1] == ["psnr_y", "ssim_y"]
    # an evaluator added to the panel: that one alone
    wider = _cfg("evaluators.protocol=basicsr", "evaluators.metrics=[psnr_y,ssim_y,gmsd,mse,l1]")
    result = evaluation.evaluate_entry(folder, wider, cell.name, cell.task, "model-b",
                                       lambda: load_generator("bicubic", scale=4),
                                       cell=_cells(wider)[cell.name])
    assert spy[-1] == ["l1"] and result["evaluators"] == ["psnr_y", "ssim_y", "mse", "l1"]


def test_a_damaged_file_is_redone_without_reusing_it(tmp_path, spy):
    """A file that does not hold what its key says (a crash mid-write cannot make one: writes
    are atomic; an edit can) is not complete, and its scores are not reused."""
    cfg = _cfg()
    folder = StudyFolder(tmp_path)
    cell = _cells(cfg)["sr_x4__gmsd__none"]
    good = _evaluate(folder, cfg, cell)
    folder.evaluation(cell.name).write_text(json.dumps({**good, "key": "x", "sets": {}}))
    assert _evaluate(folder, cfg, cell)["sets"] == good["sets"]
    assert spy[-1] == ["psnr_y", "ssim_y", "mse"]


def test_the_cli_scores_everything_unless_told_the_training_loss(tmp_path):
    from clitools import run_main

    common = ["evaluate", "bicubic", "--set", "photos=builtin:test/48", "-m", "gmsd", "-m",
              "mse", "--means-only", "-q"]
    plain = run_main(*common, "--json", tmp_path / "all.json")
    assert plain.returncode == 0, plain.stderr
    every = json.loads((tmp_path / "all.json").read_text())
    assert every["metrics"] == ["psnr_y", "ssim_y", "gmsd", "mse"] and every["left_out"] == {}
    told = run_main(*common, "--training-loss", "l1", "--json", tmp_path / "l1.json")
    assert told.returncode == 0, told.stderr
    l1 = json.loads((tmp_path / "l1.json").read_text())
    assert l1["metrics"] == ["ssim_y", "gmsd"]
    assert l1["left_out"] == {"psnr_y": "family 'pixel' of the training loss l1",
                              "mse": "family 'pixel' of the training loss l1"}
    assert "not computed (circular): psnr_y (family 'pixel'" in told.stdout
    assert l1["sets"]["photos"]["mean"]["gmsd"] == every["sets"]["photos"]["mean"]["gmsd"]
    wrong = run_main(*common, "--training-loss", "l2")
    assert wrong.returncode != 0 and "--training-loss 'l2': not a metric" in wrong.stderr
    bad = run_main(*common, "--training-loss", "ssim", "--discriminator-backbone", "vgg")
    assert bad.returncode != 0 and "--discriminator-backbone 'vgg': not a backbone" in bad.stderr
