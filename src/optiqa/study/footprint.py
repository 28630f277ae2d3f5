"""A rehearsal's disk footprint: a finished cell keeps only what later stages read.

A full-size backbone discriminator (VGG-16: 14.8 M parameters, DINOv2-S: 22.2 M) costs its
weights in ``models/net_d_<i>.pth`` and twice that again in the Adam moments of
``state/<i>.state``; over the 147 cells of ``configs/study/paper.yaml`` a rehearsal wrote 23 GB.
What each later stage reads of a finished cell:

===========  ================================================================================
evaluate     ``models/net_g_<i>.pth`` (the marker names it and its SHA-256)
transfer     ``models/net_d_<i>.pth``: the gan initialisation reads D's backbone, zero-shot all of D
report       ``train_log.jsonl``, ``gradient_ratio.json``, ``config.yaml``
resume       ``state/<i>.state`` -- only while the cell is unfinished; a finished cell is never
             resumed (its ``complete.json`` marks it done under its config's hash)
===========  ================================================================================

So once a rehearsed cell is marked complete, :func:`compact_finished_run` deletes its resume
states and stores its discriminator once per content: a ``net_d`` file whose tensors equal those
of one already stored becomes a hard link to it (``<study>/rehearsal-data/models/<key>.pth``; the
key hashes the loaded tensors, not the file's bytes, which ``torch.save`` makes differ between
two saves of the same tensors). After a rehearsal's single iteration, every cell with the same
discriminator holds a bit-identical D (its one step sees the same start generator's output on
the same batch whatever the fidelity loss or weight), so the study keeps one copy per
discriminator. Generator files stay as they are (each cell's differs, and its completion marker
records the file's SHA-256). Where hard links are not possible (another file system) a file
stays as it is. Real runs are never compacted: their states make an exact resume possible, and
a study calls this only in a rehearsal.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger("optiqa.study")


def compact_finished_run(run, blobs: Path) -> int:
    """Delete a finished run's resume states and hard-link its discriminator files to one
    stored copy per content under ``blobs``; returns the bytes freed."""
    freed = 0
    for p in sorted(run.state.glob("*.state")) if run.state.is_dir() else []:
        freed += p.stat().st_size
        p.unlink()
    blobs.mkdir(parents=True, exist_ok=True)
    for _it, path in run.checkpoints("d"):
        freed += _link_to_copy(path, blobs / f"{tensor_content_key(path)}{path.suffix}")
    return freed


def tensor_content_key(path: Path) -> str:
    """SHA-256 of a checkpoint's loaded content: every key, and every tensor's dtype, shape and
    bytes (two ``torch.save`` of equal tensors give equal keys, unlike their files)."""
    import torch

    from optiqa.core.atomic import load_torch

    h = hashlib.sha256()

    def walk(x, where: str) -> None:
        h.update(where.encode())
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{where}/{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{where}[{i}]")
        else:
            h.update(repr(x).encode())
    walk(load_torch(path), "")
    return h.hexdigest()


def _link_to_copy(path: Path, stored: Path) -> int:
    """Make ``path`` a hard link to ``stored`` (first stored from ``path``); the bytes freed."""
    try:
        if not stored.exists():
            os.link(path, stored)
            return 0
        if os.path.samefile(path, stored):
            return 0
        size = path.stat().st_size
        tmp = path.with_name(f".{path.name}.link.tmp")   # a stale one is cleaned like any .*.tmp
        os.link(stored, tmp)
        os.replace(tmp, path)        # atomic: the path always holds the same content
        return size
    except OSError as e:             # no hard links here: keep the file
        log.debug("rehearsal: %s kept as a copy (%s)", path, e)
        return 0


def footprint(root: Path) -> int:
    """Bytes on disk under ``root``, each hard-linked file counted once."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
