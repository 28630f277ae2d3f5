"""The parsers of the IQA databases' own score files, one per format (TID, KADID, CSIQ, LIVE,
KonIQ, LIVE Challenge, SPAQ, PIPAL).

Each ``read_<db>(path)`` returns the rows described in :mod:`optiqa.data.iqa_native`, which finds
the files, picks the reader and checks the rows; the formats themselves (their columns, companion
files next to the score file and the databases' naming rules) are here, apart from that dispatch.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from optiqa.core.errors import InputError
from optiqa.data.tabular import (cell_text, column_positions, csv_records, find_header_row,
                                 load_mat, mat_numbers, mat_strings, number, read_xlsx,
                                 text_lines)

# LIVE release 2 readme: dmos = [jp2k(1:227) jpeg(1:233) wn(1:174) gblur(1:174) fastfading(1:174)]
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
LIVE_ENTRIES = sum(n for _, n in LIVE_FOLDERS)

# CSIQ's dst_type in the workbook -> the token in the distorted file names
CSIQ_TYPES = {"noise": "AWGN", "jpeg": "JPEG", "jpeg 2000": "jpeg2000", "fnoise": "fnoise",
              "blur": "BLUR", "contrast": "contrast"}

KONIQ_SPLITS = {"training": "train", "validation": "val", "test": "test"}


def find_in(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``, matched case-insensitively, or ``None``."""
    if not folder.is_dir():
        return None
    for p in sorted(folder.iterdir()):
        if p.name.lower() == name.lower() and p.is_file():
            return p
    return None


def sibling(path: Path, name: str) -> Path | None:
    """The file ``name`` in ``path``'s folder (case-insensitive), or ``None``."""
    return find_in(path.parent, name)


_TID_NAME = re.compile(r"i(\d+)_(\d+)_\d+\.bmp", re.IGNORECASE)


