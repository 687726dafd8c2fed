"""One line for any error a command ends with: what went wrong and the way out, never a traceback.

Errors the package raises on purpose carry their own message; the others a user can cause
(a file that is not UTF-8 or not JSON, a damaged study database, a directory that cannot
be written, an LM server that keeps failing) are named here. The exit code says whose move
it is (:data:`EXIT_CODES`): 2 the input, 3 the LM, 4 the method (nothing usable came out);
1 is anything else, which is a bug: ``--debug`` shows its traceback.
"""

from __future__ import annotations

import json

from autoevol_dspy.errors import AutoEvolError, LMUnavailableError, NothingUsableError
from autoevol_dspy.text import short_error

__all__ = ["EXIT_CODES", "EXIT_LM", "EXIT_NOTHING_USABLE", "EXIT_USER", "describe_error"]

#: The command asked for something that cannot run as given: an option, a file, a conflicting run, a storage.
EXIT_USER = 2
#: An LM call failed (server down, timeout, key refused, rate limits past the retries); the finished work is saved.
EXIT_LM = 3
#: The command ran but made nothing usable: every evolution failed, a training export has no row.
EXIT_NOTHING_USABLE = 4
#: Every exit code of ``autoevol``, for ``--help`` and the README.
EXIT_CODES = {0: "done", 1: "a bug (rerun with --debug for the traceback; `shards` without --merge: not all done)",
              EXIT_USER: "bad input: an option, a file, a run directory or storage that cannot be used as given",
              EXIT_LM: "an LM call failed (server, key, rate limit); finished work is saved: rerun to continue",
              EXIT_NOTHING_USABLE: "nothing usable came out (every evolution failed, or no training row)",
              130: "interrupted; rerun to continue"}

_LIMIT = 800


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _LIMIT else flat[: _LIMIT - 1] + "…"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_storage_error(exc: BaseException) -> bool:
    """An error of the Optuna storage (SQLAlchemy underneath): a damaged, locked or unreachable database."""
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # pragma: no cover - optuna brings SQLAlchemy
        SQLAlchemyError = ()  # type: ignore[assignment]  # noqa: N806
    from optuna.exceptions import StorageInternalError

    import sqlite3

    return isinstance(exc, (SQLAlchemyError, StorageInternalError, sqlite3.Error))


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one-line message (without the ``autoevol: error:`` prefix) and the exit code for ``exc``."""
    from autoevol_dspy.lm.errors import is_lm_error  # DSPy's errors: loaded once a command has failed

    if isinstance(exc, LMUnavailableError):
        return _one_line(str(exc)), EXIT_LM
    if isinstance(exc, NothingUsableError):
        return _one_line(str(exc)), EXIT_NOTHING_USABLE
    if isinstance(exc, AutoEvolError):
        return _one_line(str(exc)), EXIT_USER
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8", 2
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg}, line {exc.lineno}, column {exc.colno})", 2
    if isinstance(exc, PermissionError):
        return f"cannot write or read {exc.filename or 'a file'}: permission denied", 2
    if isinstance(exc, OSError) and not is_lm_error(exc):
        where = f": {exc.filename}" if exc.filename else ""
        return _one_line(f"{exc.strerror or _first_line(exc)}{where}"), 2
    if _is_storage_error(exc):
        return _one_line(f"the run's study storage cannot be used ({_first_line(exc)}); if RUN_DIR/study.db is "
                         "damaged, start over with --restart or use another output directory"), 2
    if isinstance(exc, ImportError):  # an optional dependency (a database driver, an extra) is not installed
        return _one_line(f"{_first_line(exc)} (a package this needs is not installed)"), 2
    if is_lm_error(exc):
        return _one_line(f"an LM call failed: {short_error(exc)}; fix the LM and rerun to continue"), EXIT_LM
    return _one_line(f"unexpected {type(exc).__name__}: {_first_line(exc)} (rerun with --debug for the "
                     "traceback)"), 1
