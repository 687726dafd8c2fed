"""Exclusive locks between processes, on every platform: ``filelock`` (``flock`` on POSIX, ``msvcrt`` on Windows).

A lock lives in a lock file of its own; the operating system releases it when its holder
exits or is killed, so a crash never leaves a stale lock. Three things take one: a run
directory (:mod:`autoevol_dspy.runlock`), an evolution's output (its ``<stem>.lock``
sidecar) and a SQLite study's work queue (``<database>.queue-lock``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import filelock

__all__ = ["ProcessLock"]


class ProcessLock:
    """An exclusive lock on ``path`` held by one process at a time (and by one thread of it at a time)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # thread_local=False: a lock taken in one thread may be released in another (a pool's worker).
        self._lock = filelock.FileLock(str(self.path), thread_local=False)
        self._threads = threading.Lock()

    def try_acquire(self) -> bool:
        """Take the lock if no other process holds it; ``False`` at once if one does."""
        if not self._threads.acquire(blocking=False):
            return False
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            self._threads.release()
            return False
        return True

    def acquire(self) -> None:
        """Wait for the lock."""
        self._threads.acquire()
        try:
            self._lock.acquire()
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        self._lock.release()
        self._threads.release()

    def __enter__(self) -> "ProcessLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()
