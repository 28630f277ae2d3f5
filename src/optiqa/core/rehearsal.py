"""Substitutions a rehearsal may make (``optiqa study CONFIG --rehearse``), and their record.

A rehearsal runs a study shrunk on a CPU so that a researcher learns that every cell, metric,
discriminator, analysis and report section works before GPU hours are spent. Weights that are
not on the machine are then replaced by fixed-seed random ones; outside a rehearsal that never
happens (a missing weight file is an error). The switch is the environment variable
:data:`ENV`, which names the file every substitution is appended to (one line each, once), so
the report can list them all; it is set only by the rehearsal, for its own process.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

ENV = "OPTIQA_REHEARSAL_SUBSTITUTIONS"


def substitutes_allowed() -> bool:
    """True inside a rehearsal (random weights may stand in for missing ones)."""
    return bool(os.environ.get(ENV))


def record(line: str) -> None:
    """Append one substitution to the rehearsal's record (each line once)."""
    path = os.environ.get(ENV)
    if not path:
        return
    p = Path(path)
    seen = set(p.read_text().splitlines()) if p.is_file() else set()
    if line not in seen:
        with open(p, "a") as f:
            f.write(line + "\n")


def recorded(path: str | Path) -> list[str]:
    p = Path(path)
    return p.read_text().splitlines() if p.is_file() else []


def name_seed(name: str) -> int:
    """A fixed seed per name (CRC-32): the same random weights on every machine and run."""
    return zlib.crc32(name.encode())
