"""IQA databases with human opinion scores: specs as data, one loader, one image index.

Each database is described by a :class:`DatasetSpec` (its standard meta-info CSV, which columns
hold the image names and the human score, whether that score is higher- or lower-better, FR or
NR). The meta-info files are the ones distributed with the IQA-PyTorch toolbox (Chen et al.,
https://github.com/chaofengc/IQA-PyTorch, ``pyiqa/data/meta_info``); they are not shipped with
optiqa. The database's own score files (``mos_with_names.txt``, ``dmos_realigned.mat``, ...)
are read as well (:mod:`optiqa.data.iqa_native`). A loader finds the scores (``meta``; else a
meta CSV under ``root`` by its standard name; else the authors' score file under ``root``; else
the CSV in ``$OPTIQA_META``) and the images anywhere under ``root``, matched by name
case-insensitively after a single directory walk, so any layout the database ships in works.

Quirks handled here: LIVE's names have no extension and its ``mos`` column holds DMOS (lower is
better); TID names mix upper and lower case (``I01.BMP``, ``i01_01_2.bmp``); KADID-10k's ``dmos``
column is higher-better; SPAQ's header has spaces (``Image name``) and a duplicated column.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from optiqa.data.image_index import ImageIndex
from optiqa.data.tabular import column_positions, read_csv_rows
from optiqa.core.errors import InputError
from optiqa.core.hashing import file_sha256, files_sha256, stable_hash
from optiqa.core.registry import Registry

log = logging.getLogger(__name__)

META_ENV = "OPTIQA_META"


@dataclass(frozen=True)
class DatasetSpec:
    """What optiqa knows about one database (data, not code)."""

    name: str                   # name on the command line
    title: str
    meta_file: str              # standard meta-info file name
    kind: str                   # "fr" (distorted + reference) or "nr" (single images)
    image_column: str           # distorted (FR) or image (NR) names
    reference_column: str | None
    score_column: str
    lower_better: bool
    score_meaning: str          # stated in every table header
    layout: str                 # where the official release keeps the images
    extra_columns: tuple = ()   # kept per item (e.g. std, KonIQ's official split)
    aliases: tuple = ()
    pyiqa_meta: str = ""        # the file's name inside IQA-PyTorch, also accepted under root

    @property
    def orientation(self) -> str:
        return "lower is better" if self.lower_better else "higher is better"


DATABASES: dict[str, DatasetSpec] = {s.name: s for s in [
    DatasetSpec("live", "LIVE IQA release 2", "LIVEIQA.csv", "fr", "dist_name", "ref_name", "mos",
                True, "DMOS (column 'mos'), lower = better",
                "refimgs/*.bmp and jp2k|jpeg|wn|gblur|fastfading/imgN.bmp (names without "
                "extension in the meta file)", aliases=("liveiqa",),
                pyiqa_meta="meta_info_LIVEIQADataset.csv"),
    DatasetSpec("csiq", "CSIQ", "CSIQ.csv", "fr", "dist_name", "ref_name", "dmos", True,
                "DMOS 0-1, lower = better", "src_imgs/*.png and dst_imgs/<type>/*.png",
                pyiqa_meta="meta_info_CSIQDataset.csv"),
    DatasetSpec("tid2008", "TID2008", "TID2008.csv", "fr", "dist_name", "ref_name", "mos", False,
                "MOS 0-9, higher = better", "reference_images/*.BMP and distorted_images/*.bmp",
                extra_columns=("std",), pyiqa_meta="meta_info_TID2008Dataset.csv"),
    DatasetSpec("tid2013", "TID2013", "TID2013.csv", "fr", "dist_name", "ref_name", "mos", False,
                "MOS 0-9, higher = better", "reference_images/*.BMP and distorted_images/*.bmp",
                extra_columns=("std",), pyiqa_meta="meta_info_TID2013Dataset.csv"),
    DatasetSpec("kadid10k", "KADID-10k", "KADID10k.csv", "fr", "dist_name", "ref_name", "dmos",
                False, "MOS-like 1-5 (column 'dmos'), higher = better",
                "images/*.png (references and distorted together)", extra_columns=("std",),
                aliases=("kadid",), pyiqa_meta="meta_info_KADID10kDataset.csv"),
    DatasetSpec("pipal", "PIPAL (public training part)", "PIPAL.csv", "fr", "dist_name",
                "hq_name", "elo_score", False, "Elo score, higher = better",
                "Train_Ref/*.bmp and Train_Dist/*.bmp",
                pyiqa_meta="meta_info_PIPALDataset.csv"),
    DatasetSpec("koniq10k", "KonIQ-10k", "KonIQ10k.csv", "nr", "img_name", None, "mos", False,
                "MOS 1-100, higher = better", "1024x768/*.jpg", extra_columns=("std", "split"),
                aliases=("koniq",), pyiqa_meta="meta_info_KonIQ10kDataset.csv"),
    DatasetSpec("spaq", "SPAQ", "SPAQ.csv", "nr", "Image name", None, "MOS", False,
                "MOS 0-100, higher = better", "TestImage/*.jpg",
                pyiqa_meta="meta_info_SPAQDataset.csv"),
    DatasetSpec("livec", "LIVE In the Wild Challenge", "LIVEChallenge.csv", "nr", "img_name",
                None, "mos", False, "MOS 0-100, higher = better", "Images/*.bmp|*.JPG",
                extra_columns=("std",), aliases=("live_challenge", "livechallenge", "clive"),
                pyiqa_meta="meta_info_LIVEChallengeDataset.csv"),
]}
_ALIASES = {a: s.name for s in DATABASES.values() for a in s.aliases}
# every database by name, aliases resolved case-insensitively; the built-in known-order set is
# listed beside them by optiqa.data.datasets, which loads either kind
DATASETS: Registry[DatasetSpec] = Registry(
    "dataset", DATABASES, resolver=lambda n: DATABASES.get(_ALIASES.get(n.lower(), n.lower())))


def get_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


# ---------------------------------------------------------------------------------------------
# items and datasets
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IQAItem:
    key: str                  # the image's name in the meta file (unique within the dataset)
    score: float              # human score in the dataset's own orientation
    group: str                # reference content (FR) or the image itself (NR)
    dist: Path | None         # distorted (FR) or the image (NR)
    ref: Path | None = None   # reference (FR only)
    extra: dict = field(default_factory=dict, compare=False)


@dataclass
class IQADataset:
    """Items with human scores. ``evaluation='within'`` = statistics inside each stratum."""

    spec: DatasetSpec
    items: list[IQAItem]
    meta_path: Path | None = None
    root: Path | None = None
    missing: list[str] = field(default_factory=list)  # names whose images were not found
    notes: list[str] = field(default_factory=list)    # things the user must be told (warnings)
    caveats: list[str] = field(default_factory=list)  # the same, short, for result headers
    evaluation: str = "pooled"                        # or "within"
    strata: list[str] | None = None                   # per item, for evaluation="within"
    label: str | None = None                          # e.g. "not human opinion"
    version: str = ""                                 # part of the store's dataset key

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def store_key(self) -> str:
        """Key of the per-item score cache: the name, version and image root. Cached scores are
        also checked against the SHA-256 of each item's files, so pixels never go stale; the
        human scores do not enter per-item scores (see :attr:`identity` for the summaries)."""
        key = f"{self.spec.name}@{self.version}" if self.version else self.spec.name
        if self.root is not None:
            key += "@" + stable_hash(str(Path(self.root).resolve()), 12)
        return key

    @property
    def identity(self) -> dict:
        """What identifies the data behind a result: name, version, resolved image root and the
        SHA-256 of every file the human scores were read from (a meta CSV, or a database's own
        score files: :func:`optiqa.data.iqa_native.score_files`); other human scores for the
        same images are other data."""
        from optiqa.data.iqa_native import score_files

        meta = None
        if self.meta_path:
            files = score_files(self.spec.name, self.meta_path)
            meta = (file_sha256(files[0]) if files == [Path(self.meta_path)] else
                    {p.name: file_sha256(p) for p in files})
        return {"name": self.spec.name, "version": self.version,
                "root": str(Path(self.root).resolve()) if self.root is not None else None,
                "meta_sha256": meta}

    def fingerprint(self) -> str:
        """Hash of :attr:`identity` and every item (name, files' content, score, group, stratum):
        equal exactly when a result computed on one dataset is valid for the other."""
        sigs = item_signatures(self.items)
        strata = self.strata or [None] * len(self.items)
        return stable_hash({"dataset": self.identity, "evaluation": self.evaluation,
                            "items": [[it.key, sigs[it.key], it.score, it.group, s]
                                      for it, s in zip(self.items, strata)]})

    def __len__(self) -> int:
        return len(self.items)

    @property
    def scores(self) -> np.ndarray:
        return np.array([it.score for it in self.items], dtype=np.float64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([it.group for it in self.items])

    @property
    def keys(self) -> list[str]:
        return [it.key for it in self.items]


def item_signatures(items) -> dict[str, str]:
    """``{item key: signature}``: the SHA-256 of the item's image files (distorted, reference),
    which changes whenever their pixels do (see :mod:`optiqa.core.hashing` for the cost)."""
    paths = sorted({p for it in items for p in (it.dist, it.ref) if p is not None})
    digest = dict(zip(paths, files_sha256(paths)))
    return {it.key: ":".join(digest[p][:32] for p in (it.dist, it.ref) if p is not None)
            for it in items}


def content_split(groups, test_fraction: float = 0.2, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Split item indices by reference content: no content is in both parts.

    Contents are shuffled with ``seed`` and the last ``round(test_fraction * n_contents)`` (at
    least one) go to the test part. Returns (train indices, test indices).
    """
    groups = np.asarray(groups)
    contents = np.unique(groups)
    if contents.size < 2:
        raise InputError("a content split needs at least two reference contents")
    rng = np.random.default_rng(seed)
    order = rng.permutation(contents)
    n_test = min(contents.size - 1, max(1, round(test_fraction * contents.size)))
    test = set(order[contents.size - n_test:].tolist())
    is_test = np.array([g in test for g in groups.tolist()])
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


# ---------------------------------------------------------------------------------------------
# meta files
# ---------------------------------------------------------------------------------------------
def find_meta(spec: DatasetSpec, meta: str | os.PathLike | None = None,
              index: ImageIndex | None = None) -> Path:
    """The human scores: ``meta``, else a meta CSV under the image root by name, else the
    database's own score file there (:mod:`optiqa.data.iqa_native`), else ``$OPTIQA_META``."""
    from optiqa.data import iqa_native

    if meta is not None:
        meta = Path(meta)
        if not meta.is_file() and not (meta.is_dir() and iqa_native.is_native(spec.name, meta)):
            raise InputError(f"{meta}: meta file not found")
        return meta
    names = [spec.meta_file] + ([spec.pyiqa_meta] if spec.pyiqa_meta else [])
    if index is not None:
        for n in names:
            rel = index.csv.get(n.lower())
            if rel is not None:
                return index.root / rel
        native = iqa_native.find_native(spec.name, index.root, index.files)
        if native is not None:
            return native
    env = os.environ.get(META_ENV)
    if env:
        for n in names:
            if (Path(env) / n).is_file():
                return Path(env) / n
    where = f" under {index.root}" if index is not None else ""
    raise InputError(
        f"no human scores for {spec.name}: name the file (meta), or keep the database's own "
        f"{iqa_native.describe_native(spec.name)} or {spec.meta_file} (or {spec.pyiqa_meta}) "
        f"anywhere under the image root{where}, or put {spec.meta_file} in the folder named by "
        f"${META_ENV}" + (f" (now {env})" if env else ""), option="meta")


def read_meta(spec: DatasetSpec, path: Path) -> list[dict]:
    """Rows of the meta CSV as dicts with keys ``image``, ``reference``, ``score`` and extras.

    Column names are matched ignoring case and surrounding/duplicate spaces; when a header names
    a column twice (SPAQ's ``Brightness``) the first one counts. The database's own score files
    are read by :func:`optiqa.data.iqa_native.read_native` into the same rows.
    """
    from optiqa.data import iqa_native

    if iqa_native.is_native(spec.name, path):
        return iqa_native.read_native(spec.name, path)
    rows = read_csv_rows(path, "meta file")
    wanted = {"reference": spec.reference_column} if spec.reference_column else {}
    wanted.update(image=spec.image_column, score=spec.score_column)
    pos = column_positions(rows[0], tuple(wanted.values()), tuple(spec.extra_columns), path,
                           f": wrong columns for {spec.name}")
    cols = {k: pos[v] for k, v in wanted.items()}
    extras = {c: pos[c] for c in spec.extra_columns if c in pos}
    out, seen = [], {}
    for line, r in enumerate(rows[1:], start=2):
        if not r or all(not c.strip() for c in r):
            continue
        if len(r) <= max(cols.values()):
            raise InputError(f"{path}:{line}: row has {len(r)} fields, expected at least "
                             f"{max(cols.values()) + 1}")
        try:
            score = float(r[cols["score"]])
        except ValueError:
            raise InputError(f"{path}:{line}: score {r[cols['score']]!r} in column "
                             f"{spec.score_column!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(f"{path}:{line}: score is not finite")
        name = r[cols["image"]].strip()
        if not name:
            raise InputError(f"{path}:{line}: empty image name")
        if name.lower() in seen:
            raise InputError(f"{path}: image {name!r} listed twice (lines {seen[name.lower()]} "
                             f"and {line})")
        seen[name.lower()] = line
        row = {"image": name, "score": score,
               "extra": {c: r[i] for c, i in extras.items() if i < len(r)}}
        if "reference" in cols:
            row["reference"] = r[cols["reference"]].strip()
        out.append(row)
    if not out:
        raise InputError(f"{path}: no rows")
    return out


def content_of(reference_name: str) -> str:
    """Reference-content group key: the reference's file name, lower case, without extension."""
    base = reference_name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return os.path.splitext(base)[0]


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
def load_database(name: str, root: str | os.PathLike | None = None,
                  meta: str | os.PathLike | None = None, allow_missing: bool = False
                  ) -> IQADataset:
    """Load a human-opinion database with its images found
    (:func:`optiqa.data.datasets.load_dataset` loads these and the built-in known-order set).

    Missing images are an error giving their count and the first names, unless
    ``allow_missing``: then the items whose images are present are kept and ``notes`` says how
    many were dropped (the CLI prints it prominently).
    """
    spec = get_spec(name)
    if root is None:
        raise InputError(f"dataset {spec.name} needs its root, the folder with its images "
                         f"({spec.layout})", option="root")
    index = ImageIndex(root)
    if index.n_images == 0:
        raise InputError(f"{index.root}: no image files under this folder (expected the "
                         f"{spec.title} images: {spec.layout})")
    meta_path = find_meta(spec, meta, index)
    rows = read_meta(spec, meta_path)
    items, missing = [], {}  # dict as an ordered set
    ref_cache: dict[str, Path | None] = {}
    for r in rows:
        dist = index.find(r["image"])
        ref = None
        if spec.kind == "fr":
            rname = r["reference"]
            if rname not in ref_cache:
                ref_cache[rname] = index.find(rname)
            ref = ref_cache[rname]
            if ref is None:
                missing[rname] = None
        if dist is None:
            missing[r["image"]] = None
        if dist is None or (spec.kind == "fr" and ref is None):
            continue
        group = content_of(r["reference"]) if spec.kind == "fr" else r["image"].lower()
        items.append(IQAItem(r["image"], r["score"], group, dist, ref, r["extra"]))
    ds = IQADataset(spec, items, meta_path=meta_path, root=index.root)
    if index.ambiguous:
        n, (ex, cands) = len(index.ambiguous), index.ambiguous[0]
        ds.caveats.append(f"{n} name(s) matched several files; the shallowest was used")
        ds.notes.append(f"{n} name(s) matched several files under {index.root}; the shallowest "
                        f"was used (e.g. {ex} -> {cands[0]}, not {cands[1]})")
    if missing:
        missing = list(missing)
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        what = (f"{len(missing)} image(s) listed in {meta_path.name} were not found under "
                f"{index.root} ({index.n_images} image files searched, names matched "
                f"case-insensitively): {shown}")
        if not allow_missing:
            raise InputError(f"{spec.name}: {what}; check the root, or allow missing images to "
                             f"run on the {len(items)} of {len(rows)} items that are present",
                             option="allow_missing")
        if not items:
            raise InputError(f"{spec.name}: none of the {len(rows)} items has its images under "
                             f"{index.root}")
        ds.missing = missing
        ds.caveats.append(f"{len(items)} of {len(rows)} items ({len(rows) - len(items)} missing "
                          "their images): not comparable with published figures")
        ds.notes.append(f"missing images allowed: {what}; running on {len(items)} of {len(rows)} "
                        "items, so results are NOT comparable with published figures")
    return ds


def load_dataset(*args, **kwargs) -> IQADataset:
    """Old name of :func:`load_database`, kept for one release (0.2.x): two functions called
    ``load_dataset`` meant different things (this one cannot load ``synthetic``)."""
    import warnings

    warnings.warn("optiqa.data.iqa.load_dataset is now load_database (or use "
                  "optiqa.data.datasets.load_dataset, which also loads 'synthetic'); the old "
                  "name goes in 0.3", DeprecationWarning, stacklevel=2)
    return load_database(*args, **kwargs)
