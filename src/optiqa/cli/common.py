"""Pieces every command group shares: output files and the common options.

Nothing here imports torch: ``optiqa --help`` and argument errors must stay fast.
"""
from __future__ import annotations

import sys

DEVICE_HELP = ("auto (default: CUDA when present, else the CPU), cpu, cuda, cuda:N or mps; "
               "checked before any work starts")


def warn(message: str) -> None:
    """A diagnostic for the user: stderr, never stdout (results go there)."""
    print(message, file=sys.stderr)


def show_progress(args) -> bool:
    """Progress bars only on a terminal and without ``-q``: tqdm redraws its line with carriage
    returns, which a log file or a pipe would keep as one line per update."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def add_quiet(s, help: str = "no progress bar") -> None:
    s.add_argument("-q", "--quiet", action="store_true", help=help)


def add_device(s) -> None:
    """``--device``, the same for every command; :func:`optiqa.cli.main` checks it."""
    s.add_argument("--device", default="auto", metavar="DEVICE", help=DEVICE_HELP)
