"""Reading and writing the package's own files: strict UTF-8 with one-line errors, atomic replacement.

A run file (``run.json``, ``method.txt``, ``result.json``, ``report.html``, a meta file, ...)
is written to a temporary file next to it and moved into place with ``os.replace``, so a
kill leaves the old file or the new one, never half of one. A file a user gives (a
config, a method, a prompt) that is missing, unreadable or not UTF-8 is a
:class:`DataError` naming the file (and the line of a bad byte).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autoevol_dspy.errors import DataError
from autoevol_dspy.killpoints import kill_point

__all__ = ["TEMPORARY_SUFFIX", "atomic_path", "atomic_write_text", "read_json_object", "read_text", "remove_temporaries"]

#: The suffix of the temporary files :func:`atomic_write_text` moves into place.
TEMPORARY_SUFFIX = ".autoevol-tmp"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()


def read_text(path: str | Path, *, what: str) -> str:
    """The UTF-8 text of ``path`` (a BOM is allowed); one-line ``DataError`` naming ``what`` otherwise."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{what} not found: {file}" if not file.exists() else f"{what} {file} is not a file")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{what} {file} is not UTF-8 text (byte 0x{raw[exc.start:exc.start + 1].hex()} on line "
                        f"{line}); save it as UTF-8") from None


def read_json_object(path: str | Path, *, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; one-line ``DataError`` when it is not valid JSON or not an object."""
    text = read_text(path, what=what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise DataError(f"{what} {path} holds a JSON {type(value).__name__}, not an object")
    return value


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write whole; moved onto ``path`` when it ends cleanly."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    target = Path(path)
    with atomic_path(target) as temporary, temporary.open("w", encoding="utf-8", newline="") as stream:
        half = len(text) // 2
        stream.write(text[:half])
        stream.flush()
        kill_point(f"half-written:{target.name}")
        stream.write(text[half:])
        stream.flush()
        os.fsync(stream.fileno())
    return target


def remove_temporaries(directory: str | Path) -> int:
    """Delete temporary files a killed writer left in ``directory`` (call it only while holding its lock)."""
    removed = 0
    folder = Path(directory)
    if folder.is_dir():
        for leftover in folder.glob(f".*{TEMPORARY_SUFFIX}"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
