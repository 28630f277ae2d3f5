"""The SQLite results store: WAL, schema version, atomic writes, cache keys, runs, results."""
import json
import math
import sqlite3

import pytest

from optiqa.core.errors import ConfigError
from optiqa.core import store as store_mod
from optiqa.core.store import ResultsStore, run_once


@pytest.fixture
def store(tmp_path):
    s = ResultsStore(tmp_path / "study")
    yield s
    s.close()


def test_file_wal_and_schema_version(store, tmp_path):
    assert store.path == tmp_path / "study" / "results.db"
    con = sqlite3.connect(store.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == store_mod.SCHEMA_VERSION
    con.close()


def test_newer_schema_is_refused(tmp_path):
    ResultsStore(tmp_path).close()
    con = sqlite3.connect(tmp_path / "results.db")
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="newer optiqa"):
        ResultsStore(tmp_path)


def test_not_a_database(tmp_path):
    (tmp_path / "results.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable results store"):
        ResultsStore(tmp_path)


def test_the_judging_store_shares_the_setup(tmp_path):
    """One SQLite setup for both stores (core/sqlite.py): WAL, the schema version checked, a
    newer file refused, a broken file named. The judging store used to skip the version check."""
    from optiqa.judge.store import JudgmentStore, read_votes

    JudgmentStore(tmp_path / "judgments.db").close()
    con = sqlite3.connect(tmp_path / "judgments.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "1"
    con.execute("UPDATE meta SET value='99' WHERE key='schema'")
    con.commit()
    con.close()
    assert read_votes(tmp_path / "judgments.db") == []       # a reader only reads
    with pytest.raises(ConfigError, match="newer optiqa"):
        JudgmentStore(tmp_path / "judgments.db")
    (tmp_path / "broken.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable judgment store"):
        JudgmentStore(tmp_path / "broken.db")


def test_scores_round_trip_and_signature_check(store):
    fp = "fp-psnr"
    store.put_scores("kadid10k", "psnr", fp, [("a.png", "10:20", 30.5), ("b.png", "11:20", 25.0)])
    assert store.get_scores("kadid10k", fp, {"a.png": "10:20", "b.png": "11:20"}) == \
        {"a.png": 30.5, "b.png": 25.0}
    # a changed file (other size) or another dataset/metric is not answered from the store
    assert store.get_scores("kadid10k", fp, {"a.png": "10:20", "b.png": "99:20"}) == \
        {"a.png": 30.5}
    assert store.get_scores("tid2013", fp, {"a.png": "10:20"}) == {}
    assert store.get_scores("kadid10k", "fp-ssim", {"a.png": "10:20"}) == {}


def test_transactions_are_all_or_nothing(store):
    fp = "fp-l1"
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("INSERT INTO scores VALUES ('d', 'l1', ?, 'x', 's', 1.0, 0)", (fp,))
            raise RuntimeError("crash in the middle")
    assert store.get_scores("d", fp, {"x": "s"}) == {}
    with pytest.raises(TypeError):  # a bad row aborts the whole batch
        store.put_scores("d", "l1", fp, [("x", "s", 1.0), ("y", "s", object())])
    assert store.get_scores("d", fp, {"x": "s", "y": "s"}) == {}


def test_summaries_store_strict_json(store):
    store.put_summary("csiq", "psnr", "fp", "k1", {"srcc": 0.8, "plcc": math.nan, "ci": [0.7, 0.9]})
    assert store.get_summary("csiq", "fp", "k1") == {"srcc": 0.8, "plcc": None, "ci": [0.7, 0.9]}
    assert store.get_summary("csiq", "fp", "other") is None
    raw = sqlite3.connect(store.path).execute("SELECT stats FROM summaries").fetchone()[0]
    json.loads(raw)  # no NaN tokens
    assert store.summaries("csiq")[0]["metric"] == "psnr"


def test_run_lifecycle(store):
    store.start_run("x4_swinir", "train", {"lr": 2e-4})
    assert store.get_run("x4_swinir")["status"] == "running"
    assert not store.is_complete("x4_swinir")
    store.finish_run("x4_swinir", "failed", "out of memory")
    assert store.get_run("x4_swinir")["message"] == "out of memory"
    store.start_run("x4_swinir", "train", {"lr": 1e-4})  # rerun after a failure
    store.finish_run("x4_swinir")
    run = store.get_run("x4_swinir")
    assert run["status"] == "complete" and run["config"] == {"lr": 1e-4}
    assert store.is_complete("x4_swinir")
    assert [r["name"] for r in store.runs(stage="train", status="complete")] == ["x4_swinir"]
    with pytest.raises(ValueError):
        store.finish_run("x4_swinir", "running")
    with pytest.raises(KeyError):
        store.finish_run("nope")


def test_generic_results(store):
    store.put_result("evaluate", "run1/Set5", {"psnr_y": 30.1})
    store.put_result("evaluate", "run1/Set5", {"psnr_y": 30.2})  # update in place
    store.put_result("transfer", "vgg16/kadid", {"srcc": 0.9})
    assert store.get_result("evaluate", "run1/Set5") == {"psnr_y": 30.2}
    assert store.results("evaluate") == {"run1/Set5": {"psnr_y": 30.2}}
    assert store.get_result("evaluate", "missing") is None


def test_run_once_reuses_complete_runs_and_records_failures(store):
    calls = []

    def compute():
        calls.append(1)
        return {"srcc": 0.5, "from_store": False}

    assert run_once(None, "transfer", "k", {}, compute) == {"srcc": 0.5, "from_store": False}
    first = run_once(store, "transfer", "k", {"opt": 1}, compute)
    assert first["from_store"] is False and store.is_complete("transfer/k")
    assert store.get_run("transfer/k")["config"] == {"opt": 1}
    assert run_once(store, "transfer", "k", {"opt": 1}, compute) == {"srcc": 0.5,
                                                                     "from_store": True}
    assert len(calls) == 2
    assert run_once(store, "transfer", "k", {"opt": 1}, compute, force=True)["from_store"] is False
    assert len(calls) == 3
    # the same key under another recorded config (other data, other options) is recomputed
    assert run_once(store, "transfer", "k", {"opt": 2}, compute)["from_store"] is False
    assert len(calls) == 4 and store.get_run("transfer/k")["config"] == {"opt": 2}
    assert run_once(store, "transfer", "k", {"opt": 2}, compute)["from_store"] is True
    assert len(calls) == 4

    def broken():
        raise ValueError("no images")

    with pytest.raises(ValueError, match="no images"):
        run_once(store, "transfer", "bad", {}, broken)
    run = store.get_run("transfer/bad")
    assert run["status"] == "failed" and run["message"] == "ValueError: no images"
    assert store.get_result("transfer", "bad") is None


def test_two_connections_see_each_other(tmp_path):
    a, b = ResultsStore(tmp_path), ResultsStore(tmp_path)
    a.put_result("s", "k", 1)
    assert b.get_result("s", "k") == 1
    b.put_result("s", "k", 2)
    assert a.get_result("s", "k") == 2
    a.close()
    b.close()


def test_refuses_use_after_fork(store, monkeypatch):
    monkeypatch.setattr(store, "_pid", -1)
    with pytest.raises(RuntimeError, match="forked"):
        store.get_result("s", "k")
