"""Downloading a file: one retry policy, a checksum, an atomic write.

Policy (:func:`download`): up to :data:`ATTEMPTS` tries, waiting :data:`RETRY_WAITS_S` between
them, and only for errors that another try can cure (timeouts, dropped connections, HTTP 408, 429
and 5xx). A host that does not resolve, a refused connection, any other HTTP status or a checksum
mismatch fails at once. Each retry is one ``logging`` warning; nothing else is printed but the
progress bar (on a terminal).

Checksums: a full sha256, a prefix of it (torch hub's ``name-<first hex digits>.pth``
convention, see :func:`sha256_prefix_of`), or the sha256 the server vouches for in an
``X-Linked-Etag`` header (the Hugging Face Hub's LFS object id, sent on the redirect to its CDN).
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from optiqa.core.errors import OptiqaError

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_WAITS_S = (1.0, 3.0)
TIMEOUT_S = 30.0
_HASH_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class DownloadError(OptiqaError, OSError):
    """A download that failed for good; the message says why (one line)."""


def sha256_prefix_of(file_name: str) -> str | None:
    """The sha256 prefix in a torch-hub-style file name (``vgg16-397923af.pth`` -> ``397923af``)."""
    m = _HASH_PREFIX.search(file_name)
    return m.group(1) if m else None


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib does, keeping the headers of each redirect response."""

    def __init__(self):
        self.headers = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.headers.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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


def _fetch_once(url: str, dst: Path, sha256: str | None, prefix: str | None,
                progress: bool) -> Path:
    from tqdm import tqdm

    redirects = _Redirects()
    opener = urllib.request.build_opener(redirects)
    req = urllib.request.Request(url, headers={"User-Agent": "optiqa"})
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        with opener.open(req, timeout=TIMEOUT_S) as resp:
            if sha256 is None:  # the Hub names the LFS object's sha256 on its redirect
                for headers in [*redirects.headers, resp.headers]:
                    etag = (headers.get("X-Linked-Etag") or "").strip('"').lower()
                    if _SHA256.match(etag):
                        sha256 = etag
            total = int(resp.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True,
                                            desc=dst.name, disable=None if progress else True,
                                            leave=False) as bar:
                while block := resp.read(1 << 20):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        if total is not None and tmp.stat().st_size != total:
            raise http.client.IncompleteRead(b"", total - tmp.stat().st_size)
        digest = h.hexdigest()
        expected = sha256 or prefix
        if expected and not digest.startswith(expected):
            raise DownloadError(f"{url}: checksum mismatch: sha256 {digest}, expected "
                                f"{expected}{'' if sha256 else '...'}; the file was not kept")
        os.replace(tmp, dst)
        return dst
    finally:
        tmp.unlink(missing_ok=True)


def download(url: str, dst, sha256: str | None = None, sha256_prefix: str | None = None,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dst`` (atomically) and check its sha256; see the module docstring.

    ``sha256_prefix`` defaults to the prefix in the URL's file name, if any. Raises
    :class:`DownloadError` naming the URL and the last reason.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    prefix = sha256_prefix or sha256_prefix_of(url.rsplit("/", 1)[-1])
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _fetch_once(url, dst, sha256, prefix, progress)
        except DownloadError:
            raise
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
