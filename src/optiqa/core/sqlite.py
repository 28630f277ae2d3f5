"""The one SQLite setup of optiqa's two stores (the study's cache, the judging app's votes).

Both are single-writer files in a study folder: WAL journal (readers never block the writer and
a crash leaves the last committed transaction), foreign keys on, a busy timeout for a second
process, the schema created idempotently and its version kept in a ``meta`` table. A file
written by a newer schema than this code reads is refused with the version numbers, never half
understood. Readers that must not write (the analysis reading votes while the server runs) open
the file read-only through :func:`open_readonly`.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from optiqa.core.errors import ConfigError

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def open_store(path: str | Path, schema: str, version_key: str, version: int,
               synchronous: str = "NORMAL", timeout: float = 60.0,
               check_same_thread: bool = True, what: str = "SQLite store") -> sqlite3.Connection:
    """An autocommit connection to ``path`` with ``schema`` applied and its version checked.

    ``synchronous``: ``NORMAL`` for a cache (a crash may lose the last transaction, which is
    recomputed), ``FULL`` where a lost row is lost data (a rater's vote). ``version_key`` names
    the ``meta`` row holding the schema version (the two stores predate this module and keep
    their own key, so existing files stay readable). ``what`` names the store in errors.
    """
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not "
                         f"{synchronous!r}")
    path = Path(path)
    try:
        con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                              check_same_thread=check_same_thread)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={synchronous}")
        con.execute("PRAGMA foreign_keys=ON")
        _init_schema(con, path, schema, version_key, version)
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path}: not a usable {what} ({e})") from None
    return con


def _init_schema(con: sqlite3.Connection, path: Path, schema: str, version_key: str,
                 version: int) -> None:
    # one immediate transaction: two processes opening a new file create the schema once
    con.execute("BEGIN IMMEDIATE")
    try:
        for stmt in schema.strip().split(";"):
            if stmt.strip():
                con.execute(stmt)
        row = con.execute("SELECT value FROM meta WHERE key=?", (version_key,)).fetchone()
        if row is None:
            con.execute("INSERT INTO meta VALUES (?, ?)", (version_key, str(version)))
        elif int(row[0]) > version:
            raise ConfigError(f"{path}: written by a newer optiqa (schema {row[0]}, this "
                              f"version reads up to {version}); upgrade optiqa")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def open_readonly(path: str | Path, timeout: float = 30.0) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``): safe beside a running writer, never creates a file."""
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)


def has_table(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (name,)).fetchone() is not None