def read_tid(path: Path) -> list[dict]:
    """TID2008/TID2013 ``mos_with_names.txt``: ``<MOS> <name>`` per line (names such as
    ``i01_01_1.bmp``, lower case in the file though some files are upper case on disk); the
    reference of ``i<nn>_...`` is ``I<nn>.BMP`` (``i25.bmp`` on disk in TID2013); std from
    ``mos_std.txt`` in the same folder, one value per line in the same order, when present."""
    rows = []
    for n, line in enumerate(text_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise InputError(f"{path}:{n}: expected '<MOS> <image name>' (e.g. "
                             f"'5.51429 i01_01_1.bmp'), got {line.strip()!r}")
        score = number(parts[0], path, f":{n}")
        m = _TID_NAME.fullmatch(parts[1])
        if m is None:
            raise InputError(f"{path}:{n}: image name {parts[1]!r} is not of TID's form "
                             "i<ref>_<distortion>_<level>.bmp")
        rows.append({"image": parts[1], "reference": f"I{m.group(1)}.BMP", "score": score,
                     "extra": {}})
    std_path = sibling(path, "mos_std.txt")
    if std_path is not None:
        stds = [s.strip() for s in text_lines(std_path) if s.strip()]
        if len(stds) != len(rows):
            raise InputError(f"{std_path}: {len(stds)} values, expected one per line of "
                             f"{path.name} ({len(rows)})")
        for n, (r, s) in enumerate(zip(rows, stds), start=1):
            number(s, std_path, f": value {n}")
            r["extra"]["std"] = s
    return rows


def read_kadid(path: Path) -> list[dict]:
    """KADID-10k ``dmos.csv``: ``dist_img, ref_img, dmos, var`` (``dmos`` is higher-better
    despite the name; IQA-PyTorch's CSV calls ``var`` ``std``)."""
    out = []
    for n, r in csv_records(path, ("dist_img", "ref_img", "dmos"), ("var",)):
        out.append({"image": r["dist_img"], "reference": r["ref_img"],
                    "score": number(r["dmos"], path, f":{n}"),
                    "extra": {"var": r["var"]} if "var" in r else {}})
    return out


def read_csiq(path: Path) -> list[dict]:
    """CSIQ ``csiq.DMOS.xlsx`` (sheet ``all_by_image``: title rows, then a header with
    ``image, dst_idx, dst_type, dst_lev, dmos_std, dmos``) or ``csiq.txt``, the same sheet
    exported as tab- or comma-separated text. The distorted file of (image, type, level) is
    ``<image>.<TYPE>.<level>.png`` with TYPE from :data:`CSIQ_TYPES`; the reference
    ``<image>.png``. Numeric image names (``1600``) may be stored as numbers."""
    if path.suffix.lower() == ".xlsx":
        table, what = read_xlsx(path, "all_by_image"), "sheet all_by_image"
    else:
        lines = text_lines(path)
        delim = "\t" if any("\t" in ln for ln in lines[:20]) else ","
        table, what = [tuple(r) for r in csv.reader(lines, delimiter=delim)], "the file"
    wanted = ("image", "dst_type", "dst_lev", "dmos")
    h = find_header_row(table, wanted, path, what)
    cols = column_positions(table[h], wanted, ("dmos_std",), path, f" ({what}, row {h + 1})")
    out = []
    for n, r in enumerate(table[h + 1:], start=h + 2):
        cells = {k: (r[i] if i < len(r) else None) for k, i in cols.items()}
        if all(v is None or cell_text(v) == "" for k, v in cells.items() if k in wanted):
            continue  # blank rows below the table
        where = f" ({what}, row {n})"
        image, kind = cell_text(cells["image"]), cell_text(cells["dst_type"]).lower()
        if not image or kind not in CSIQ_TYPES:
            raise InputError(f"{path}{where}: expected an image name and a distortion type of "
                             f"{', '.join(CSIQ_TYPES)}, got {cells['image']!r}, "
                             f"{cells['dst_type']!r}")
        level = number(cells["dst_lev"], path, where)
        if not level.is_integer():
            raise InputError(f"{path}{where}: distortion level {cells['dst_lev']!r} is not whole")
        extra = ({"dmos_std": cell_text(cells["dmos_std"])}
                 if cells.get("dmos_std") not in (None, "") else {})
        out.append({"image": f"{image}.{CSIQ_TYPES[kind]}.{int(level)}.png",
                    "reference": f"{image}.png", "score": number(cells["dmos"], path, where),
                    "extra": extra})
    return out


def read_live(path: Path) -> list[dict]:
    """LIVE release 2: ``dmos_realigned.mat`` (``dmos_new``, ``orgs``, ``dmos_std``; the
    realigned DMOS the authors recommend) or ``dmos.mat`` (``dmos``, ``orgs``), with
    ``refnames_all.mat`` (``refnames_all``) next to it. The 982 entries follow the readme's order
    (:data:`LIVE_FOLDERS`): entry k of a folder is ``<folder>/img<k>.bmp``. Entries with
    ``orgs == 1`` are the reference images themselves (DMOS 0 in the realigned file) and are
    dropped, leaving 779. A ``<folder>/info.txt`` (``<reference> <image> <parameter>`` per line)
    next to the file is checked against ``refnames_all``."""
    realigned = path.name.lower() == "dmos_realigned.mat"
    score_var = "dmos_new" if realigned else "dmos"
    data = load_mat(path, (score_var, "orgs"), ("dmos_std",) if realigned else ())
    refs_path = sibling(path, "refnames_all.mat")
    if refs_path is None:
        raise InputError(f"{path}: refnames_all.mat (the reference of each entry) must lie in "
                         "the same folder")
    refs = mat_strings(load_mat(refs_path, ("refnames_all",))["refnames_all"], refs_path,
                        "refnames_all")
    dmos = mat_numbers(data[score_var], path, score_var)
    orgs = mat_numbers(data["orgs"], path, "orgs")
    stds = mat_numbers(data["dmos_std"], path, "dmos_std") if "dmos_std" in data else None
    for what, seq, where in ((score_var, dmos, path), ("orgs", orgs, path),
                             ("refnames_all", refs, refs_path)):
        if len(seq) != LIVE_ENTRIES:
            raise InputError(f"{where}: {what} has {len(seq)} entries, expected {LIVE_ENTRIES} "
                             "(jp2k 227, jpeg 233, wn, gblur, fastfading 174 each)")
    names = [f"{folder}/img{k}.bmp" for folder, n in LIVE_FOLDERS for k in range(1, n + 1)]
    _check_live_info(path.parent, names, refs)
    out = []
    for i, (name, ref, score, org) in enumerate(zip(names, refs, dmos, orgs)):
        if org not in (0.0, 1.0):
            raise InputError(f"{path}: orgs[{i + 1}] = {org:g}, expected 0 or 1")
        if org == 1.0:
            continue
        if not math.isfinite(score):
            raise InputError(f"{path}: {score_var}[{i + 1}] ({name}) is not finite")
        extra = {"dmos_std": repr(stds[i])} if stds is not None and len(stds) == len(dmos) else {}
        out.append({"image": name, "reference": ref, "score": score, "extra": extra})
    return out


def _check_live_info(folder: Path, names: list[str], refs: list[str]) -> None:
    """Each ``<type>/info.txt`` present must give the same reference as ``refnames_all``."""
    ref_of = {n.lower(): r for n, r in zip(names, refs)}
    for sub, count in LIVE_FOLDERS:
        info = find_in(folder / sub, "info.txt")
        if info is None:
            continue
        for n, line in enumerate(text_lines(info), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise InputError(f"{info}:{n}: expected '<reference> <image> ...', got "
                                 f"{line.strip()!r}")
            key = f"{sub}/{parts[1]}".lower()
            if key not in ref_of:
                raise InputError(f"{info}:{n}: {parts[1]!r} is not one of the {count} images "
                                 f"img1.bmp..img{count}.bmp of {sub}")
            if parts[0].lower() != ref_of[key].lower():
                raise InputError(f"{info}:{n}: {parts[1]} has reference {parts[0]}, but "
                                 f"refnames_all.mat gives {ref_of[key]}")


def read_koniq(path: Path) -> list[dict]:
    """KonIQ-10k ``koniq10k_scores_and_distributions.csv``: ``image_name``, ``MOS_zscore`` (the
    1-100 MOS of the paper; ``MOS`` there is on the 1-5 rating scale), ``SD`` (1-5 scale).
    Or the GitHub ``koniq10k_distributions_sets.csv``, whose ``MOS`` is on the 1-100 scale and
    ``set`` gives the official split; that file next to the first adds the split to it."""
    sets_file = path.name.lower() == "koniq10k_distributions_sets.csv"
    score_col = "MOS" if sets_file else "MOS_zscore"
    out = []
    for n, r in csv_records(path, ("image_name", score_col), ("SD", "set")):
        extra = {"std": r["SD"]} if "SD" in r else {}
        if "set" in r:
            extra["split"] = KONIQ_SPLITS.get(r["set"], r["set"])
        out.append({"image": r["image_name"], "score": number(r[score_col], path, f":{n}"),
                    "extra": extra})
    sets = None if sets_file else sibling(path, "koniq10k_distributions_sets.csv")
    if sets is not None:
        split = {r["image"].lower(): r["extra"].get("split") for r in read_koniq(sets)}
        absent = [r["image"] for r in out if split.get(r["image"].lower()) is None]
        if absent:
            raise InputError(f"{sets}: no split for {len(absent)} image(s) of {path.name}, e.g. "
                             f"{absent[0]}")
        for r in out:
            r["extra"]["split"] = split[r["image"].lower()]
    return out


def read_livec(path: Path) -> list[dict]:
    """LIVE In the Wild Challenge ``AllMOS_release.mat`` (``AllMOS_release``) with
    ``AllImages_release.mat`` (``AllImages_release``, a cell of names) and, when present,
    ``AllStdDev_release.mat`` (``AllStdDev_release``) in the same folder. All 1169 images are
    kept, the seven training images ``t1.bmp``-``t7.bmp`` included (as in IQA-PyTorch's CSV)."""
    mos = mat_numbers(load_mat(path, ("AllMOS_release",))["AllMOS_release"], path,
                       "AllMOS_release")
    names_path = sibling(path, "allimages_release.mat")
    if names_path is None:
        raise InputError(f"{path}: AllImages_release.mat (the image names) must lie in the same "
                         "folder")
    names = mat_strings(load_mat(names_path, ("AllImages_release",))["AllImages_release"],
                         names_path, "AllImages_release")
    if len(names) != len(mos):
        raise InputError(f"{names_path}: {len(names)} names, but {path.name} has {len(mos)} "
                         "scores")
    std_path = sibling(path, "allstddev_release.mat")
    stds = None
    if std_path is not None:
        stds = mat_numbers(load_mat(std_path, ("AllStdDev_release",))["AllStdDev_release"],
                            std_path, "AllStdDev_release")
        if len(stds) != len(mos):
            raise InputError(f"{std_path}: {len(stds)} values, but {path.name} has {len(mos)}")
    return [{"image": name, "score": number(m, path, f": entry {i + 1}"),
             "extra": {"std": repr(stds[i])} if stds is not None else {}}
            for i, (name, m) in enumerate(zip(names, mos))]


def read_spaq(path: Path) -> list[dict]:
    """SPAQ ``MOS and Image attribute scores.xlsx``: columns ``Image name`` and ``MOS`` (the
    attribute scores that follow are not read)."""
    table = read_xlsx(path, None)
    wanted = ("image name", "mos")
    h = find_header_row(table, wanted, path, "the first sheet")
    cols = column_positions(table[h], ("Image name", "MOS"), (), path, f" (row {h + 1})")
    out = []
    for n, r in enumerate(table[h + 1:], start=h + 2):
        name = r[cols["Image name"]] if cols["Image name"] < len(r) else None
        score = r[cols["MOS"]] if cols["MOS"] < len(r) else None
        if (name is None or cell_text(name) == "") and score is None:
            continue
        out.append({"image": cell_text(name), "score": number(score, path, f" (row {n})"),
                    "extra": {}})
    return out


def read_pipal(path: Path) -> list[dict]:
    """PIPAL's ``Train_Label`` folder: one ``*.txt`` per reference, ``<image>,<Elo>`` per line
    (``A0001_00_00.bmp,1520.0648``); the reference of ``A0001_..`` is ``A0001.bmp``."""
    if not path.is_dir():
        raise InputError(f"{path}: expected PIPAL's Train_Label folder of *.txt label files")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise InputError(f"{path}: no *.txt label files")
    out = []
    for f in files:
        for n, line in enumerate(text_lines(f), start=1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != 2 or "_" not in parts[0]:
                raise InputError(f"{f}:{n}: expected '<ref>_<type>_<n>.bmp,<Elo score>', got "
                                 f"{line.strip()!r}")
            out.append({"image": parts[0], "reference": parts[0].split("_")[0] + ".bmp",
                        "score": number(parts[1], f, f":{n}"), "extra": {}})
    return out
