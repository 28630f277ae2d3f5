"""Atomic, durable file writes: a reader never sees a half-written file.

Every write goes to a temporary file in the destination folder (``.<name>.<random>.tmp``), is
flushed and ``fsync``'ed, then moved onto the destination with one ``os.replace`` (atomic on POSIX
and Windows), and the folder is ``fsync``'ed so that the rename survives a power cut. On any error
the temporary file is removed and the previous file, if any, is left untouched. A crash between
``mkstemp`` and ``os.replace`` can leave a ``.*.tmp`` file behind; :func:`remove_stale_temp_files`
cleans those up before a run resumes.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

TEMP_PATTERN = ".*.tmp"


def _default_mode() -> int:
    """The permissions a plain ``open(path, 'w')`` would give (``0o666`` minus the umask):
    ``mkstemp`` creates its files ``0o600``, which would hide results from the other users of
    a shared study folder."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(folder: str | os.PathLike) -> None:
    """``fsync`` a folder so that a rename inside it is durable (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened; os.replace is atomic there too
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, writer: Callable[[str], object],
                 durable: bool = True) -> Path:
    """Let ``writer(tmp_path)`` write a temporary file, then move it onto ``path`` atomically.

    For writers that need a file name (``torch.save``, ``PIL.Image.save``, ``csv.writer`` on an
    ``open``). With ``durable`` the data and the rename are ``fsync``'ed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, _default_mode())
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), durable)


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), durable)


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically and durably (checkpoints, weights files)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | os.PathLike):
    """``torch.load`` on the CPU with ``weights_only=True`` (no code runs from the file)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of writes that a crash interrupted, under ``folder``.

    Only ``.*.tmp`` files are touched: real files are only ever created by ``os.replace``.
    """
    folder = Path(folder)
    stale = list(folder.rglob(TEMP_PATTERN)) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
