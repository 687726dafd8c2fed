"""Seed instructions for evolution: from a file, a list or a ``datasets.Dataset``, with stable ids.

Empty rows are skipped and duplicates dropped (both counted); an instruction that is not text
(a number, a boolean, a list) is refused; every problem with the input is a one-line
:class:`~autoevol_dspy.errors.DataError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import datasets
import dspy

from autoevol_dspy.data.io import is_missing, read_records
from autoevol_dspy.errors import DataError

__all__ = ["LoadedInstructions", "Seed", "load_instructions"]

logger = logging.getLogger(__name__)

#: ``context_column="auto"`` (the default): Alpaca's ``input`` when the instructions are in ``instruction``.
AUTO: Final = "auto"


@dataclass(frozen=True)
class Seed:
    """One seed instruction, its stable id (its ``id`` column, or its row index in the source), the
    material it refers to (an Alpaca ``input``), and the source row's other columns, carried through."""

    seed_id: str
    instruction: str
    context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


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
            dspy.Example(**{input_field: seed.instruction, "seed_id": seed.seed_id,
                            **({"context": seed.context} if seed.context else {})}).with_inputs(input_field)
            for seed in self.seeds
        ]

    def fingerprint(self) -> str:
        """A short hash of the ids and texts, so a resumed evolution can tell it has the same seeds."""
        return fingerprint_of(self.seeds)


def fingerprint_of(seeds: Iterable[Seed]) -> str:
    """The fingerprint of seeds in order (ids, texts, contexts), read once: a stream of seeds works too."""
    digest = hashlib.sha256()
    for seed in seeds:
        digest.update(f"{seed.seed_id}\0{seed.instruction}\0{seed.context or ''}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def load_instructions(
    source: datasets.Dataset | Sequence[Any] | str | os.PathLike,
    *,
    column: str = "instruction",
    id_column: str | None = None,
    context_column: str | None = AUTO,
) -> LoadedInstructions:
    """Seed instructions from a Dataset, a list (of str, dict or Example) or a JSONL/JSON/CSV/Parquet file.

    Empty rows are skipped and repeated instructions (ignoring whitespace) are kept once,
    the first time; both are counted. ``seed_id`` is the ``id_column`` value when given, else
    the ``id`` column when the source has one, else the row's index in the source.
    ``context_column`` holds material the instruction refers to (by default ``input`` when
    the instruction column is ``instruction``: the Alpaca layout); it goes with the seed
    through evolution and answering. Every other column is kept in ``Seed.extra``. Nothing
    is downloaded. Every problem with the input is a one-line :class:`DataError`.
    """
    rows, label = _rows_of(source)
    columns = list(dict.fromkeys(key for row in rows if isinstance(row, dict) for key in row))
    ids_from, context_from = resolve_columns(columns, label=label, column=column, id_column=id_column,
                                             context_column=context_column)
    loaded = _collect(rows, label=label, column=column, id_column=ids_from, context_column=context_from)
    logger.info(
        "loaded %d instructions from %s (column %r): %d empty rows skipped, %d duplicates dropped",
        len(loaded), label, column, loaded.skipped_empty, loaded.duplicates,
    )
    return loaded


def _rows_of(source: Any) -> tuple[list[Any], str]:
    """The source's rows (dicts, or plain strings) and a label naming the source."""
    if isinstance(source, datasets.DatasetDict):
        splits = ", ".join(source)
        raise DataError(f"got a DatasetDict; pick one split (it has: {splits}), e.g. dataset['train']")
    if isinstance(source, datasets.Dataset):
        return source.to_list(), "the Dataset"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return read_records(path), str(path)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):  # a pandas DataFrame
        return source.to_dict("records"), "the DataFrame"
    if isinstance(source, (list, tuple)):
        rows = [record.toDict() if isinstance(record, dspy.Example) else record for record in source]
        for index, row in enumerate(rows):
            if not (isinstance(row, (str, dict)) or is_missing(row)):
                raise DataError(f"the list row {index} is a {type(row).__name__}; expected a string or an object "
                                "with fields")
        return rows, "the list"
    raise DataError(
        f"cannot read seeds from a {type(source).__name__}; give a datasets.Dataset, a list, "
        "or a path to a .jsonl, .json, .csv or .parquet file"
    )


def resolve_columns(columns: Sequence[str], *, label: str, column: str, id_column: str | None,
                    context_column: str | None) -> tuple[str | None, str | None]:
    """(the id column, the context column) of a source with these columns; refuses ones it lacks."""
    if columns:
        _require_column(columns, column, label)
    elif id_column is not None:
        raise DataError(f"{label} holds plain strings, so it has no id column {id_column!r}")
    ids_from = _id_column(columns, id_column, label) if columns else None
    return ids_from, _context_column(columns, column, context_column, label)


