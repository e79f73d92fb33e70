"""One ingest at a time on an index: an exclusive ``fcntl.flock`` on ``index/ingest.lock``.

The kernel releases a ``flock`` when the process that holds it dies, even by SIGKILL: the lock can
never stay stuck. The file also says who holds it (pid, start time, command) so that a second
ingest can name it in its French message.

Usage::

    lock = IndexLock(Path("index"))
    lock.acquire(wait=True, timeout=None)      # blocks until the running ingest ends
    try:
        ...                                    # ingest
    finally:
        lock.release()

    with IndexLock(Path("index")).held(wait=False):   # raises IngestBusy at once if one is running
        ...
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError

LOCK_FILE = "ingest.lock"
POLL_S = 0.2


class IngestBusy(AssistantError):
    """Another ingest holds the lock of this index (French message naming its pid)."""

    def __init__(self, index_dir: Path | str, holder: dict[str, Any] | None) -> None:
        self.holder = holder or {}
        who = ""
        if self.holder.get("pid"):
            started = self.holder.get("started")
            since = time.strftime("%H:%M:%S", time.localtime(float(started))) if started else "?"
            who = f" (processus {self.holder['pid']}, lancé à {since})"
        self.running = f"Une indexation est déjà en cours sur {index_dir}{who}"
        super().__init__(f"{self.running}. Attendez qu'elle se termine, ou relancez sans --no-wait "
                         "pour attendre automatiquement.")


class IndexLock:
    """Exclusive lock of one index folder. Re-entrant within one object (counted)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.path = index_dir / LOCK_FILE
        self._fd: int | None = None
        self._depth = 0

    def holder(self) -> dict[str, Any] | None:
        """Who holds (or last held) the lock: ``{"pid", "started", "command"}``, or None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def locked(self) -> bool:
        """True when some process (this one included) holds the lock now."""
        if self._fd is not None:
            return True
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing releases a lock we may just have taken
        return False

    def acquire(self, wait: bool = True, timeout: float | None = None) -> None:
        """Take the lock. ``wait=False`` raises ``IngestBusy`` at once when it is held; with
        ``wait`` it blocks, up to ``timeout`` seconds (None = as long as it takes)."""
        if self._fd is not None:
            self._depth += 1
            return
        self.index_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    holder = self.holder()
                    os.close(fd)
                    raise IngestBusy(self.index_dir, holder) from None
                time.sleep(POLL_S)
        info = {"pid": os.getpid(), "started": time.time(), "command": " ".join(sys.argv[:3])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd, self._depth = fd, 1

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextmanager
    def held(self, wait: bool = True, timeout: float | None = None) -> Iterator[IndexLock]:
        self.acquire(wait=wait, timeout=timeout)
        try:
            yield self
        finally:
            self.release()
