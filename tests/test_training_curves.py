"""A run's ``train_log.jsonl`` read back (RunFolder.training_curves, the report's training
curves): iterations in order, the last record of an iteration winning, a line cut short by a
crash skipped, and a complete record in another format a clear error naming file, line, key."""
from __future__ import annotations

import json

import pytest

from optiqa.core.errors import InputError
from optiqa.core.runs import RunFolder
from optiqa.study.report import training_curve


def _run(tmp_path, lines: list[str]) -> RunFolder:
    run = RunFolder(tmp_path / "runs" / "r")
    run.root.mkdir(parents=True)
    run.train_log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return run


def _rec(it, l1, **extra):
    return json.dumps({"iteration": it, "stage": "train", "lr": 1e-4, "l_pix": l1, **extra})


def test_records_in_order_the_last_of_an_iteration_winning_a_torn_line_skipped(tmp_path):
    torn = _rec(6, 0.9)[:-7]               # a crash cut it short; the resumed run appended
    run = _run(tmp_path, [_rec(2, 0.5), _rec(4, 0.4), torn + _rec(4, 0.3), _rec(4, 0.35),
                          _rec(6, 0.2)])
    rows = run.training_curves()
    assert [(r["iteration"], r["l_pix"]) for r in rows] == [(2, 0.5), (4, 0.35), (6, 0.2)]
    curve = training_curve("r", rows)
    assert curve.iterations == [2, 4, 6] and curve.terms["l_pix"] == [0.5, 0.35, 0.2]
    assert RunFolder(tmp_path / "none").training_curves() == []


@pytest.mark.parametrize("line, message", [
    (json.dumps({"iter": 4, "l_pix": 0.3}), r"line 2: missing key 'iteration' \(keys: iter, "),
    (json.dumps({"iteration": "4", "l_pix": 0.3}), r"line 2: 'iteration' must be an integer, "
                                                    r"got '4'"),
    (json.dumps([4, 0.3]), "line 2: expected a JSON object per line, got list"),
])
def test_a_complete_record_in_another_format_names_the_file_line_and_key(tmp_path, line,
                                                                          message):
    run = _run(tmp_path, [_rec(2, 0.5), line, _rec(6, 0.2)])
    with pytest.raises(InputError, match=message) as e:
        run.training_curves()
    assert str(run.train_log) in str(e.value)
