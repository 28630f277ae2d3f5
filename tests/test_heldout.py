"""Held-out data is checked by content before any work (issue 20)."""
from __future__ import annotations

from pathlib import Path

import pytest
from clitools import run_main

from optiqa.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_study.yaml"


def _cfg(*overrides):
    from optiqa.study.config import load_study_config

    return load_study_config(TINY, list(overrides))


def test_a_training_photo_in_the_assessment_set_is_an_error_naming_it():
    from optiqa.study.heldout import check_heldout

    cfg = _cfg("assessment.datasets=[{name: synthetic, size: 32, photos: [astronaut, coffee]}]")
    with pytest.raises(ConfigError, match=r"assessment.datasets\[0\] \(synthetic\) shares 1 "
                       r"image\(s\) with data.train: coffee \(built-in photo\)"):
        check_heldout(cfg)


def test_the_old_default_assessment_photos_overlap_the_default_training_photos():
    from optiqa.study.config import IQADataOpts
    from optiqa.study.heldout import check_heldout, iqa_contents

    # the default is now the held-out test split; the six classic photos hold coffee and
    # motorcycle, two training photos, and are refused
    assert IQADataOpts().photos == "test"
    cfg = _cfg("transfer.dataset={name: synthetic, size: 32, photos: null}")
    assert "builtin:coffee" in iqa_contents(cfg.transfer.dataset)
    with pytest.raises(ConfigError, match="transfer.dataset .*coffee.*motorcycle"):
        check_heldout(cfg)


def test_files_are_compared_by_content_not_by_name(tmp_path):
    from optiqa.data.io import write_image
    from optiqa.data.samples import load_sample
    from optiqa.study.heldout import check_heldout

    train, test = tmp_path / "train", tmp_path / "test"
    write_image(train / "a.png", load_sample("coffee", 48))
    write_image(train / "b.png", load_sample("brick", 48))
    write_image(test / "renamed.png", load_sample("coffee", 48))   # same bytes, other name
    write_image(test / "other.png", load_sample("astronaut", 48))
    cfg = _cfg(f"data.train={train}", f"data.test={{photos: {test}}}")
    with pytest.raises(ConfigError, match=r"data.test.photos shares 1 image\(s\) with "
                       r"data.train: .*renamed.png = .*a.png"):
        check_heldout(cfg)
    (test / "renamed.png").unlink()
    record = check_heldout(cfg)
    assert record["passed"] and record["training_images"] == 2


def test_the_report_says_held_out_only_when_the_check_ran_and_passed():
    from optiqa.study.heldout import check_heldout, heldout_sentence

    cfg = _cfg()
    assert heldout_sentence(None, cfg) is None                      # never checked
    record = check_heldout(cfg)
    assert heldout_sentence(record, cfg).startswith("Held-out data: checked before any work.")
    other = _cfg("data.test={photos: builtin:test/32}")              # another config
    assert heldout_sentence(record, other) is None


def test_the_cli_refuses_an_overlapping_study_and_writes_nothing(tmp_path):
    out = tmp_path / "s"
    # optiqa.cli.main in this process (clitools.run_main): the message and the exit status as
    # a user's shell gets them, without a fresh interpreter's torch imports
    overlap = "assessment.datasets=[{name: synthetic, size: 32, photos: [coffee, astronaut]}]"
    proc = run_main("study", TINY, "--out", out, "-q", overlap)
    assert proc.returncode != 0
    assert "shares 1 image(s) with data.train: coffee" in proc.stderr
    assert not out.exists()
