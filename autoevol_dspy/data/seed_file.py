"""Seeds streamed from a file: the seeds :func:`load_instructions` would keep, re-read on every pass, never held.

Whole-dataset evolution of millions of seeds must not hold them: :func:`scan_instructions`
reads the file once for its columns and once for its counts and fingerprint (what a
resumed evolution checks), and every iteration reads it again, row by row. The seeds, their
ids, the skipped and duplicate counts and the fingerprint are exactly those of
:func:`load_instructions` on the same file (the same :class:`SeedAdmission` rules).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoevol_dspy.data.io import iter_records
from autoevol_dspy.data.seeds import (
    AUTO,
    Seed,
    SeedAdmission,
    fingerprint_of,
    resolve_columns,
)

__all__ = ["SeedFile", "scan_instructions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedFile:
    """A seed file read lazily: ``len``, the counts and the fingerprint from a scan, the seeds on each iteration."""

    path: Path
    column: str
    id_column: str | None
    context_column: str | None
    rows: int
    skipped_empty: int
    duplicates: int
    count: int
    _fingerprint: str

    @property
    def source(self) -> str:
        return str(self.path)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Seed]:
        admission = self._admission()
        for index, row in enumerate(iter_records(self.path)):
            seed = admission.admit(index, row)
            if seed is not None:
                yield seed

    def fingerprint(self) -> str:
        """The fingerprint :meth:`LoadedInstructions.fingerprint` gives for the same seeds."""
        return self._fingerprint

    def _admission(self) -> SeedAdmission:
        return SeedAdmission(label=self.source, column=self.column, id_column=self.id_column,
                             context_column=self.context_column)


def scan_instructions(
    path: str | os.PathLike,
    *,
    column: str = "instruction",
    id_column: str | None = None,
    context_column: str | None = AUTO,
) -> SeedFile:
    """A :class:`SeedFile` for a JSONL, JSON, CSV or Parquet file (the options of :func:`load_instructions`).

    The file is read twice here (its columns, then its seeds' counts and fingerprint), row by
    row; every problem with it is the one-line ``DataError`` that ``load_instructions`` raises.
    """
    path = Path(path)
    label = str(path)
    columns = list(dict.fromkeys(key for row in iter_records(path) if isinstance(row, dict) for key in row))
    ids_from, context_from = resolve_columns(columns, label=label, column=column, id_column=id_column,
                                             context_column=context_column)
    admission = SeedAdmission(label=label, column=column, id_column=ids_from, context_column=context_from)
    counted = _Counted(admission, iter_records(path))
    fingerprint = fingerprint_of(counted)
    admission.require_some()
    found = SeedFile(path=path, column=column, id_column=ids_from, context_column=context_from, rows=admission.rows,
                     skipped_empty=admission.skipped, duplicates=admission.duplicates, count=counted.seeds,
                     _fingerprint=fingerprint)
    logger.info(
        "found %d instructions in %s (column %r, read row by row): %d empty rows skipped, %d duplicates dropped",
        found.count, label, column, found.skipped_empty, found.duplicates,
    )
    return found


class _Counted:
    """The admitted seeds of ``rows``, counted as they pass."""

    def __init__(self, admission: SeedAdmission, rows: Iterator[Any]) -> None:
        self.admission = admission
        self.rows = rows
        self.seeds = 0

    def __iter__(self) -> Iterator[Seed]:
        for index, row in enumerate(self.rows):
            seed = self.admission.admit(index, row)
            if seed is not None:
                self.seeds += 1
                yield seed
