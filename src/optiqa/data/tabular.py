"""Tables from text, CSV, Excel and MATLAB files, with errors that name the file and what was
expected: the low-level part of reading the IQA databases' own score files
(:mod:`optiqa.data.iqa_native_readers`)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from optiqa.core.errors import InputError


def text_lines(path: Path) -> list[str]:
    """The lines of a text file (UTF-8, else Latin-1; any line ending)."""
    try:
        with open(path, encoding="utf-8-sig", errors="strict") as f:
            return f.read().splitlines()
    except UnicodeDecodeError:
        with open(path, encoding="latin-1") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e})") from None


def number(value, path: Path, where: str) -> float:
    """``float(value)``; not a number or not finite is an error naming ``path`` + ``where``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}{where}: {value!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{path}{where}: score {value!r} is not finite")
    return v


def cell_text(v) -> str:
    """A cell value as text; whole-number floats (Excel's 1600.0) without the '.0'."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def column_positions(header, wanted: tuple, optional: tuple, path: Path, where: str
                     ) -> dict[str, int]:
    """Positions of the ``wanted`` (and present ``optional``) columns, names matched ignoring
    case and spaces; a missing wanted column is an error listing the header found."""
    norm = [" ".join(cell_text(c).lower().split()) if c is not None else "" for c in header]
    pos: dict[str, int] = {}
    for i, c in enumerate(norm):
        pos.setdefault(c, i)
    key = {c: " ".join(c.lower().split()) for c in wanted + optional}
    absent = [c for c in wanted if key[c] not in pos]
    if absent:
        found = ", ".join(cell_text(c) for c in header if c not in (None, ""))
        raise InputError(f"{path}{where}: expected columns {', '.join(wanted)}; missing "
                         f"{', '.join(absent)} (found: {found})")
    return {c: pos[key[c]] for c in wanted + optional if key[c] in pos}


def find_header_row(rows: list, wanted: tuple, path: Path, what: str, limit: int = 20) -> int:
    """Index of the first of the first ``limit`` rows that holds all ``wanted`` column names."""
    for i, r in enumerate(rows[:limit]):
        cells = {" ".join(cell_text(c).lower().split()) for c in r if c is not None}
        if all(w.lower() in cells for w in wanted):
            return i
    raise InputError(f"{path}: no header row with the columns {', '.join(wanted)} in the first "
                     f"{limit} rows of {what}")


def read_xlsx(path: Path, sheet: str | None) -> list[tuple]:
    """All rows (cell values) of one sheet of a workbook, read with openpyxl."""
    try:
        import openpyxl
    except ImportError:
        raise InputError(f"{path}: reading .xlsx files needs openpyxl (pip install openpyxl)"
                         ) from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zipfile/KeyError/... on a damaged file
        raise InputError(f"{path}: cannot read the workbook ({type(e).__name__}: {e})") from None
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif sheet in wb.sheetnames:
            ws = wb[sheet]
        else:
            raise InputError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
        return [tuple(r) for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()


def load_mat(path: Path, variables: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    import numpy as np
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError:  # MATLAB v7.3 (HDF5) files
        raise InputError(f"{path}: a MATLAB v7.3 file; save it with -v7 (scipy reads up to v7)"
                         ) from None
    except Exception as e:
        raise InputError(f"{path}: cannot read the MAT file ({type(e).__name__}: {e})") from None
    absent = [v for v in variables if v not in data]
    if absent:
        found = ", ".join(k for k in data if not k.startswith("__"))
        raise InputError(f"{path}: expected the variable(s) {', '.join(variables)}; missing "
                         f"{', '.join(absent)} (found: {found})")
    return {v: np.asarray(data[v]) for v in variables + optional if v in data}


def mat_strings(arr, path: Path, var: str) -> list[str]:
    """A MATLAB cell array of strings (any orientation) as a list of str."""
    import numpy as np

    out = []
    for cell in np.asarray(arr, dtype=object).ravel():
        flat = np.asarray(cell).ravel()
        if flat.size != 1 or not isinstance(flat[0], str):
            raise InputError(f"{path}: {var} must be a cell array of strings, found an entry "
                             f"{cell!r}")
        out.append(flat[0].strip())
    return out


def mat_numbers(arr, path: Path, var: str) -> list[float]:
    import numpy as np

    flat = np.asarray(arr).ravel()
    if flat.dtype.kind not in "fiub":
        raise InputError(f"{path}: {var} must be numeric, found {flat.dtype}")
    return [float(v) for v in flat]


def read_csv_rows(path: Path, what: str = "file", comment: str | None = None
                  ) -> list[list[str]]:
    """Every row of a CSV file (UTF-8, BOM dropped; lines starting with ``comment`` and blank
    lines skipped when ``comment`` is given); an unreadable or empty ``what`` is an error.
    The one CSV reader: meta-info files, manifests, published figures, recovery tables."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = f if comment is None else [ln for ln in f
                                                if ln.strip() and not ln.startswith(comment)]
            rows = list(csv.reader(lines))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read {what} ({e})") from None
    if not rows:
        raise InputError(f"{path}: empty {what}")
    return rows


def read_csv_dicts(path: Path, what: str = "file", comment: str | None = None) -> list[dict]:
    """The data rows of a CSV file as ``{header: text}`` (:func:`read_csv_rows`); a row whose
    length differs from the header's is an error naming its line."""
    rows = read_csv_rows(path, what, comment)
    header = rows[0]
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise InputError(f"{path}: {what} row {n} has {len(r)} fields, the header "
                             f"{len(header)}")
    return [dict(zip(header, r)) for r in rows[1:]]


def csv_records(path: Path, wanted: tuple, optional: tuple = ()):
    """``(line number, {column: stripped text})`` for every non-blank data row of a CSV file
    whose header names the ``wanted`` columns (and maybe the ``optional`` ones); a short row is
    an error naming its line."""
    rows = read_csv_rows(path)
    cols = column_positions(rows[0], wanted, optional, path, "")
    for n, r in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) <= max(cols.values()):
            raise InputError(f"{path}:{n}: {len(r)} fields, expected {len(rows[0])}")
        yield n, {c: r[i].strip() for c, i in cols.items()}
