"""Whether output reaches a person: progress bars only on a terminal."""

from __future__ import annotations

import sys

__all__ = ["stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """Whether progress bars on stderr would reach a person (not a log file or a pipe)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None)) and stream.isatty()
