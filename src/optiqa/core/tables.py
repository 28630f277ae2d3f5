"""Plain-text tables and CSV/JSON writers shared by the CLI commands."""
from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from optiqa.core.atomic import atomic_write


def format_value(v, digits: int = 4) -> str:
    """A table cell, the same in every table (CLI, HTML, Markdown, figure labels): ``-`` for a
    missing value (None), ``nan`` / ``inf`` / ``-inf`` for a non-finite number (an undefined
    value is not a missing one), ``yes`` / ``no``, floats with ``digits`` decimals and never
    ``-0.0000`` (a negative number that rounds to zero prints as zero)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        text = f"{v:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    return str(v)


def format_table(headers: Sequence[str], rows: Iterable[Sequence], digits: int = 4,
                 title: str | None = None) -> str:
    """Left-aligned text columns, right-aligned numbers, one header rule."""
    rows = [[format_value(v, digits) for v in r] for r in rows]
    numeric = [all(_is_number(r[i]) for r in rows) if rows else False for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(cells, widths, numeric)).rstrip()

    out = []
    if title:
        out.append(title)
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


_FOOTNOTE = re.compile(r"( \[\d+\])+$")


def _is_number(s: str) -> bool:
    """A number, or a cell that stands for one: ``n/a``, ``-``, a number with a footnote mark."""
    s = _FOOTNOTE.sub("", s)
    if s == "n/a":
        return True
    try:
        float(s)
        return True
    except ValueError:
        return s in ("-", "nan", "inf", "-inf")


def write_csv(path: str | os.PathLike, headers: Sequence[str], rows: Iterable[Sequence]) -> Path:
    rows = list(rows)

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(headers)
            w.writerows(rows)

    return atomic_write(path, write)


def write_json(path: str | os.PathLike, obj) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=True)
            f.write("\n")

    return atomic_write(path, write)
