"""Held out means checked: the training images against every image the study measures with.

Before any work, every image the generators and discriminators train on is compared by content
with every test set (evaluation), every IQA dataset (assessment) and the transfer dataset. The
content of a file is the SHA-256 of its bytes; a built-in photo's content is its name (the same
photo at any size is the same content). An image in both is an error naming the files; when
the check passes its result is written to ``heldout.json``, and only then does the report say
that the data is held out (:func:`heldout_sentence`). The check is exact: a re-encoded or
resized copy of a training photo is not found by it, which the sentence says.
"""
from __future__ import annotations

from pathlib import Path

from optiqa.core.errors import ConfigError
from optiqa.core.hashing import file_sha256, stable_hash


def _builtin(source: str) -> dict[str, str]:
    from optiqa.data.samples import SPLITS, sample_names

    name = source.removeprefix("builtin:").partition("/")[0]
    photos = sample_names() if name == "samples" else SPLITS.get(name, ())
    return {f"builtin:{p}": f"{p} (built-in photo)" for p in photos}


def _files(paths) -> dict[str, str]:
    return {file_sha256(p): str(p) for p in paths}


def folder_contents(source) -> dict[str, str]:
    """``{content hash: file}`` of an image folder (``HR/`` of a benchmark set) or built-in
    data."""
    from optiqa.data.io import list_images

    if source is None:
        return {}
    if str(source).startswith("builtin:"):
        return _builtin(str(source))
    root = Path(source)
    if (root / "HR").is_dir():
        root = root / "HR"
    return _files(list_images(root, recursive=True)) if root.is_dir() else {}


def iqa_contents(opts) -> dict[str, str]:
    """The contents of an IQA dataset: its photos (synthetic) or its reference images (FR
    databases) and, for NR databases, every image."""
    from optiqa.data.samples import SPLITS, sample_names

    if opts.name.lower() == "synthetic":
        photos = opts.photos
        if photos is None:
            photos = sample_names()
        elif isinstance(photos, str):
            photos = list(SPLITS[photos]) if photos in SPLITS else [photos]
        return {f"builtin:{p}": f"{p} (built-in photo)" for p in photos}
    from optiqa.study.assessment import load_iqa_dataset

    ds = load_iqa_dataset(opts)
    paths = {it.ref if it.ref is not None else it.dist for it in ds.items}
    return _files(sorted(p for p in paths if p is not None and Path(p).is_file()))


def measured_sets(cfg) -> list[tuple[str, dict[str, str]]]:
    """``(study key, contents)`` of every set the study measures with."""
    out = [(f"data.test.{name}", folder_contents(path)) for name, path in cfg.data.test.items()]
    out += [(f"assessment.datasets[{i}] ({d.name})", iqa_contents(d))
            for i, d in enumerate(cfg.assessment.datasets)]
    if cfg.transfer is not None:
        out.append((f"transfer.dataset ({cfg.transfer.dataset.name})",
                    iqa_contents(cfg.transfer.dataset)))
    return out


def check_heldout(cfg) -> dict:
    """Compare the training images with every measured set; raise :class:`ConfigError` naming
    the shared files, else return the record written to ``heldout.json``."""
    train = folder_contents(cfg.data.train)
    if cfg.data.train_lq:
        train.update(folder_contents(cfg.data.train_lq))
    problems, sets = [], []
    for key, contents in measured_sets(cfg):
        shared = sorted(set(train) & set(contents))
        sets.append({"set": key, "images": len(contents)})
        if shared:
            problems.append(f"{key} shares {len(shared)} image(s) with data.train: "
                            + ", ".join(f"{contents[h]} = {train[h]}" for h in shared[:6])
                            + (" ..." if len(shared) > 6 else ""))
    if problems:
        raise ConfigError("training images are also used to measure (held-out data is "
                          "required): " + "; ".join(problems))
    return {"passed": True, "training_images": len(train), "sets": sets,
            "key": heldout_key(cfg)}


def heldout_key(cfg) -> str:
    """What the check depends on: the training and measured data of the config."""
    return stable_hash({"train": [cfg.data.train, cfg.data.train_lq], "test": cfg.data.test,
                        "assessment": [d.__dict__ for d in cfg.assessment.datasets],
                        "transfer": cfg.transfer.dataset.__dict__ if cfg.transfer else None})


def heldout_sentence(record: dict | None, cfg) -> str | None:
    """The report's held-out sentence, only when the check ran on this config and passed."""
    if not record or not record.get("passed") or record.get("key") != heldout_key(cfg):
        return None
    return (f"Held-out data: checked before any work. None of the {record['training_images']} "
            "training images (compared by content: file SHA-256, built-in photos by name; a "
            "resized or re-encoded copy is not detected) is in "
            + ", ".join(f"{s['set']} ({s['images']} images)" for s in record["sets"]) + ".")
