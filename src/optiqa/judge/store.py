"""The judgment store: ``STUDY_DIR/judgments.db`` (SQLite), written only by the judging server.

Two tables. ``trials``: every pair the server showed a rater (who, which image crop, which run
on the left and on the right, whether it repeats an earlier trial). ``votes``: one row per
answered trial, keyed by the trial id, so a vote sent twice (a retry, a second tab) is stored
once. The vote row repeats the trial's fields so that the table alone is the data set (rater,
pair, crop, choice, response time, time stamp).

Durability (the SQLite setup is :func:`optiqa.core.sqlite.open_store`, shared with the study's
results store): WAL journal with ``synchronous=FULL`` and one transaction per vote, committed before
the server answers, so an answered vote survives a crash of the server or of the machine. All
access goes through one connection under a lock: the server is the only writer, and a few raters
produce a few votes per second, far below what one SQLite connection serves.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from optiqa.core.layout import JUDGMENTS
from optiqa.core.sqlite import has_table, open_readonly, open_store

DB_NAME = JUDGMENTS  # the store's file name in a study folder (optiqa.core.layout)
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    trial_id  TEXT PRIMARY KEY,
    rater     TEXT NOT NULL,
    seq       INTEGER NOT NULL,          -- the rater's 1st, 2nd, ... trial
    image_id  TEXT NOT NULL,
    crop      INTEGER NOT NULL,          -- index among the image's crops
    box       TEXT NOT NULL,             -- 'x,y,w,h' in pixels
    run_left  TEXT NOT NULL,
    run_right TEXT NOT NULL,
    repeat_of TEXT REFERENCES trials(trial_id),
    issued_at REAL NOT NULL,
    UNIQUE (rater, seq)
);
CREATE TABLE IF NOT EXISTS votes (
    vote_id     TEXT PRIMARY KEY REFERENCES trials(trial_id),
    rater       TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    crop        INTEGER NOT NULL,
    box         TEXT NOT NULL,
    run_left    TEXT NOT NULL,
    run_right   TEXT NOT NULL,
    choice      TEXT NOT NULL CHECK (choice IN ('left', 'right')),
    winner      TEXT NOT NULL,
    loser       TEXT NOT NULL,
    response_ms REAL NOT NULL,
    voted_at    REAL NOT NULL,
    repeat_of   TEXT
);
CREATE INDEX IF NOT EXISTS trials_by_rater ON trials (rater, seq);
CREATE INDEX IF NOT EXISTS votes_by_rater ON votes (rater);
"""


@dataclass(frozen=True)
class Trial:
    trial_id: str
    rater: str
    seq: int
    image_id: str
    crop: int
    box: tuple[int, int, int, int]
    run_left: str
    run_right: str
    repeat_of: str | None
    issued_at: float

    @property
    def pair(self) -> tuple[str, str]:
        """The two runs, sorted (a pair is unordered; sides are randomised)."""
        return tuple(sorted((self.run_left, self.run_right)))

    @property
    def crop_key(self) -> str:
        x, y, w, h = self.box
        return f"{self.image_id}@{x},{y},{w},{h}"


@dataclass(frozen=True)
class Vote:
    vote_id: str
    rater: str
    image_id: str
    crop: int
    box: tuple[int, int, int, int]
    run_left: str
    run_right: str
    choice: str
    winner: str
    loser: str
    response_ms: float
    voted_at: float
    repeat_of: str | None


def _box(text: str) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in text.split(","))


def _trial(row) -> Trial:
    return Trial(row[0], row[1], row[2], row[3], row[4], _box(row[5]), row[6], row[7], row[8],
                 row[9])


_TRIAL_COLUMNS = ("trial_id, rater, seq, image_id, crop, box, run_left, run_right, repeat_of, "
                  "issued_at")
_VOTE_COLUMNS = ("vote_id, rater, image_id, crop, box, run_left, run_right, choice, winner, "
                 "loser, response_ms, voted_at, repeat_of")


