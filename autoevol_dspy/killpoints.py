"""Test-only kill points: with ``AUTOEVOL_KILL_AT=NAME`` the process SIGKILLs itself on reaching point NAME.

The crash tests stop a run at exact places (half-way through writing ``run.json``, right
after the study's identity or a step plan is saved, just before a step outcome is saved)
and check that the rerun ends like an uninterrupted run. Unset, a point costs one lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "kill_point"]

#: The environment variable that names the point to die at.
ENV = "AUTOEVOL_KILL_AT"


def kill_point(name: str) -> None:
    """Die at once, as a power cut or ``kill -9`` would, if ``AUTOEVOL_KILL_AT`` names this point."""
    if os.environ.get(ENV) == name:
        kill = getattr(signal, "SIGKILL", None)
        if kill is None:  # pragma: no cover - Windows
            os._exit(137)
        os.kill(os.getpid(), kill)
