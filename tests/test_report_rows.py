"""The report's inputs besides the analysis as typed rows: the assessment files
(``assess/<dataset>.json``), the transfer results (``transfer/<name>.json``) and the gradient
ratio records read into rows (:mod:`optiqa.stats.rows.results`) write the same JSON back; a
misspelt or missing key fails where the file is read, naming the file, the row and the key; and
the report renders the same tables from files written before they were typed
(``tests/data/results``, see its README)."""
from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from optiqa.core.errors import InputError
from optiqa.report.document import Document
from optiqa.report.gradient_ratios import gradient_ratio_table
from optiqa.report.sections import assessment_section, transfer_section
from optiqa.stats.rows.results import AssessmentFile, TransferResult, ZeroShotResult
from optiqa.study import names
from optiqa.study.gradient_ratios import ratio_row
from optiqa.study.folder import read_row

DATA = Path(__file__).resolve().parent / "data" / "results"
WEIGHTS = ("each adversarial weight is lambda itself, the same for every fidelity loss; the "
           "gradient ratio it gave each loss at the start is in the gradient ratio table")


@pytest.fixture(scope="module")
def saved() -> dict:
    with gzip.open(DATA / "results.json.gz", "rt") as f:
        return json.load(f)


def transfer_type(name: str):
    return ZeroShotResult if names.parse_zeroshot(name) is not None else TransferResult


def read_rows(saved: dict):
    assess = {k: AssessmentFile.from_json(v) for k, v in saved["assess"].items()}
    transfer = {k: transfer_type(k).from_json(v) for k, v in saved["transfer"].items()}
    return assess, transfer


def test_result_files_read_into_rows_and_write_the_same_json(saved):
    assess, transfer = read_rows(saved)
    for k, row in assess.items():
        assert row.to_json() == saved["assess"][k]
    for k, row in transfer.items():
        assert row.to_json() == saved["transfer"][k]
    # attribute access reaches the numbers: both kinds of evaluation, both kinds of transfer
    csiq, synthetic = assess["csiq"], assess["synthetic"]
    first = saved["assess"]["csiq"]["results"][0]
    assert csiq.evaluation == "pooled" and csiq.results[0].metric == first["metric"]
    assert csiq.results[0].plcc == first["plcc"] and -1 <= csiq.results[0].plcc <= 1
    assert synthetic.evaluation == "within" and synthetic.results[0].strata_used > 0
    gan = transfer["nr__effnet_lite0__gan__sr_x4__l1__bb__w0.01"]
    assert gan.init_info.trained_maps == gan.init_info.maps == 6
    assert gan.test.srcc.n == 1 and gan.test.plcc is None
    zero = transfer["zeroshot__sr_x4__l1__patch__w0.01"]
    assert zero.zero_shot and zero.level == "patch"
    lo, hi = zero.srcc_ci
    assert [lo, hi] == saved["transfer"]["zeroshot__sr_x4__l1__patch__w0.01"]["srcc_ci"]
    assert -1 <= lo < hi <= 1


