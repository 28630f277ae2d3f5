"""The training log: a file in the run folder and the console, without breaking the progress bar."""
from __future__ import annotations

import logging
import sys


class TqdmHandler(logging.StreamHandler):
    """Console handler that writes through ``tqdm.write`` so log lines do not break the bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logger(log_file=None, console: bool = True, name: str = "optiqa.train",
                 console_level: int = logging.INFO) -> logging.Logger:
    """The training logger: INFO to ``log_file`` (appending), ``console_level`` and above to the
    console; not propagated, so the CLI's root configuration does not print each line twice."""
    logger = logging.getLogger(name)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    if log_file is not None:
        fh = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    if console:
        ch = TqdmHandler()
        ch.setLevel(console_level)
        ch.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(ch)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def format_terms(terms: dict) -> str:
    """``name value`` pairs; 7 significant digits (enough to compare runs)."""
    return " ".join(f"{k} {float(v):.7g}" for k, v in terms.items())
