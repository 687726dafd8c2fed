"""One process per run directory: an exclusive lock file that names the process holding it.

``autoevol optimize`` and ``autoevol prompt`` take it before they touch a run's files or
study, so a second process on the same directory is refused in one line naming the
first one's pid, instead of both writing duplicate trials. The lock is an advisory
``flock`` on ``RUN_DIR/.autoevol.lock``: the OS releases it when its holder exits or is
killed, so a crash never leaves a stale lock. (``evolve`` locks its output file the same
way, see :class:`autoevol_dspy.data.io.RowStore`.)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from autoevol_dspy.errors import RunConflictError
from autoevol_dspy.files import remove_temporaries

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process guard
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunDirLock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".autoevol.lock"


class RunDirLock:
    """Hold ``run_dir`` for this process (a context manager); a held directory raises :class:`RunConflictError`."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self) -> "RunDirLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(handle)
                handle.close()
                raise RunConflictError(
                    f"{self.run_dir} is in use by another autoevol process (pid {holder}); wait for it to end "
                    "or use another output directory"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        if remove_temporaries(self.run_dir):
            logger.info("removed temporary files an interrupted run left in %s", self.run_dir)
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the flock
            self._handle = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


def _holder(handle: IO[str], wait_s: float = 1.0) -> str:
    """The pid the holder wrote into the lock file (it writes it just after locking: wait briefly for it)."""
    deadline = time.monotonic() + wait_s
    while True:
        handle.seek(0)
        text = handle.read().strip()
        if text or time.monotonic() > deadline:
            return text or "unknown"
        time.sleep(0.05)
