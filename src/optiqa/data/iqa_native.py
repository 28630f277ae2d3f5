"""Human scores read from the files each IQA database ships with (no IQA-PyTorch CSV needed).

This module finds a database's files, lists those that decide the scores and, in
:func:`read_native`, picks the database's reader (:mod:`optiqa.data.iqa_native_readers`, one per
format) and checks the rows it returns. Each reader returns the rows that
:func:`optiqa.data.iqa.read_meta` returns for a meta-info CSV, ``{"image", "reference" (FR only),
"score", "extra"}``, with the names the database's images have (matched case-insensitively under
the root) and the score in the database's own orientation (that of
:data:`optiqa.data.iqa.DATASETS`). ``extra`` values are kept as text.

Files (found anywhere under the root; the first name when several are listed):

- tid2013, tid2008: ``mos_with_names.txt`` (+ ``mos_std.txt`` beside it), ``<MOS> <name>`` per
  line; the reference of ``i<nn>_...`` is ``I<nn>.BMP``;
- kadid10k: ``dmos.csv``, columns ``dist_img, ref_img, dmos, var``;
- csiq: ``csiq.DMOS.xlsx`` (sheet ``all_by_image``) or ``csiq.txt``, a text export of that
  sheet: columns ``image, dst_type, dst_lev, dmos`` (+ ``dmos_std``), the distorted file being
  ``<image>.<TYPE>.<level>.png``;
- live: ``dmos_realigned.mat`` (else ``dmos.mat``) + ``refnames_all.mat`` (+ ``<type>/info.txt``):
  982 entries in the readme's order (jp2k 227, jpeg 233, wn, gblur, fastfading 174 each), the
  reference images (``orgs == 1``) dropped;
- koniq10k: ``koniq10k_scores_and_distributions.csv`` (else ``koniq10k_distributions_sets.csv``):
  ``MOS_zscore`` (1-100) and ``SD``; the split from the sets file when it lies beside it;
- livec: ``AllMOS_release.mat`` + ``AllImages_release.mat`` (+ ``AllStdDev_release.mat``), all
  1169 images (t1-t7 included, as in IQA-PyTorch's CSV);
- spaq: ``MOS and Image attribute scores.xlsx``, columns ``Image name, MOS``;
- pipal: the ``Train_Label`` folder, ``<name>,<Elo>`` per line of each ``*.txt``; the reference
  of ``A0001_...`` is ``A0001.bmp``.
"""
from __future__ import annotations

import os
from pathlib import Path

from optiqa.core.errors import InputError
from optiqa.data.iqa_native_readers import (LIVE_FOLDERS, find_in, read_csiq, read_kadid,
                                            read_koniq, read_live, read_livec, read_pipal,
                                            read_spaq, read_tid, sibling)

# dataset -> score-file names (lower case), preferred first; "train_label" is PIPAL's folder
NATIVE_FILES: dict[str, tuple[str, ...]] = {
    "tid2013": ("mos_with_names.txt",),
    "tid2008": ("mos_with_names.txt",),
    "kadid10k": ("dmos.csv",),
    "csiq": ("csiq.dmos.xlsx", "csiq.txt"),
    "live": ("dmos_realigned.mat", "dmos.mat"),
    "koniq10k": ("koniq10k_scores_and_distributions.csv", "koniq10k_distributions_sets.csv"),
    "livec": ("allmos_release.mat",),
    "spaq": ("mos and image attribute scores.xlsx",),
    "pipal": ("train_label",),
}
PIPAL_LABELS = "train_label"


# ---------------------------------------------------------------------------------------------
# finding the files
# ---------------------------------------------------------------------------------------------
def native_names(dataset: str) -> tuple[str, ...]:
    return NATIVE_FILES.get(dataset, ())


def describe_native(dataset: str) -> str:
    """The authors' score files of ``dataset`` for messages, e.g. ``mos_with_names.txt``."""
    names = native_names(dataset)
    if dataset == "pipal":
        return "the Train_Label folder of PIPAL's label files"
    return " or ".join(names)


