"""The analysis as typed rows (:mod:`optiqa.stats.rows`): every part of ``analysis.json`` reads
back into its row and writes the same JSON; a misspelt or missing key fails where the file is
read, naming the row and the key; and the report renders the same tables from an
``analysis.json`` written before the rows were typed (``tests/data/analysis``, see its README)."""
from __future__ import annotations

import copy
import gzip
import json
from dataclasses import fields
from pathlib import Path

import pytest
from test_asymmetry import make_study

from optiqa.core.errors import InputError
from optiqa.report.analysis import analysis_sections
from optiqa.report.document import Document
from optiqa.report.human import human_section
from optiqa.stats import rows as R
from optiqa.stats.asymmetry import analyze
from optiqa.stats.rows import Analysis, Row

DATA = Path(__file__).resolve().parent / "data" / "analysis"
SAVED = ("votes", "seeds")


def saved(name: str) -> dict:
    with gzip.open(DATA / f"{name}.analysis.json.gz", "rt") as f:
        return json.load(f)


def every_row(value):
    """Every row inside ``value`` (rows, and rows in lists, tuples and dicts), depth first."""
    if isinstance(value, Row):
        yield value
        for f in fields(value):
            yield from every_row(getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from every_row(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from every_row(v)


@pytest.mark.parametrize("name", SAVED)
def test_a_saved_analysis_reads_into_rows_and_writes_the_same_json(name):
    j = saved(name)
    a = Analysis.from_json(j)
    assert a.to_json() == j
    assert a.human.has_votes is (name == "votes") and a.seeds.n_seeds == (2 if name == "seeds"
                                                                            else 1)
    # attribute access reaches the numbers: the first rank agreement's exact test
    first = a.rank_agreement[0]
    assert first.spearman_test.k == first.n_metrics == len(first.metrics)


def test_every_row_type_round_trips():
    """Every row type of the analysis (found in the two saved analyses and a fresh one) reads
    back from its own JSON into an equal row."""
    analyses = [Analysis.from_json(saved(n)) for n in SAVED]
    analyses.append(analyze(*make_study(metrics=["l1", "ssim", "gmsd", "dists_vgg16"],
                                        n_images=10), n_boot=20, planned=[("ssim", "gmsd")]))
    seen = set()
    for a in analyses:
        assert Analysis.from_json(json.loads(json.dumps(a.to_json(), allow_nan=False))) == a
        for row in every_row(a):
            again = type(row).from_json(json.loads(json.dumps(row.to_json())))
            assert again == row, type(row).__name__
            seen.add(type(row).__name__)
    from optiqa.stats.headline import Headline
    from optiqa.stats.incomplete import IncompleteAgreement
    from optiqa.stats.multiplicity import TestFamily
    from optiqa.stats.permutation import PermutationTest

    expected = {n for n in R.__all__ if n != "Row"} | {
        c.__name__ for c in (Headline, IncompleteAgreement, TestFamily, PermutationTest)}
    assert expected <= seen, f"row types never exercised: {sorted(expected - seen)}"
    # the panel's test and the seed spread are flattened into their rows; they round trip too
    panel = analyses[0].panel_agreement[0].panel
    assert type(panel).from_json(panel.to_json()) == panel


@pytest.mark.parametrize("change, message", [
    (lambda j: j.update(rank_agreemnt=j.pop("rank_agreement")),
     "Analysis: unknown key 'rank_agreemnt'"),
    (lambda j: j.pop("contrasts"), "Analysis: missing key 'contrasts'"),
    (lambda j: j["rank_agreement"][0]["spearman_test"].update(
        p_valeu=j["rank_agreement"][0]["spearman_test"].pop("p_value")),
     "Analysis.rank_agreement: RankAgreement.spearman_test: PermutationTest: unknown key "
     "'p_valeu'"),
    (lambda j: j["human"]["fit"].pop("n_votes"),
     "Analysis.human: Human.fit: HumanFit: missing key 'n_votes'"),
    (lambda j: j["protocol"]["datasets"][0].update(n_content=3),
     "Analysis.protocol: Protocol.datasets: DatasetInfo: unknown key 'n_content'"),
    (lambda j: j["seeds"].update(spread={}),
     "Analysis.seeds: Seeds.spread: expected a list, got dict"),
])
def test_a_wrong_key_fails_where_the_file_is_read(change, message):
    j = copy.deepcopy(saved("votes"))
    change(j)
    with pytest.raises(InputError) as err:
        Analysis.from_json(j)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("name", SAVED)
def test_the_report_renders_the_same_tables_from_a_saved_analysis(name, tmp_path):
    """The tables the report rendered from this analysis.json before its rows were typed,
    rendered again from the typed rows: identical files, none missing, none added."""
    a = Analysis.from_json(saved(name))
    doc = Document("t")
    analysis_sections(doc, a)
    human_section(doc, a.human, "study")
    doc.write(tmp_path)
    expected = {p.name: p.read_text() for p in (DATA / name).glob("*.csv")}
    written = {p.name: p.read_text() for p in (tmp_path / "tables").glob("*.csv")}
    assert sorted(written) == sorted(expected)
    for csv_name, text in expected.items():
        assert written[csv_name] == text, csv_name