def _context_column(columns: Sequence[str], column: str, context_column: str | None, label: str) -> str | None:
    """The column of material the instruction refers to: the one asked for, or Alpaca's ``input``."""
    if context_column == AUTO:
        return "input" if column == "instruction" and "input" in columns else None
    if context_column is not None and context_column not in columns:
        raise DataError(f"{label} has no context column {context_column!r}; it has: {', '.join(map(str, columns))}")
    return context_column


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


def _collect(rows: list[Any], *, label: str, column: str, id_column: str | None,
             context_column: str | None) -> LoadedInstructions:
    """Keep the non-empty, first-seen instructions, with unique ids, their context and their other columns."""
    admission = SeedAdmission(label=label, column=column, id_column=id_column, context_column=context_column)
    seeds = [seed for index, row in enumerate(rows) if (seed := admission.admit(index, row)) is not None]
    admission.require_some()
    return LoadedInstructions(tuple(seeds), label, column, admission.rows, admission.skipped, admission.duplicates)


class SeedAdmission:
    """The rules that turn source rows into seeds, one row at a time: empty rows skipped, repeated
    instructions kept once (the first time), ids unique. Shared by :func:`load_instructions` and the
    streamed seed files of whole-dataset evolution, so both keep exactly the same seeds.

    Only 16-byte digests of what was seen are kept (not the texts), so a streamed file of
    millions of rows costs about a hundred bytes per row.
    """

    def __init__(self, *, label: str, column: str, id_column: str | None, context_column: str | None) -> None:
        self.label = label
        self.column = column
        self.id_column = id_column
        self.context_column = context_column
        self.rows = self.skipped = self.duplicates = 0
        self._texts: set[bytes] = set()
        self._ids: dict[bytes, int] = {}

    def admit(self, index: int, row: Any) -> Seed | None:
        """The seed of source row ``index``, or None when it is empty or repeats an earlier instruction."""
        self.rows += 1
        label, column, context_column, id_column = self.label, self.column, self.context_column, self.id_column
        fields = row if isinstance(row, dict) else {column: row}
        text = _as_text(fields.get(column), label=label, column=column, index=index)
        if not text:
            self.skipped += 1
            return None
        context = _as_text(fields.get(context_column), label=label, column=context_column, index=index,
                           numbers=True) if context_column else ""
        key = _digest(" ".join(f"{text}\0{context}".split()))
        if key in self._texts:
            self.duplicates += 1
            return None
        self._texts.add(key)
        seed_id = str(index) if id_column is None else _as_id(fields.get(id_column), label=label, index=index)
        if id_column is not None:
            first = self._ids.setdefault(_digest(seed_id), index)
            if first != index:
                raise DataError(f"{label}: id {seed_id!r} is used by rows {first} and {index}; ids must be unique")
        extra = {k: v for k, v in fields.items() if k not in (column, id_column, context_column) and not is_missing(v)}
        return Seed(seed_id=seed_id, instruction=text, context=context or None, extra=extra)

    def require_some(self) -> None:
        """Refuse a source that gave no seed at all."""
        if self.rows == self.skipped + self.duplicates:
            raise DataError(f"{self.label} has no usable rows in column {self.column!r} "
                            f"({self.rows} rows, {self.skipped} empty)")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _as_text(value: Any, *, label: str, column: str, index: int, numbers: bool = False) -> str:
    """A cell as stripped text ('' when empty). An instruction must be text: a number or a boolean
    (``1``, ``true`` in JSON) is refused, as lists and objects are; ``numbers`` lets a context be a number."""
    if is_missing(value):
        return ""
    if isinstance(value, str):
        return value.strip()
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    kind = _KINDS.get(type(value), f"a {type(value).__name__}")
    shown = f" ({value!r})" if isinstance(value, (bool, int, float)) else ""
    raise DataError(f"{label}: column {column!r} holds {kind}{shown} in row {index}, not text; "
                    "choose a column of text")


#: How a refused cell's type is named in the error.
_KINDS = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}


def _as_id(value: Any, *, label: str, index: int) -> str:
    """A seed id cell as text; an empty id is refused rather than silently replaced by an index."""
    if is_missing(value) or not str(value).strip():
        raise DataError(f"{label} row {index} has an empty id; fill in every id or name another id_column")
    return str(value).strip()
