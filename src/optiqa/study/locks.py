"""Per-cell lock files: two runners on one study never run the same cell at once.

A lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local file systems and on NFSv3+)
holding its owner's host, process id, start time and a heartbeat that a background thread
refreshes. A lock is *stale* when its owner is gone: on the same host, the process no longer
exists; on another host (a SLURM node), the heartbeat is older than ``stale_after`` seconds. A
stale lock is broken by renaming it to a unique name first (atomic: of two runners breaking it at
once, only one rename succeeds) and then taking the lock anew.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

log = logging.getLogger("optiqa.study")

HEARTBEAT_SECONDS = 30.0
POLL_SECONDS = 5.0  # between passes over cells that other runners hold
STALE_AFTER_SECONDS = 600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_stale(info: dict | None, stale_after: float = STALE_AFTER_SECONDS) -> bool:
    """Whether the owner of a lock (its parsed content) is gone."""
    if info is None:  # unreadable: a writer died between create and write, or garbage
        return True
    if info.get("host") == socket.gethostname():
        return not _pid_alive(int(info.get("pid", -1)))
    return time.time() - float(info.get("heartbeat", 0)) > stale_after


class CellLock:
    """``with CellLock(path) as got:`` -- ``got`` is False when another live runner holds it."""

    def __init__(self, path: str | os.PathLike, stale_after: float = STALE_AFTER_SECONDS,
                 heartbeat: float = HEARTBEAT_SECONDS):
        self.path = Path(path)
        self.stale_after, self.heartbeat = stale_after, heartbeat
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _content(self) -> str:
        now = time.time()
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": now,
                           "heartbeat": now, "token": self._token})

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._token = uuid.uuid4().hex
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not is_stale(read_lock(self.path), self.stale_after):
                    return False
                try:  # break it: only one of several breakers wins the rename
                    os.rename(self.path, self.path.with_name(
                        f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}"))
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self._content())
                f.flush()
                os.fsync(f.fileno())
            self.held = True
            self._start_heartbeat()
            return True
        return False

    def _start_heartbeat(self) -> None:
        def beat():
            while not self._stop.wait(self.heartbeat):
                info = read_lock(self.path)
                if info is None or info.get("token") != self._token:
                    return  # broken by someone who judged us dead: stop touching it
                info["heartbeat"] = time.time()
                tmp = self.path.with_name(f".{self.path.name}.{self._token[:8]}.tmp")
                tmp.write_text(json.dumps(info))
                os.replace(tmp, self.path)
        self._thread = threading.Thread(target=beat, daemon=True, name=f"lock {self.path.name}")
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            info = read_lock(self.path)
            if info is not None and info.get("token") == self._token:
                self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def owner(self) -> str:
        info = read_lock(self.path) or {}
        return f"{info.get('host', '?')}:{info.get('pid', '?')}"


def run_locked(path: str | os.PathLike, is_done, work) -> str:
    """Lock, check, run: the one way a cell's work is done by one of several runners.

    ``'done'`` when ``is_done()`` holds before the lock is taken or once it is held (another
    runner finished meanwhile: checked again under the lock, else both would do the work),
    ``'busy'`` when another live runner holds the lock, else ``work()``'s result. The lock is
    released however ``work`` ends.
    """
    if is_done():
        return "done"
    lock = CellLock(path)
    if not lock.acquire():
        return "busy"
    try:
        return "done" if is_done() else work()
    finally:
        lock.release()


def poll_until_done(items, attempt, poll: float, name=lambda item: item.name,
                    sleep=time.sleep) -> dict[str, str]:
    """Call ``attempt(item)`` on every item until each has returned a status other than
    ``'busy'`` (or ``None``: not ready yet); after a pass in which nothing progressed, sleep
    ``poll`` seconds before the next (another runner holds what is left). Returns
    ``{name(item): status}``."""
    status: dict[str, str] = {}
    pending = list(items)
    while pending:
        waiting = []
        for item in pending:
            result = attempt(item)
            if result in (None, "busy"):
                waiting.append(item)
            else:
                status[name(item)] = result
        if waiting and len(waiting) == len(pending):
            log.info("waiting for %d item(s) another runner holds: %s", len(waiting),
                     ", ".join(name(i) for i in waiting[:4]))
            sleep(poll)
        pending = waiting
    return status
