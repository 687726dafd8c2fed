"""Seed files row by row: JSONL, CSV (each optionally gzipped) and Parquet streamed, never read whole.

Whole-dataset evolution reads its seeds this way, so a file of millions of instructions
costs the memory of one row (a Parquet batch) at a time, and one line at most
:data:`~autoevol_dspy.data.io.MAX_LINE_BYTES` (a gzip bomb is refused by line number). The
rows and every error are those of :func:`autoevol_dspy.data.io.read_records`, which reads a
file at once; a JSON file is one document and is read whole here too.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autoevol_dspy.data.io import (
    bounded_lines,
    iter_jsonl_values,
    read_records,
    seed_file_format,
    unreadable_file_error,
)
from autoevol_dspy.errors import DataError

__all__ = ["iter_records"]

_PARQUET_BATCH = 1024


def iter_records(path: Path) -> Iterator[Any]:
    """The rows of a seed file, one at a time (dicts, or values for a JSON list); one-line ``DataError``s."""
    kind = seed_file_format(path)
    if kind == "parquet":
        return _parquet_rows(path)
    if kind == "jsonl":
        return iter_jsonl_values(path)
    if kind == "csv":
        return _csv_rows(path)
    return iter(read_records(path))


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
