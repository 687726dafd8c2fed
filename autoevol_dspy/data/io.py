"""Files in and out for whole-dataset evolution: seed files, the append-only row store, evolved datasets.

Seed files (JSONL, JSON, CSV, each optionally gzipped, and Parquet) are read without any
hub access and decoded strictly as UTF-8, so a bad byte is reported with its file and
line instead of turning into mojibake in the evolved data. What one row may be is bounded,
so a hostile file (a gzip bomb, JSON nested thousands deep) ends in a one-line error naming
the row: a line (a JSONL row, a CSV line) holds at most :data:`MAX_LINE_BYTES`, a file
read whole (JSON, CSV) at most :data:`MAX_WHOLE_FILE_BYTES` once unzipped, and a JSON row
nests at most :data:`MAX_NESTING` levels.

The output of :func:`autoevol_dspy.data.evolve_dataset` is a :class:`RowStore`: one JSONL
file of rows appended and flushed one at a time, plus two small sidecars next to it:
``<stem>.meta.json`` (the settings the rows were made with, checked on resume) and
``<stem>.dropped.jsonl`` (failed rows when failures are dropped, see ``evolve_dataset``), and,
while a process writes, ``<stem>.lock`` (two processes never append to one output).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import datasets

from autoevol_dspy.errors import ConfigurationError, DataError, RunConflictError
from autoevol_dspy.files import atomic_path, atomic_write_text, read_json_object
from autoevol_dspy.locks import ProcessLock

__all__ = [
    "EVOLVED_FEATURES",
    "MAX_LINE_BYTES",
    "MAX_NESTING",
    "MAX_WHOLE_FILE_BYTES",
    "RowStore",
    "bounded_lines",
    "evolve_output_paths",
    "is_missing",
    "iter_jsonl",
    "iter_jsonl_values",
    "load_evolved",
    "nesting_exceeds",
    "quiet_datasets",
    "iter_records",
    "read_records",
    "row_store_beside",
    "save_evolved",
    "seed_file_format",
    "unreadable_file_error",
]

logger = logging.getLogger(__name__)

#: The columns of an evolved dataset, in order, with their types (every text column may be null).
EVOLVED_FEATURES = datasets.Features(
    {
        "seed_id": datasets.Value("string"),
        "round": datasets.Value("int64"),
        "seed_instruction": datasets.Value("string"),
        "context": datasets.Value("string"),
        "parent_instruction": datasets.Value("string"),
        "evolved_instruction": datasets.Value("string"),
        "response": datasets.Value("string"),
        "failure": datasets.Value("string"),
        "failure_reason": datasets.Value("string"),
        "method_id": datasets.Value("string"),
    }
)

#: The longest line of a seed file (a JSONL row, a CSV line), in bytes once unzipped: 16 MiB.
MAX_LINE_BYTES = 16 * 2**20
#: The most a seed file read whole (a JSON document, a CSV file for ``read_records``) may hold once unzipped: 1 GiB.
MAX_WHOLE_FILE_BYTES = 2**30
#: How deeply one JSON row may nest objects and lists (a row of plain fields is 1 deep).
MAX_NESTING = 32

#: Rows read from a Parquet file at a time.
_PARQUET_BATCH = 1024
_BOM = b"\xef\xbb\xbf"
_TEXT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv"}
_PARQUET_SUFFIXES = (".parquet", ".pq")
_SUPPORTED = ".jsonl, .json, .csv (each optionally .gz) or .parquet"


# Seed files ------------------------------------------------------------------------------------


def read_records(path: Path) -> list[Any]:
    """The rows of a seed file (dicts, or strings for a JSON list of strings); one-line ``DataError`` otherwise."""
    return list(iter_records(path))


def iter_records(path: Path) -> Iterator[Any]:
    """The rows of a seed file, one at a time: JSONL and CSV (each optionally gzipped) line by line, Parquet a
    batch at a time, so a file of millions of rows costs the memory of one; a JSON file is one document and is
    read whole (at most :data:`MAX_WHOLE_FILE_BYTES`). One reader per format, one-line ``DataError`` s."""
    kind = seed_file_format(path)
    if kind == "parquet":
        return _parquet_rows(path)
    if kind == "jsonl":
        return iter_jsonl_values(path)
    if kind == "csv":
        return _csv_rows(path)
    return iter(_parse_json(_decode(path), path))


def seed_file_format(path: Path) -> str:
    """The format of an existing seed file (``parquet``, ``jsonl``, ``json`` or ``csv``); one-line ``DataError``
    for a path that is missing, not a file, or of another kind. Shared by the whole-file and streamed readers."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path} is not a file: give a {_SUPPORTED} file")
    return _format_of(path)