class JudgmentStore:
    """Read-write access for the server (one instance per process)."""

    def __init__(self, path):
        self.path = Path(path)
        # synchronous=FULL: an answered vote must survive a crash of the machine
        self._con = open_store(self.path, _SCHEMA, "schema", int(SCHEMA_VERSION), "FULL",
                               timeout=30, check_same_thread=False, what="judgment store")
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """Held by the server around read-schedule-issue, so two raters never race."""
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # trials -------------------------------------------------------------------------------
    def trial(self, trial_id: str) -> Trial | None:
        with self._lock:
            row = self._con.execute(f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE trial_id = ?",
                                    (trial_id,)).fetchone()
        return _trial(row) if row else None

    def pending(self, rater: str) -> list[Trial]:
        """The rater's issued, unanswered trials, oldest first."""
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_TRIAL_COLUMNS} FROM trials t WHERE rater = ? AND NOT EXISTS "
                f"(SELECT 1 FROM votes v WHERE v.vote_id = t.trial_id) ORDER BY seq",
                (rater,)).fetchall()
        return [_trial(r) for r in rows]

    def rater_trials(self, rater: str) -> list[tuple[Trial, bool]]:
        """All of the rater's trials with whether each is answered, oldest first."""
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_TRIAL_COLUMNS}, EXISTS (SELECT 1 FROM votes v WHERE "
                f"v.vote_id = t.trial_id) FROM trials t WHERE rater = ? ORDER BY seq",
                (rater,)).fetchall()
        return [(_trial(r[:10]), bool(r[10])) for r in rows]

    def issue(self, trial: Trial) -> None:
        with self._lock:
            self._con.execute(
                f"INSERT INTO trials ({_TRIAL_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (trial.trial_id, trial.rater, trial.seq, trial.image_id, trial.crop,
                 ",".join(map(str, trial.box)), trial.run_left, trial.run_right,
                 trial.repeat_of, trial.issued_at))

    def scheduled_counts(self) -> tuple[dict, dict]:
        """How often each run pair and each (pair, crop) was shown, repeats excluded.

        Counts issued trials (answered or pending), so raters working at the same time are not
        all sent to the same least-compared pair.
        """
        with self._lock:
            rows = self._con.execute(
                "SELECT run_left, run_right, image_id, box, COUNT(*) FROM trials "
                "WHERE repeat_of IS NULL GROUP BY run_left, run_right, image_id, box").fetchall()
        pairs: dict = {}
        crops: dict = {}
        for left, right, image_id, box, n in rows:
            pair = tuple(sorted((left, right)))
            pairs[pair] = pairs.get(pair, 0) + n
            key = (pair, f"{image_id}@{box}")
            crops[key] = crops.get(key, 0) + n
        return pairs, crops

    # votes --------------------------------------------------------------------------------
    def trial_answered(self, trial_id: str) -> bool:
        with self._lock:
            return self._con.execute("SELECT 1 FROM votes WHERE vote_id = ?",
                                     (trial_id,)).fetchone() is not None

    def record_vote(self, trial: Trial, choice: str, response_ms: float,
                    voted_at: float | None = None) -> bool:
        """Store the answer to ``trial``; False if it was answered already (nothing changes)."""
        winner, loser = ((trial.run_left, trial.run_right) if choice == "left"
                         else (trial.run_right, trial.run_left))
        with self._lock:
            cur = self._con.execute(
                f"INSERT OR IGNORE INTO votes ({_VOTE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (trial.trial_id, trial.rater, trial.image_id, trial.crop,
                 ",".join(map(str, trial.box)), trial.run_left, trial.run_right, choice, winner,
                 loser, float(response_ms), voted_at or time.time(), trial.repeat_of))
            return cur.rowcount == 1

    def votes(self) -> list[Vote]:
        with self._lock:
            return _votes(self._con)

    def vote_count(self, rater: str | None = None) -> int:
        with self._lock:
            if rater is None:
                return self._con.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
            return self._con.execute("SELECT COUNT(*) FROM votes WHERE rater = ?",
                                     (rater,)).fetchone()[0]

    def wins(self) -> dict[tuple[str, str], int]:
        """``{(winner, loser): count}`` over answered non-repeat trials."""
        with self._lock:
            rows = self._con.execute("SELECT winner, loser, COUNT(*) FROM votes WHERE repeat_of "
                                     "IS NULL GROUP BY winner, loser").fetchall()
        return {(w, l): n for w, l, n in rows}


def _votes(con) -> list[Vote]:
    rows = con.execute(f"SELECT {_VOTE_COLUMNS} FROM votes ORDER BY voted_at, vote_id").fetchall()
    return [Vote(r[0], r[1], r[2], r[3], _box(r[4]), *r[5:]) for r in rows]


def read_votes(path) -> list[Vote]:
    """Every stored vote, read-only (safe while the server runs); [] if there is no store."""
    path = Path(path)
    if not path.is_file():
        return []
    con = open_readonly(path)
    try:
        return _votes(con) if has_table(con, "votes") else []
    finally:
        con.close()
