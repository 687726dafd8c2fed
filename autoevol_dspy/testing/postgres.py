"""A throwaway PostgreSQL server on loopback, for the tests and benchmarks of shared studies.

:class:`LocalPostgres` runs the ``initdb`` and ``pg_ctl`` of an installed PostgreSQL
(Debian's ``postgresql`` package puts them in ``/usr/lib/postgresql/VERSION/bin``) on a
fresh data directory in a temporary folder, listening on ``127.0.0.1`` at a free port
with trust authentication (nothing but this machine can reach it), and removes it all on
exit. PostgreSQL refuses to run as root, so under root the commands run as the
``postgres`` user through ``runuser``. :func:`postgres_unavailable` says why a server
cannot be started here, for a test to skip with the reason.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["LocalPostgres", "postgres_bin_dir", "postgres_unavailable"]

logger = logging.getLogger(__name__)

_USER = "autoevol"
_SERVICE_ACCOUNT = "postgres"


def postgres_bin_dir() -> Path | None:
    """The directory of the newest installed ``initdb`` and ``pg_ctl``, or ``None``."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def postgres_unavailable() -> str | None:
    """Why :class:`LocalPostgres` cannot start here (``None`` when it can)."""
    if postgres_bin_dir() is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver is missing: pip install 'autoevol-dspy[postgres]'"
    if _as_root():
        import pwd

        try:
            pwd.getpwnam(_SERVICE_ACCOUNT)
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalPostgres:
    """A PostgreSQL server for one test session: ``with LocalPostgres() as pg: pg.database("runs")``."""

    def __init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        self.port = 0
        self._root: Path | None = None

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / tool), *args]
        if _as_root():
            command = ["runuser", "-u", _SERVICE_ACCOUNT, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")
        return done

    def start(self) -> "LocalPostgres":
        reason = postgres_unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self._root = Path(tempfile.mkdtemp(prefix="autoevol-pg-"))
        if _as_root():
            import pwd

            account = pwd.getpwnam(_SERVICE_ACCOUNT)
            os.chown(self._root, account.pw_uid, account.pw_gid)
        data, log = self._root / "data", self._root / "server.log"
        self._run("initdb", "-D", str(data), "-U", _USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.port = _free_port()
        options = (f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        logger.info("PostgreSQL on 127.0.0.1:%d (data in %s)", self.port, data)
        return self

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3 driver, trust authentication)."""
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", _USER, name)
        return self.url(name)

    def stop(self) -> None:
        if self._root is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self._root / "data"), "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            logger.warning("could not stop PostgreSQL cleanly: %s", exc)
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