def find_native(dataset: str, root: Path, files: dict[str, list[str]]) -> Path | None:
    """The database's own score file under ``root`` (``files``: lower-case name -> relative
    paths of every non-image file there), or ``None``; several files of the name are an error."""
    for name in native_names(dataset):
        if name == PIPAL_LABELS:
            cands = sorted({os.path.dirname(rel) for rels in files.values() for rel in rels
                            if os.path.basename(os.path.dirname(rel)).lower() == PIPAL_LABELS
                            and rel.lower().endswith(".txt")})
        else:
            cands = sorted(files.get(name, []))
        if len(cands) > 1:
            raise InputError(f"{len(cands)} files named {name} under {root} ({', '.join(cands)}): "
                             "name the one to use as the meta file", option="meta")
        if cands:
            return root / cands[0]
    return None


def is_native(dataset: str, path: Path) -> bool:
    """Whether ``path`` is one of ``dataset``'s own score files (or PIPAL's label folder)."""
    path = Path(path)
    if dataset == "pipal":
        return path.is_dir()
    return path.name.lower() in native_names(dataset)


def read_native(dataset: str, path: Path) -> list[dict]:
    """Rows of ``dataset``'s own score file (module docstring), checked like a meta CSV."""
    path = Path(path)
    rows = _READERS[dataset](path)
    if dataset == "tid2008":
        _check_tid2008(rows, path)
    return _checked(rows, path)


# TID2008 has 17 distortion types; TID2013 adds types 18-24 to the same 25 references
TID2008_TYPES = 17


def _check_tid2008(rows: list[dict], path: Path) -> None:
    """TID2013's file read as TID2008 (same names, same format) is an error, not 3000 items."""
    newer = [r["image"] for r in rows if int(r["image"].split("_")[1]) > TID2008_TYPES]
    if newer:
        raise InputError(f"{path}: {len(newer)} images of distortion types above "
                         f"{TID2008_TYPES} (e.g. {newer[0]}): this is TID2013's file, not "
                         "TID2008's")


def score_files(dataset: str, path: Path) -> list[Path]:
    """Every file whose content decides the human scores read from ``path`` (a meta CSV or a
    native file): what a cache of results that depend on the scores must be keyed by."""
    path = Path(path)
    if not is_native(dataset, path):
        return [path]
    if dataset == "pipal":
        return sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt")
    extra = {
        "tid2013": ["mos_std.txt"], "tid2008": ["mos_std.txt"],
        "live": ["refnames_all.mat"],
        "koniq10k": ["koniq10k_distributions_sets.csv"],
        "livec": ["allimages_release.mat", "allstddev_release.mat"],
    }.get(dataset, [])
    out = [path] + [p for p in (sibling(path, n) for n in extra) if p is not None and p != path]
    if dataset == "live":
        out += [p for p in (find_in(path.parent / f, "info.txt") for f, _ in LIVE_FOLDERS) if p]
    return out


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _checked(rows: list[dict], path: Path) -> list[dict]:
    if not rows:
        raise InputError(f"{path}: no scores found")
    seen: dict[str, int] = {}
    for i, r in enumerate(rows):
        key = r["image"].lower()
        if not r["image"]:
            raise InputError(f"{path}: entry {i + 1} has an empty image name")
        if key in seen:
            raise InputError(f"{path}: image {r['image']!r} listed twice (entries {seen[key]} "
                             f"and {i + 1})")
        seen[key] = i + 1
        r.setdefault("extra", {})
    return rows


# ---------------------------------------------------------------------------------------------
# readers (:mod:`optiqa.data.iqa_native_readers`)
# ---------------------------------------------------------------------------------------------
_READERS = {"tid2013": read_tid, "tid2008": read_tid, "kadid10k": read_kadid, "csiq": read_csiq,
            "live": read_live, "koniq10k": read_koniq, "livec": read_livec, "spaq": read_spaq,
            "pipal": read_pipal}
