"""The study's results store: one SQLite file, ``<study>/results.db``, a cache and never the truth.

The truth of a study is its files (run folders with their completion markers, ``assess/``,
``evaluate/``, ``transfer/``): deleting ``results.db`` loses no result, only time, because every
row here is read back by the stage that wrote it to skip recomputing (metric scores and
summaries by :mod:`optiqa.assess.benchmark`, transfer and zero-shot results by
:func:`run_once`). Nothing is written here that nothing reads.

Tables (schema version :data:`SCHEMA_VERSION`, kept in ``meta``):

- ``scores``: one metric score per (dataset, item), keyed by the metric's *fingerprint* (a hash
  of everything that decides its value: name, options, the content of every weight file, the
  source of every optiqa module its computation imports, library versions; see
  :func:`optiqa.assess.benchmark.metric_fingerprint`) and checked against the item's signature
  (the SHA-256 of its image files), so a second run of the same metric on the same pixels is
  answered from the store and any change to metric, code, weights or pixels recomputes.
- ``summaries``: the statistics of one (dataset, metric fingerprint) for one ``stats_key``: a
  hash of the items, their signatures, the human scores, the dataset's identity (score file
  hash, image root) and the statistics settings, as JSON.
- ``runs``: :func:`run_once`'s record of each cached computation (name, stage, config JSON,
  status ``running|complete|failed``, timestamps, message): a result is reused only when its
  run is ``complete`` under an equal config.
- ``results``: ``(stage, key) -> payload JSON``, the cached results of :func:`run_once`.

The connection is :func:`optiqa.core.sqlite.open_store`'s (WAL, foreign keys, busy timeout,
schema version), shared with the judging app's store; every write is one transaction (``BEGIN
IMMEDIATE``). One connection per process: the store refuses to be used from a forked child (a
DataLoader worker) because SQLite connections must not cross ``fork``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, Iterable

from optiqa.core.hashing import canonical_json
from optiqa.core.sqlite import open_store

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DB_NAME = "results.db"
RUN_STATUSES = ("running", "complete", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    dataset TEXT NOT NULL, metric TEXT NOT NULL, fingerprint TEXT NOT NULL,
    item TEXT NOT NULL, signature TEXT NOT NULL, score REAL NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (fingerprint, dataset, item));
CREATE TABLE IF NOT EXISTS summaries (
    dataset TEXT NOT NULL, metric TEXT NOT NULL, fingerprint TEXT NOT NULL,
    stats_key TEXT NOT NULL, stats TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (fingerprint, dataset, stats_key));
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, stage TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
    started REAL NOT NULL, finished REAL, message TEXT);
CREATE TABLE IF NOT EXISTS results (
    stage TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, PRIMARY KEY (stage, key));
"""


