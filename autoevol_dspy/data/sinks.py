"""Rows out, one at a time, to a JSONL or Parquet file that appears whole or not at all.

A :class:`RowSink` takes rows as they come and holds none of them: JSONL rows go straight to
a temporary file beside the target, Parquet rows are spooled as JSONL and written in batches
under one schema when the sink closes (the source's schema when it is a Parquet file, else
the types the rows have, read a batch at a time). The target is replaced only once every row
is written, so a killed run leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from autoevol_dspy.errors import ConfigurationError, DataError
from autoevol_dspy.files import atomic_path

__all__ = ["RowSink", "output_format"]

_BATCH = 1024


def output_format(path: Path, *, option: str = "--out") -> str:
    """``jsonl`` or ``parquet``, by the suffix of ``path``; ``option`` names the setting in the error."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ConfigurationError(f"{option} must end in .jsonl or .parquet, got {path.name!r}")


class RowSink:
    """Rows written to ``path`` (JSONL or Parquet by suffix), whole when :meth:`close` returns."""

    def __init__(self, path: Path, *, schema_from: Path | None = None) -> None:
        self.path = path
        self.format = output_format(path)
        self.schema_from = schema_from if schema_from is not None and _is_parquet(schema_from) else None
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._temporary = self._stack.enter_context(atomic_path(path))
        spool = self._temporary if self.format == "jsonl" else self._stack.enter_context(_spool(path))
        self._spool = spool
        self._handle: IO[str] = self._stack.enter_context(spool.open("w", encoding="utf-8"))

    def write(self, row: Any) -> None:
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.rows += 1

    def close(self) -> Path:
        """Finish the file and move it onto ``path``."""
        self._handle.close()
        if self.format == "parquet":
            _write_parquet(self._spool, self._temporary, self.path, schema_from=self.schema_from)
        self._stack.close()
        return self.path

    def __enter__(self) -> "RowSink":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._stack.__exit__(kind, error, trace)


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith((".parquet", ".pq"))


@contextlib.contextmanager
def _spool(path: Path) -> Iterator[Path]:
    """A temporary JSONL file beside ``path``, removed afterwards."""
    spool = path.with_name(f".{path.name}.rows.tmp")
    try:
        yield spool
    finally:
        spool.unlink(missing_ok=True)


def _batches(spool: Path) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    with spool.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            batch.append(row if isinstance(row, dict) else {"instruction": row})
            if len(batch) == _BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _write_parquet(spool: Path, temporary: Path, target: Path, *, schema_from: Path | None) -> None:
    """The spooled rows as Parquet, a batch at a time, under one schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(schema_from) if schema_from is not None else _inferred_schema(spool)
        with pq.ParquetWriter(temporary, schema) as writer:
            for batch in _batches(spool):
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"the rows for {target} cannot be one Parquet table ({str(exc).splitlines()[0]}); "
                        "write a .jsonl file instead") from None


def _inferred_schema(spool: Path) -> Any:
    """One schema for every batch's inferred types (nulls take the type other batches give)."""
    import pyarrow as pa

    schema = None
    for batch in _batches(spool):
        found = pa.Table.from_pylist(batch).schema
        schema = found if schema is None else pa.unify_schemas([schema, found], promote_options="permissive")
    return schema if schema is not None else pa.schema([])
