"""One process per run directory: an exclusive lock that names the process holding it.

``autoevol optimize`` and ``autoevol prompt`` take it before they touch a run's files or
study, so a second process on the same directory is refused in one line naming the
first one's pid, instead of both writing duplicate trials. The lock is a
:class:`~autoevol_dspy.locks.ProcessLock` on ``RUN_DIR/.autoevol.lock`` (POSIX and Windows);
its holder writes its pid into ``RUN_DIR/.autoevol.pid``. The OS releases the lock when its
holder exits or is killed, so a crash never leaves a stale lock. A run refused before it wrote
anything leaves no directory behind. (``evolve`` locks its output the same way, see
:class:`autoevol_dspy.data.io.RowStore`.)
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import TracebackType

from autoevol_dspy.errors import RunConflictError
from autoevol_dspy.files import remove_temporaries
from autoevol_dspy.locks import ProcessLock

__all__ = ["LOCK_NAME", "PID_NAME", "RunDirLock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".autoevol.lock"
PID_NAME = ".autoevol.pid"


class RunDirLock:
    """Hold ``run_dir`` for this process (a context manager); a held directory raises :class:`RunConflictError`."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.pid_path = self.run_dir / PID_NAME
        self._lock: ProcessLock | None = None
        self._created = False

    def acquire(self) -> "RunDirLock":
        self._created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = ProcessLock(self.path)
        if not lock.try_acquire():
            self._created = False
            raise RunConflictError(
                f"{self.run_dir} is in use by another autoevol process (pid {_holder(self.pid_path)}); wait for it "
                "to end or use another output directory"
            )
        self.pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")
        self._lock = lock
        if remove_temporaries(self.run_dir):
            logger.info("removed temporary files an interrupted run left in %s", self.run_dir)
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        self.pid_path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None
        if self._created:
            self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        """A directory this lock created and nothing else wrote to (a run refused at once) is removed."""
        try:
            if {entry.name for entry in self.run_dir.iterdir()} <= {LOCK_NAME}:
                self.path.unlink(missing_ok=True)
                self.run_dir.rmdir()
        except OSError:  # another process took it meanwhile, or wrote into it: leave it
            pass

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()


def _holder(pid_path: Path, wait_s: float = 1.0) -> str:
    """The pid the holder wrote (it writes it just after locking: wait briefly for it)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = pid_path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text or time.monotonic() > deadline:
            return text or "unknown"
        time.sleep(0.05)