@pytest.mark.parametrize("part, name, change, message", [
    ("assess", "csiq", lambda j: j["results"][1].update(srcx=j["results"][1].pop("srcc")),
     "assess/csiq.json: AssessmentFile.results: MetricAssessment: unknown key 'srcx'"),
    ("assess", "synthetic", lambda j: j.update(content=j.pop("contents")),
     "assess/synthetic.json: AssessmentFile: unknown key 'content'"),
    ("assess", "synthetic", lambda j: j["results"][0].pop("n_boot"),
     "assess/synthetic.json: AssessmentFile.results: MetricAssessment: missing key 'n_boot'"),
    ("transfer", "nr__effnet_lite0__random",
     lambda j: j["test"].update(srrc=j["test"].pop("srcc")),
     "transfer/nr__effnet_lite0__random.json: TransferResult.test: RepeatSummary: unknown key "
     "'srrc'"),
    ("transfer", "nr__effnet_lite0__gan__sr_x4__l1__bb__w0.01",
     lambda j: j["init_info"].update(trained_map=j["init_info"].pop("trained_maps")),
     "transfer/nr__effnet_lite0__gan__sr_x4__l1__bb__w0.01.json: TransferResult.init_info: "
     "InitInfo: unknown key 'trained_map'"),
    ("transfer", "zeroshot__sr_x4__l1__bb__w0.01", lambda j: j.pop("srcc_ci"),
     "transfer/zeroshot__sr_x4__l1__bb__w0.01.json: ZeroShotResult: missing key 'srcc_ci'"),
])
def test_a_wrong_key_in_a_result_file_fails_naming_the_file_row_and_key(saved, part, name,
                                                                        change, message,
                                                                        tmp_path):
    j = copy.deepcopy(saved[part][name])
    row_type = AssessmentFile if part == "assess" else transfer_type(name)
    path = tmp_path / part / f"{name}.json"
    path.parent.mkdir()
    path.write_text(json.dumps(j))
    assert read_row(row_type, path) == row_type.from_json(saved[part][name])
    change(j)
    path.write_text(json.dumps(j))
    with pytest.raises(InputError) as err:
        read_row(row_type, path)
    assert str(err.value).startswith(f"{tmp_path}/{message}")
    assert read_row(row_type, tmp_path / "missing.json") is None


def test_the_report_renders_the_same_tables_from_saved_result_files(saved, tmp_path):
    """The assessment, transfer and gradient ratio tables the report rendered from these files
    before they were typed, rendered again from the rows: identical CSV files."""
    assess, transfer = read_rows(saved)
    doc = Document("t")
    assessment_section(doc, assess)
    transfer_section(doc, transfer,
                     {n: c for n in transfer if (c := names.parse_zeroshot(n)) is not None},
                     {n: p for n in transfer if (p := names.parse_transfer_gan(n)) is not None})
    doc.table(gradient_ratio_table([ratio_row(SimpleNamespace(**{k: v for k, v in c.items()
                                                                  if k != "record"}),
                                              c["record"])
                                    for c in saved["gradient_ratio"]], WEIGHTS))
    doc.write(tmp_path)
    expected = {p.name: p.read_text() for p in DATA.glob("*.csv")}
    written = {p.name: p.read_text() for p in (tmp_path / "tables").glob("*.csv")}
    assert sorted(written) == sorted(expected)
    for csv_name, text in expected.items():
        assert written[csv_name] == text, csv_name


def test_a_cell_without_a_record_is_a_row_of_dashes_and_counted(saved):
    cells = saved["gradient_ratio"]
    rows = [ratio_row(SimpleNamespace(**{k: v for k, v in c.items() if k != "record"}),
                      None if i == 0 else c["record"]) for i, c in enumerate(cells)]
    table = gradient_ratio_table(rows, WEIGHTS)
    assert table.rows[0][5:] == [None] * 6 and table.rows[1][5] == 0.01
    assert "1 cell(s) without a record" in table.protocol
    assert gradient_ratio_table([], WEIGHTS) is None


def test_a_rewritten_report_keeps_no_table_or_figure_of_an_earlier_one(tmp_path):
    """A table or figure that an earlier report wrote and the new one no longer has (the
    analysis' tables once the analysis is stale, say) is removed, not left to read as current;
    other files in the folders stay."""
    from optiqa.report.document import Figure, Table

    first = Document("t")
    first.table(Table("a", ["x"], [[1]], csv_name="a"))
    first.table(Table("b", ["x"], [[2]], csv_name="b"))
    first.figure(Figure("f", b"\x89PNG", "f"))
    first.write(tmp_path)
    (tmp_path / "tables" / "notes.txt").write_text("mine")
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["a.csv", "b.csv",
                                                                        "notes.txt"]
    second = Document("t")
    second.table(Table("a", ["x"], [[3]], csv_name="a"))
    second.write(tmp_path)
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["a.csv", "notes.txt"]
    assert (tmp_path / "tables" / "a.csv").read_text().splitlines() == ["x", "3"]
    assert not list((tmp_path / "figures").iterdir())
