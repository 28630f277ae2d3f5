"""A study with relative adversarial weights (``adversarial.relative``): cells named by their
ratio and trained with ``gan_opt.relative``, absolute cells unchanged, the gradient-ratio table of
the report built from the run folders' records, and the answer's wording; the rehearsal's disk
compaction on a finished run."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from optiqa.core.runs import RunFolder
from optiqa.study.config import load_study_config

ROOT = Path(__file__).resolve().parents[1]
STUDY = """
name: s
train: {base: BASE}
fidelity: {metrics: [l1, ssim, mad]}
adversarial:
  discriminators: {p: {type: patchgan}}
  weights: [0.1, 0.5]
  RELATIVE
"""


def _cfg(tmp_path, relative):
    p = tmp_path / "s.yaml"
    p.write_text(STUDY.replace("BASE", str(ROOT / "configs/train/tiny_cpu.yaml"))
                 .replace("RELATIVE", f"relative: {str(relative).lower()}"))
    return load_study_config(p)


def test_relative_cells_are_named_by_their_ratio_and_train_with_it(tmp_path):
    from optiqa.study.cells import expand_cells

    rel = {c.name: c for c in expand_cells(_cfg(tmp_path, True))}
    absolute = {c.name: c for c in expand_cells(_cfg(tmp_path, False))}
    assert "sr_x4__mad__p__r0.1" in rel and "sr_x4__mad__p__w0.1" in absolute
    assert "sr_x4__mad__none" in rel and "sr_x4__mad__none" in absolute
    gan = rel["sr_x4__mad__p__r0.5"].train_config["train"]["gan_opt"]
    assert gan["relative"] is True and gan["weight"] == 0.5
    assert rel["sr_x4__mad__p__r0.5"].relative and "gradient ratio=0.5" in \
        rel["sr_x4__mad__p__r0.5"].describe()
    # absolute cells keep the configs (and so the hashes) they had before relative existed
    assert "relative" not in absolute["sr_x4__mad__p__w0.5"].train_config["train"]["gan_opt"]
    assert rel["sr_x4__mad__none"].train_config == absolute["sr_x4__mad__none"].train_config


def _record(run: RunFolder, ratio, lam, ref=1.0, adv=None):
    run.root.mkdir(parents=True)
    adv = adv if adv is not None else ratio * ref / lam
    run.gradient_ratio.write_text(json.dumps({
        "iteration": 1, "seed": 0, "batch_size": 2, "reference_norm": ref,
        "adversarial_norm": adv, "relative": False, "weight": lam, "adversarial_weight": lam,
        "ratio": ratio}))


def test_the_report_table_shows_every_gan_cell_and_the_spread_over_losses(tmp_path):
    from optiqa.study.cells import expand_cells
    from optiqa.study.folder import StudyFolder
    from optiqa.report.gradient_ratios import gradient_ratio_table
    from optiqa.study.gradient_ratios import ratio_rows, weight_sentence

    cfg = _cfg(tmp_path, False)
    folder = StudyFolder(tmp_path / "study")
    cells = expand_cells(cfg)
    # at weight 0.1: ratios 0.002 (l1), 0.02 (ssim), 0.0001 (mad): a factor of 200
    for fid, ratio in (("l1", 0.002), ("ssim", 0.02), ("mad", 0.0001)):
        _record(folder.run(f"sr_x4__{fid}__p__w0.1"), ratio, 0.1)
    table = gradient_ratio_table(ratio_rows(folder, cells), weight_sentence(cfg))
    assert [r[0] for r in table.rows] == [c.name for c in cells if c.adversarial]
    row = next(r for r in table.rows if r[0] == "sr_x4__mad__p__w0.1")
    assert row[3:6] == [0.1, "lambda", 0.1] and row[8] == 0.0001
    assert next(r for r in table.rows if r[0] == "sr_x4__mad__p__w0.5")[5:] == [None] * 6
    assert ("with p at weight 0.1 (sr_x4), the gradient ratio ranges from 0.0001 to 0.02 over "
            "3 fidelity losses (a factor of 200)") in table.protocol
    assert "3 cell(s) without a record" in table.protocol
    assert gradient_ratio_table(ratio_rows(folder, [c for c in cells if not c.adversarial]),
                                weight_sentence(cfg)) is None


def test_the_answer_names_a_ratio_as_a_ratio():
    from optiqa.stats.headline import setting_label

    assert setting_label("setting", "p@0.1") == "with the p discriminator at adversarial weight 0.1"
    assert setting_label("setting", "p@0.1", weight_name="adversarial/fidelity gradient ratio") \
        == "with the p discriminator at adversarial/fidelity gradient ratio 0.1"


def test_a_finished_rehearsal_run_keeps_one_copy_per_discriminator_and_no_state(tmp_path):
    import torch

    from optiqa.core.atomic import atomic_torch_save
    from optiqa.study.footprint import compact_finished_run, footprint, tensor_content_key

    blobs = tmp_path / "blobs"
    runs = [RunFolder(tmp_path / name) for name in ("a", "b", "c")]
    same = {"params": {"w": torch.arange(250.0), "b": torch.ones(3, dtype=torch.bfloat16)}}
    for i, run in enumerate(runs):
        run.create()
        d = same if i < 2 else {"params": {"w": torch.arange(250.0) + 1,
                                           "b": torch.ones(3, dtype=torch.bfloat16)}}
        atomic_torch_save(d, run.model_path("d", 1))     # a and b: equal tensors, as trained
        torch.save({"params": {"w": torch.zeros(10)}}, run.model_path("g", 1))
        run.state_path(1).write_bytes(b"S" * 5000)
    a_d, b_d = runs[0].model_path("d", 1), runs[1].model_path("d", 1)
    # the files differ (the archive is named after the temporary file) while the tensors agree
    assert a_d.read_bytes() != b_d.read_bytes()
    assert tensor_content_key(a_d) == tensor_content_key(b_d) != tensor_content_key(
        runs[2].model_path("d", 1))
    before = footprint(tmp_path)
    size_d = a_d.stat().st_size
    freed = [compact_finished_run(run, blobs) for run in runs]
    assert freed == [5000, 5000 + size_d, 5000]
    assert footprint(tmp_path) == before - 15000 - size_d
    for run in runs:
        assert not list(run.state.iterdir())
        assert torch.equal(torch.load(run.model_path("d", 1))["params"]["w"],
                           torch.arange(250.0) + (run is runs[2]))
    assert os.path.samefile(a_d, b_d)
    assert not os.path.samefile(a_d, runs[2].model_path("d", 1))
    assert not os.path.samefile(runs[0].model_path("g", 1), runs[1].model_path("g", 1))
    assert compact_finished_run(runs[1], blobs) == 0      # idempotent
