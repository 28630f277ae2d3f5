"""Pieces every command group shares: output files and the common options.

Nothing here imports torch: ``optiqa --help`` and argument errors must stay fast.
"""
from __future__ import annotations

import sys


def warn(message: str) -> None:
    """A diagnostic for the user: stderr, never stdout (results go there)."""
    print(message, file=sys.stderr)


def add_quiet(s) -> None:
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