class ResultsStore:
    """The SQLite results store of one study folder (or an explicit ``.db`` path)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if path.suffix != ".db":
            path = path / DB_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._pid = os.getpid()
        # a cache: synchronous=NORMAL (a crash may lose the last transaction; it is recomputed)
        self._con = open_store(path, _SCHEMA, "schema_version", SCHEMA_VERSION, "NORMAL",
                               what="results store")

    @property
    def schema_version(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            raise RuntimeError("a ResultsStore connection cannot be used from a forked process; "
                               "open a new ResultsStore in the child")
        return self._con

    @contextlib.contextmanager
    def transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): all or nothing."""
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        if getattr(self, "_con", None) is not None and os.getpid() == self._pid:
            self._con.close()
        self._con = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- per-item scores --------------------------------------------------------------------
    def get_scores(self, dataset: str, fingerprint: str, signatures: dict[str, str]
                   ) -> dict[str, float]:
        """Stored scores for the items whose signature still matches (item -> score)."""
        rows = self._conn().execute(
            "SELECT item, signature, score FROM scores WHERE fingerprint=? AND dataset=?",
            (fingerprint, dataset)).fetchall()
        return {item: score for item, sig, score in rows if signatures.get(item) == sig}

    def put_scores(self, dataset: str, metric: str, fingerprint: str,
                   rows: Iterable[tuple[str, str, float]]) -> int:
        """Insert or replace ``(item, signature, score)`` rows in one transaction."""
        now = time.time()
        data = [(dataset, metric, fingerprint, item, sig, float(score), now)
                for item, sig, score in rows]
        with self.transaction() as con:
            con.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?)", data)
        return len(data)

    # -- summaries --------------------------------------------------------------------------
    def get_summary(self, dataset: str, fingerprint: str, stats_key: str) -> dict | None:
        row = self._conn().execute(
            "SELECT stats FROM summaries WHERE fingerprint=? AND dataset=? AND stats_key=?",
            (fingerprint, dataset, stats_key)).fetchone()
        return json.loads(row[0]) if row else None

    def put_summary(self, dataset: str, metric: str, fingerprint: str, stats_key: str,
                    stats: dict) -> None:
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?)",
                        (dataset, metric, fingerprint, stats_key, canonical_json(stats), time.time()))

    def summaries(self, dataset: str | None = None) -> list[dict]:
        q, args = "SELECT dataset, metric, stats FROM summaries", ()
        if dataset is not None:
            q, args = q + " WHERE dataset=?", (dataset,)
        return [{"dataset": d, "metric": m, **json.loads(s)}
                for d, m, s in self._conn().execute(q + " ORDER BY created", args)]

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, name: str, stage: str, config: dict | None = None) -> None:
        """Record a run as ``running`` (a rerun of a failed or interrupted run restarts it)."""
        with self.transaction() as con:
            con.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, 'running', ?, NULL, NULL)",
                        (name, stage, canonical_json(config or {}), time.time()))

    def finish_run(self, name: str, status: str = "complete", message: str | None = None) -> None:
        """Mark a run ``complete`` (only after its artifacts are on disk) or ``failed``."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"finish_run status must be 'complete' or 'failed', got {status!r}")
        with self.transaction() as con:
            cur = con.execute("UPDATE runs SET status=?, finished=?, message=? WHERE name=?",
                              (status, time.time(), message, name))
            if cur.rowcount == 0:
                raise KeyError(f"no run named {name!r} in {self.path}")

    def get_run(self, name: str) -> dict | None:
        row = self._conn().execute(
            "SELECT name, stage, config, status, started, finished, message FROM runs "
            "WHERE name=?", (name,)).fetchone()
        return _run_dict(row) if row else None

    def runs(self, stage: str | None = None, status: str | None = None) -> list[dict]:
        q, cond, args = ("SELECT name, stage, config, status, started, finished, message "
                         "FROM runs"), [], []
        if stage is not None:
            cond.append("stage=?")
            args.append(stage)
        if status is not None:
            cond.append("status=?")
            args.append(status)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        return [_run_dict(r) for r in self._conn().execute(q + " ORDER BY started", args)]

    def is_complete(self, name: str) -> bool:
        run = self.get_run(name)
        return run is not None and run["status"] == "complete"

    # -- generic results --------------------------------------------------------------------
    def put_result(self, stage: str, key: str, payload) -> None:
        now = time.time()
        with self.transaction() as con:
            con.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?) ON CONFLICT(stage, key) "
                        "DO UPDATE SET payload=excluded.payload, updated=excluded.updated",
                        (stage, key, canonical_json(payload), now, now))

    def get_result(self, stage: str, key: str):
        row = self._conn().execute("SELECT payload FROM results WHERE stage=? AND key=?",
                                   (stage, key)).fetchone()
        return json.loads(row[0]) if row else None

    def results(self, stage: str) -> dict:
        return {k: json.loads(p) for k, p in self._conn().execute(
            "SELECT key, payload FROM results WHERE stage=? ORDER BY key", (stage,))}


def run_once(store: ResultsStore | None, stage: str, key: str, config: dict,
             compute: Callable[[], dict], force: bool = False) -> dict:
    """The result of run ``<stage>/<key>``, computed at most once per store (stages are idempotent).

    ``config`` must describe everything that decides the result (data identity and items,
    options, weights hashes). A run that is ``complete`` in ``store`` *with the same recorded
    config* returns its stored result with ``from_store=True`` (unless ``force``); a different
    config, even under the same key, recomputes (and says so in the log). Otherwise the run is
    recorded as ``running`` with ``config``, and ``compute()`` gives the result, which goes into
    the ``results`` table before the run is marked ``complete``; if ``compute`` raises (also on
    interruption), the run is marked ``failed`` with the error and the error propagates. Without
    a store: ``compute()``.
    """
    if store is None:
        return compute()
    run_name = f"{stage}/{key}"
    run = store.get_run(run_name)
    if not force and run is not None and run["status"] == "complete":
        stored = store.get_result(stage, key)
        if stored is not None and run["config"] == json.loads(canonical_json(config)):
            return {**stored, "from_store": True}
        if stored is not None:
            log.info("%s: stored result was computed under another configuration; recomputing",
                     run_name)
    store.start_run(run_name, stage, config)
    try:
        result = compute()
    except BaseException as e:
        store.finish_run(run_name, "failed", f"{type(e).__name__}: {e}")
        raise
    store.put_result(stage, key, result)
    store.finish_run(run_name, "complete")
    return result


def _run_dict(row) -> dict:
    name, stage, config, status, started, finished, message = row
    return {"name": name, "stage": stage, "config": json.loads(config), "status": status,
            "started": started, "finished": finished, "message": message}
