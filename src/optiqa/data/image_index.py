"""The image index of an IQA database's folder: one ``os.walk``, names matched case-insensitively.

IQA databases ship in many layouts (flat folders, one folder per distortion, archives that add a
top folder or macOS debris) and their meta files name images in other cases (TID's
``I01.BMP`` / ``i01_01_2.bmp``) or without an extension (LIVE). So a loader walks the image root
once and finds every listed name here, whatever the layout (:func:`optiqa.data.iqa.
load_database`); the files that are not images are kept for the native score files
(:mod:`optiqa.data.iqa_native`).
"""
from __future__ import annotations

import os
from pathlib import Path

from optiqa.core.errors import InputError
from optiqa.data.io import IMAGE_EXTENSIONS


class ImageIndex:
    """Every image (and CSV) file under ``root``, found with one ``os.walk``.

    Lookups are case-insensitive by file name, by stem for names given without an extension
    (LIVE), and by trailing path components when the name has folders (``jp2k/img2``).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder (the root must be the folder holding the "
                             "database's images)", option="root")
        self.by_name: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        self.csv: dict[str, str] = {}
        self.files: dict[str, list[str]] = {}  # every other file, for the native score files
        self.n_images = 0
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            # hidden folders and macOS archive debris never hold the database's images
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
            rel_dir = os.path.relpath(dirpath, self.root)
            for fn in filenames:
                low = fn.lower()
                rel = fn if rel_dir == "." else f"{rel_dir}/{fn}".replace(os.sep, "/")
                stem, ext = os.path.splitext(low)
                if ext in IMAGE_EXTENSIONS and not fn.startswith("."):
                    self.by_name.setdefault(low, []).append(rel)
                    self.by_stem.setdefault(stem, []).append(rel)
                    self.n_images += 1
                elif not fn.startswith("."):
                    self.files.setdefault(low, []).append(rel)
                    if ext == ".csv":
                        self.csv.setdefault(low, rel)
        self.ambiguous: list[tuple[str, list[str]]] = []

    def find(self, name: str) -> Path | None:
        """The file for a meta-file name, or ``None``; the shallowest wins among several."""
        norm = name.strip().replace("\\", "/").strip("/").lower()
        base = norm.rsplit("/", 1)[-1]
        has_ext = os.path.splitext(base)[1] in IMAGE_EXTENSIONS
        cands = self.by_name.get(base, []) if has_ext else self.by_stem.get(base, [])
        if "/" in norm:
            # keep candidates whose trailing components match (extension ignored if not given)
            def tail(rel):
                r = rel.lower()
                return r if has_ext else os.path.splitext(r)[0]
            cands = [c for c in cands if tail(c) == norm or tail(c).endswith("/" + norm)]
        if not cands:
            return None
        if len(cands) > 1:
            cands = sorted(cands, key=lambda c: (c.count("/"), c))
            self.ambiguous.append((name, cands))
        return self.root / cands[0]


__all__ = ["ImageIndex"]
