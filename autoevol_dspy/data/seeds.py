"""Seed instructions for evolution: from a file, a list or a ``datasets.Dataset``, with stable ids.

Empty rows are skipped and duplicates dropped (both counted); every problem with the
input is a one-line :class:`~autoevol_dspy.errors.DataError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import dspy

from autoevol_dspy.data.io import is_missing, read_records
from autoevol_dspy.errors import DataError

__all__ = ["LoadedInstructions", "Seed", "load_instructions"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seed:
    """One seed instruction and its stable id (its ``id`` column, or its row index in the source)."""

    seed_id: str
    instruction: str


@dataclass(frozen=True)
class LoadedInstructions:
    """The seeds kept from a source, and how many rows were skipped as empty or dropped as duplicates."""

    seeds: tuple[Seed, ...]
    source: str
    column: str
    rows: int
    skipped_empty: int
    duplicates: int

    def __len__(self) -> int:
        return len(self.seeds)

    def __iter__(self) -> Iterator[Seed]:
        return iter(self.seeds)

    @property
    def instructions(self) -> list[str]:
        """The seed texts, in source order."""
        return [seed.instruction for seed in self.seeds]

    def examples(self, input_field: str = "instruction") -> list[dspy.Example]:
        """The seeds as Examples with inputs marked, ready to be an ``AutoEvolInstruct`` trainset."""
        return [
            dspy.Example(**{input_field: seed.instruction, "seed_id": seed.seed_id}).with_inputs(input_field)
            for seed in self.seeds
        ]

    def fingerprint(self) -> str:
        """A short hash of the ids and texts, so a resumed evolution can tell it has the same seeds."""
        digest = hashlib.sha256()
        for seed in self.seeds:
            digest.update(f"{seed.seed_id}\0{seed.instruction}\n".encode("utf-8"))
        return digest.hexdigest()[:16]


def load_instructions(
    source: datasets.Dataset | Sequence[Any] | str | os.PathLike,
    *,
    column: str = "instruction",
    id_column: str | None = None,
) -> LoadedInstructions:
    """Seed instructions from a Dataset, a list (of str, dict or Example) or a JSONL/JSON/CSV/Parquet file.

    Empty rows are skipped and repeated instructions (ignoring whitespace) are kept once,
    the first time; both are counted. ``seed_id`` is the ``id_column`` value when given, else
    the ``id`` column when the source has one, else the row's index in the source. Nothing
    is downloaded. Every problem with the input is a one-line :class:`DataError`.
    """
    texts, ids, label = _columns_of(source, column, id_column)
    loaded = _collect(texts, ids, label=label, column=column)
    logger.info(
        "loaded %d instructions from %s (column %r): %d empty rows skipped, %d duplicates dropped",
        len(loaded), label, column, loaded.skipped_empty, loaded.duplicates,
    )
    return loaded


def _columns_of(source: Any, column: str, id_column: str | None) -> tuple[list[Any], list[Any] | None, str]:
    """The instruction values, the id values (or None for row indexes) and a label naming the source."""
    if isinstance(source, datasets.DatasetDict):
        splits = ", ".join(source)
        raise DataError(f"got a DatasetDict; pick one split (it has: {splits}), e.g. dataset['train']")
    if isinstance(source, datasets.Dataset):
        ids_from = _id_column(source.column_names, id_column, "the Dataset")
        _require_column(source.column_names, column, "the Dataset")
        return source[column], (source[ids_from] if ids_from else None), "the Dataset"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _columns_of_records(read_records(path), column, id_column, str(path))
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        return _columns_of_records(source.to_dict("records"), column, id_column, "the DataFrame")
    if isinstance(source, (list, tuple)):
        return _columns_of_records(list(source), column, id_column, "the list")
    raise DataError(
        f"cannot read seeds from a {type(source).__name__}; give a datasets.Dataset, a list, "
        "or a path to a .jsonl, .json, .csv or .parquet file"
    )


def _columns_of_records(
    records: list[Any], column: str, id_column: str | None, label: str
) -> tuple[list[Any], list[Any] | None, str]:
    """Instruction and id values from rows that are strings, dicts or Examples."""
    rows = [record.toDict() if isinstance(record, dspy.Example) else record for record in records]
    for index, row in enumerate(rows):
        if not (isinstance(row, (str, dict)) or is_missing(row)):
            kind = type(row).__name__
            raise DataError(f"{label} row {index} is a {kind}; expected a string or an object with fields")
    columns = list(dict.fromkeys(key for row in rows if isinstance(row, dict) for key in row))
    if not columns:
        if id_column is not None:
            raise DataError(f"{label} holds plain strings, so it has no id column {id_column!r}")
        return rows, None, label
    _require_column(columns, column, label)
    ids_from = _id_column(columns, id_column, label)
    texts = [row.get(column) if isinstance(row, dict) else row for row in rows]
    ids = [row.get(ids_from) if isinstance(row, dict) else None for row in rows] if ids_from else None
    return texts, ids, label


def _require_column(columns: Sequence[str], column: str, label: str) -> None:
    """Refuse a column the source does not have, naming the ones it has."""
    if column not in columns:
        raise DataError(f"{label} has no column {column!r}; it has: {', '.join(map(str, columns))}")


def _id_column(columns: Sequence[str], id_column: str | None, label: str) -> str | None:
    """The column that gives seed ids: the one asked for, else ``id`` if present, else none."""
    if id_column is None:
        return "id" if "id" in columns else None
    if id_column not in columns:
        raise DataError(f"{label} has no id column {id_column!r}; it has: {', '.join(map(str, columns))}")
    return id_column


def _collect(texts: list[Any], ids: list[Any] | None, *, label: str, column: str) -> LoadedInstructions:
    """Keep the non-empty, first-seen instructions, with unique ids."""
    seeds: list[Seed] = []
    seen_texts: set[str] = set()
    rows_of_ids: dict[str, int] = {}
    skipped = duplicates = 0
    for index, value in enumerate(texts):
        text = _as_text(value, label=label, column=column, index=index)
        if not text:
            skipped += 1
            continue
        key = " ".join(text.split())
        if key in seen_texts:
            duplicates += 1
            continue
        seen_texts.add(key)
        seed_id = str(index) if ids is None else _as_id(ids[index], label=label, index=index)
        if seed_id in rows_of_ids:
            first = rows_of_ids[seed_id]
            raise DataError(f"{label}: id {seed_id!r} is used by rows {first} and {index}; ids must be unique")
        rows_of_ids[seed_id] = index
        seeds.append(Seed(seed_id=seed_id, instruction=text))
    if not seeds:
        raise DataError(f"{label} has no usable rows in column {column!r} ({len(texts)} rows, {skipped} empty)")
    return LoadedInstructions(tuple(seeds), label, column, len(texts), skipped, duplicates)


def _as_text(value: Any, *, label: str, column: str, index: int) -> str:
    """An instruction cell as stripped text ('' when empty); lists and objects are refused."""
    if is_missing(value):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)):
        return str(value)
    kind = type(value).__name__
    raise DataError(f"{label}: column {column!r} holds a {kind} in row {index}; choose a column of text")


def _as_id(value: Any, *, label: str, index: int) -> str:
    """A seed id cell as text; an empty id is refused rather than silently replaced by an index."""
    if is_missing(value) or not str(value).strip():
        raise DataError(f"{label} row {index} has an empty id; fill in every id or name another id_column")
    return str(value).strip()