def _format_of(path: Path) -> str:
    """The format named by the file's suffix (``.gz`` looked through)."""
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    base = name[:-3] if name.endswith(".gz") else name
    for suffix, kind in _TEXT_FORMATS.items():
        if base.endswith(suffix):
            return kind
    raise DataError(f"{path}: unsupported file type; give a {_SUPPORTED} file")


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, unzipped as they are read for a ``.gz`` name."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def unreadable_file_error(path: Path, exc: BaseException) -> DataError:
    """A read that failed below the format: a damaged gzip stream, or the file system."""
    if path.name.lower().endswith(".gz"):
        return DataError(f"{path} is not a readable gzip file ({exc})")
    return DataError(f"{path} could not be read ({exc})")


def _decode(path: Path) -> str:
    """The file's text, strictly UTF-8 (a BOM is allowed); a bad byte is reported by line; at most
    :data:`MAX_WHOLE_FILE_BYTES` once unzipped (a gzip bomb stops there)."""
    try:
        with _open_binary(path) as handle:
            raw = handle.read(MAX_WHOLE_FILE_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise unreadable_file_error(path, exc) from None
    if len(raw) > MAX_WHOLE_FILE_BYTES:
        raise DataError(f"{path} holds more than {_size(MAX_WHOLE_FILE_BYTES)} (unzipped), the most a "
                        f"{_format_of(path).upper()} file read whole may hold; give the rows as JSONL, one per line")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise DataError(
            f"{path} is not UTF-8 text: byte 0x{byte} on line {line} (offset {exc.start}); re-save the file as UTF-8"
        ) from None


def _size(count: int) -> str:
    """A byte limit for a message: ``16 MiB``, ``1 GiB``."""
    if count >= 2**30:
        return f"{count / 2**30:g} GiB"
    return f"{count / 2**20:g} MiB" if count >= 2**20 else f"{count} bytes"


def bounded_lines(handle: IO[Any], path: Path, *, limit: int | None = None) -> Iterator[tuple[int, Any]]:
    """(number, line) of a binary or text handle, each line read with at most ``limit`` bytes (characters;
    default :data:`MAX_LINE_BYTES`) held, so a line without end (a gzip bomb) is refused by number
    instead of filling memory."""
    limit = MAX_LINE_BYTES if limit is None else limit
    number = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise DataError(f"{path} line {number} is longer than {_size(limit)}, the most one row may be; "
                            "split the row or shorten its text")
        yield number, line


def iter_jsonl_values(path: Path) -> Iterator[Any]:
    """One JSON value per non-blank line, decoded strictly as UTF-8 (a BOM is allowed), streamed: at most one
    line of :data:`MAX_LINE_BYTES` is held. The rows of :func:`read_records` and of the streamed reader."""
    offset = 0
    try:
        with _open_binary(path) as handle:
            for number, raw in bounded_lines(handle, path):
                line = raw[len(_BOM):] if number == 1 and raw.startswith(_BOM) else raw
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    position = offset + (len(raw) - len(line)) + exc.start
                    byte = line[exc.start : exc.start + 1].hex()
                    raise DataError(f"{path} is not UTF-8 text: byte 0x{byte} on line {number} (offset {position}); "
                                    "re-save the file as UTF-8") from None
                offset += len(raw)
                if text.strip():
                    yield _json_row(text, path, number)
    except (OSError, EOFError) as exc:
        raise unreadable_file_error(path, exc) from None


def _json_row(text: str, path: Path, number: int) -> Any:
    """One JSONL line's value, nested at most :data:`MAX_NESTING` deep."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {number} is not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise _too_deep(f"{path} line {number}") from None
    except ValueError as exc:  # a number of more digits than Python converts
        raise DataError(f"{path} line {number} is not valid JSON ({_first_clause(exc)})") from None
    if nesting_exceeds(value, MAX_NESTING):
        raise _too_deep(f"{path} line {number}")
    return value


def _first_clause(exc: BaseException) -> str:
    """The start of an error's message, up to its first colon or semicolon."""
    return str(exc).split(":")[0].split(";")[0].strip() or type(exc).__name__


def _too_deep(where: str) -> DataError:
    return DataError(f"{where} nests JSON more than {MAX_NESTING} levels deep, the most one row may; "
                     "flatten the row")


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests objects and lists more than ``limit`` levels deep (walked without recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _parse_jsonl(text: str, path: Path) -> list[Any]:
    """One JSON value per non-blank line (a .json file that is really JSONL)."""
    return [_json_row(line, path, number) for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


def _parse_json(text: str, path: Path) -> list[Any]:
    """A JSON list of rows, or an object holding one such list; a .json file that is really JSONL also works."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            return _parse_jsonl(text, path)
        raise DataError(f"{path} is not valid JSON ({exc.msg} on line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise _too_deep(str(path)) from None
    except ValueError as exc:  # a number of more digits than Python converts
        raise DataError(f"{path} is not valid JSON ({_first_clause(exc)})") from None
    if isinstance(value, dict):
        lists = [item for item in value.values() if isinstance(item, list)]
        if len(lists) != 1:
            raise DataError(f"{path} holds a JSON object; expected a list of rows (or an object with one such list)")
        value = lists[0]
    if not isinstance(value, list):
        raise DataError(f"{path} holds a JSON {type(value).__name__}; expected a list of rows")
    for index, row in enumerate(value):
        if nesting_exceeds(row, MAX_NESTING):
            raise _too_deep(f"{path} row {index}")
    return value


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file with a header line; cells stay strings."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    reader = None
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(line for _, line in bounded_lines(handle, path))
            for row in reader:
                yield {key: value for key, value in row.items() if key is not None}
    except UnicodeDecodeError:
        line = reader.line_num + 1 if reader is not None else 1
        raise DataError(f"{path} is not UTF-8 text (near line {line}); re-save the file as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV near line {reader.line_num if reader else 0} ({exc})") from None
    except (OSError, EOFError) as exc:
        raise unreadable_file_error(path, exc) from None


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a Parquet file, a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def is_missing(value: Any) -> bool:
    """True for None and float NaN (how pandas and CSV exports spell an empty cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


# The row store ---------------------------------------------------------------------------------


def iter_jsonl(path: Path, *, tolerate_partial_tail: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the JSON objects of a JSONL file; a final line cut short by a kill is skipped when tolerated."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            complete = line.endswith(b"\n")
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"{path} line {number} is not UTF-8 text") from None
            except json.JSONDecodeError as exc:
                if not complete and tolerate_partial_tail:
                    logger.warning("%s: ignoring a partial last line (line %d)", path, number)
                    return
                raise DataError(f"{path} line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path} line {number} is not a JSON object")
            yield row


def repair_tail(path: Path) -> bool:
    """Make the file end at a line boundary: keep a final row that parses, cut one a kill left half-written."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("r+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return False
        start = _last_line_start(handle, size)
        handle.seek(start)
        tail = handle.read()
        if _parses_as_object(tail):
            handle.seek(size)
            handle.write(b"\n")
            logger.warning("%s: the last row had no line end; kept it", path)
        else:
            handle.truncate(start)
            logger.warning("%s: removed a partial last line (%d bytes) left by an interrupted run", path, len(tail))
    return True


def _last_line_start(handle: io.BufferedRandom, size: int, chunk: int = 65536) -> int:
    """The offset just after the last newline before ``size`` (0 if there is none)."""
    end = size
    while end > 0:
        begin = max(0, end - chunk)
        handle.seek(begin)
        found = handle.read(end - begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


def _parses_as_object(raw: bytes) -> bool:
    """Whether ``raw`` is one complete JSON object."""
    try:
        return isinstance(json.loads(raw.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


class RowStore:
    """The output JSONL and its sidecars: meta check, kill repair, and flushed appends under one lock."""

    def __init__(self, out_path: Path | str) -> None:
        self.out_path = Path(out_path)
        if self.out_path.suffix.lower() != ".jsonl":
            raise ConfigurationError(
                f"out_path must be a .jsonl file (rows are appended as they finish), got {self.out_path.name!r}; "
                "convert the result with save_evolved afterwards"
            )
        stem = self.out_path.name[: -len(self.out_path.suffix)]
        self.dropped_path = self.out_path.with_name(f"{stem}.dropped.jsonl")
        self.meta_path = self.out_path.with_name(f"{stem}.meta.json")
        self.lock_path = self.out_path.with_name(f"{stem}.lock")
        self._process_lock: ProcessLock | None = None
        self._lock = threading.Lock()
        self._out: io.TextIOWrapper | None = None
        self._dropped: io.TextIOWrapper | None = None

    def open(self, *, overwrite: bool) -> "RowStore":
        """Take the output for this process, clear it if asked, and repair a tail a kill cut short."""
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_output()
        self._out = self.out_path.open("a", encoding="utf-8")
        if overwrite:
            self._out.truncate(0)
            self.dropped_path.unlink(missing_ok=True)
            self.meta_path.unlink(missing_ok=True)
        repair_tail(self.out_path)
        repair_tail(self.dropped_path)
        return self

    def _lock_output(self) -> None:
        """Refuse to share the output with another process appending to it (on every platform)."""
        lock = ProcessLock(self.lock_path)
        if not lock.try_acquire():
            raise RunConflictError(
                f"{self.out_path} is being written by another process; wait for it or pick another out_path"
            )
        self._process_lock = lock

    def check_meta(self, meta: dict[str, Any]) -> None:
        """Record the run's settings, or refuse if the rows here were made with other settings."""
        if not self.meta_path.exists():
            if self.out_path.stat().st_size > 0 or self.dropped_path.exists():
                raise RunConflictError(
                    f"{self.out_path} holds rows but no {self.meta_path.name}, so it was not written by "
                    "evolve_dataset; pass overwrite=True to replace it or pick another out_path"
                )
            self._write_meta(meta)
            return
        try:
            stored = read_json_object(self.meta_path, what="the evolution's meta file")
        except DataError as exc:
            raise DataError(f"{exc}; pass overwrite=True (--restart) to start over") from None
        for key, value in meta.items():
            if stored.get(key) != value:
                raise RunConflictError(
                    f"{self.out_path} was made with a different {key.replace('_', ' ')} "
                    f"({_brief(stored.get(key))}, now {_brief(value)}); pass overwrite=True to start over "
                    "or pick another out_path"
                )

    def _write_meta(self, meta: dict[str, Any]) -> None:
        """Write the meta file atomically, so a kill never leaves half of it."""
        atomic_write_text(self.meta_path, json.dumps(meta, indent=2, ensure_ascii=False))

    def existing_rows(self) -> Iterator[tuple[dict[str, Any], bool]]:
        """Every row already stored, with whether it sits in the dropped sidecar."""
        for row in iter_jsonl(self.out_path, tolerate_partial_tail=False):
            yield row, False
        for row in iter_jsonl(self.dropped_path, tolerate_partial_tail=False):
            yield row, True

    def append(self, row: dict[str, Any], *, dropped: bool = False) -> None:
        """Append one row as one line and flush it, so a killed run keeps every finished row."""
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            handle = self._dropped_handle() if dropped else self._out
            if handle is None:
                raise RuntimeError("the row store is not open")
            handle.write(line)
            handle.flush()

    def _dropped_handle(self) -> io.TextIOWrapper:
        """The dropped sidecar, opened on first use."""
        if self._dropped is None:
            self._dropped = self.dropped_path.open("a", encoding="utf-8")
        return self._dropped

    def close(self) -> None:
        """Close the files and release the output (its lock file goes too: nothing is left beside the data)."""
        with self._lock:
            for handle in (self._dropped, self._out):
                if handle is not None:
                    handle.close()
            self._out = self._dropped = None
            if self._process_lock is not None:
                self.lock_path.unlink(missing_ok=True)  # while held: a process trying it now is still refused
                self._process_lock.release()
                self._process_lock = None

    def __enter__(self) -> "RowStore":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _brief(value: Any) -> str:
    """A setting as a short phrase for an error message."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"


# Evolved datasets ------------------------------------------------------------------------------


class _QuietBars:
    """Nested and concurrent ``quiet_datasets`` blocks: bars off while any is open, the caller's setting after."""

    lock = threading.Lock()
    open_blocks = 0
    were_off = False


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars ("Casting the dataset", "Creating parquet") for the calls inside: a
    bar per file operation is noise on a terminal and garbage in a log. The caller's setting comes back after."""
    with _QuietBars.lock:
        _QuietBars.open_blocks += 1
        if _QuietBars.open_blocks == 1:
            _QuietBars.were_off = datasets.are_progress_bars_disabled()
            datasets.disable_progress_bars()
    try:
        yield
    finally:
        with _QuietBars.lock:
            _QuietBars.open_blocks -= 1
            if _QuietBars.open_blocks == 0 and not _QuietBars.were_off:
                datasets.enable_progress_bars()


def load_evolved(path: Path | str, *, include_failures: bool = True) -> datasets.Dataset:
    """An evolved JSONL or Parquet file as a ``datasets.Dataset``; ``include_failures=False`` keeps only successes.

    Rows an evolution dropped on request live in the ``.dropped.jsonl`` sidecar and are not
    part of the dataset. A partial last line left by a killed run is ignored.
    """
    with quiet_datasets():
        return _load_evolved(Path(path), include_failures=include_failures)


def _load_evolved(path: Path, *, include_failures: bool) -> datasets.Dataset:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.name.lower().endswith(_PARQUET_SUFFIXES):
        dataset = _with_evolved_types(_read_parquet_dataset(path), path)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [{**row, "context": row.get("context") or ""} for row in iter_jsonl(path)]  # older rows: null
        dataset = _with_evolved_types(datasets.Dataset.from_list(rows), path) if rows else _empty_evolved()
    else:
        raise DataError(f"{path}: unsupported file type for evolved data; give a .jsonl or .parquet file")
    if not include_failures:
        dataset = dataset.filter(lambda row: row["failure"] is None)
    return dataset


def _read_parquet_dataset(path: Path) -> datasets.Dataset:
    """A Parquet file as an in-memory Dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return datasets.Dataset(pq.read_table(path))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def _with_evolved_types(dataset: datasets.Dataset, path: Path) -> datasets.Dataset:
    """The evolved columns with their declared types (all-null columns included); other columns are kept."""
    missing = [name for name in EVOLVED_FEATURES if name not in dataset.column_names]
    if missing:
        raise DataError(f"{path} is not evolved data: it lacks the columns {', '.join(missing)}")
    features = dataset.features.copy()
    features.update(EVOLVED_FEATURES)
    return dataset.cast(features)


def _empty_evolved() -> datasets.Dataset:
    """An evolved dataset with no rows yet."""
    return datasets.Dataset.from_dict({name: [] for name in EVOLVED_FEATURES}, features=EVOLVED_FEATURES)


def save_evolved(
    dataset_or_path: datasets.Dataset | Path | str, out: Path | str, *, format: str | None = None
) -> Path:
    """Write rows as JSONL or Parquet (``format`` or the suffix of ``out`` decides), whole or not at all;
    returns ``out``."""
    out = Path(out)
    kind = format or _evolved_format(out)
    if kind not in ("jsonl", "parquet"):
        raise ConfigurationError(f"format must be 'jsonl' or 'parquet', got {kind!r}")
    dataset = dataset_or_path if isinstance(dataset_or_path, datasets.Dataset) else load_evolved(dataset_or_path)
    with atomic_path(out) as temporary, quiet_datasets():  # a kill leaves the old file or the new one
        if kind == "parquet":
            dataset.to_parquet(str(temporary))
        else:
            with temporary.open("w", encoding="utf-8") as handle:
                for row in dataset:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    logger.info("saved %d evolved rows to %s", len(dataset), out)
    return out


def row_store_beside(out: str | Path) -> Path:
    """The JSONL row store kept beside a training-format output: ``NAME.rows.jsonl`` for ``NAME.parquet``.

    Only the format suffix is dropped, so ``train.v1.parquet`` and ``train.v2.parquet`` get stores of their own.
    """
    out = Path(out)
    name = out.name
    for suffix in (*_PARQUET_SUFFIXES, ".jsonl", ".ndjson"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.rows.jsonl")


def evolve_output_paths(out: str | Path, *, format: str, option: str = "--out") -> tuple[Path, Path]:
    """(the file asked for, its resumable row store): the same file for a lineage .jsonl output,
    else the ``NAME.rows.jsonl`` beside it; ``option`` names the setting in the error."""
    out = Path(out)
    name = out.name.lower()
    if format == "lineage" and name.endswith((".jsonl", ".ndjson")):
        return out, out
    if not name.endswith((".jsonl", ".ndjson", *_PARQUET_SUFFIXES)):
        raise ConfigurationError(f"{option} must end in .jsonl or .parquet, got {out.name!r}")
    return out, row_store_beside(out)


def _evolved_format(out: Path) -> str:
    """The output format named by a file's suffix."""
    name = out.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ConfigurationError(f"cannot tell the format of {out.name!r}: use a .jsonl or .parquet name, or pass format=")
