"""Benchmark leaks: rows that share a long run of words with an item of a benchmark a model will be tested on.

As lm-evaluation-harness does, a row is contaminated when one of its texts shares an n-gram of
13 words (``ngram``) with a benchmark item, after both are normalised (case, punctuation and
spacing set aside, :class:`~autoevol_dspy.data.normalise.Normaliser`). An item shorter than
``ngram`` words is matched whole (all its words in a row) when it has at least
``min(ngram, 8)`` words; shorter items are too common to mean a leak and are left out (counted).

A benchmark is any file the package reads (JSONL, JSON, CSV, each optionally gzipped, Parquet)
or a folder of them. The item text is its question column: the one named, else the first of
:data:`BENCHMARK_COLUMNS` the file has (a list of strings, as MT-Bench's ``turns``, is one item).
The index holds one hash per item n-gram, so a 1,000-item benchmark costs a few MB.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoevol_dspy.data.normalise import Normaliser
from autoevol_dspy.data.io import iter_records
from autoevol_dspy.errors import DataError, at_least

__all__ = ["BENCHMARK_COLUMNS", "DEFAULT_NGRAM", "Contamination", "Decontaminator", "benchmark_files"]

logger = logging.getLogger(__name__)

#: Words in a shared n-gram that mark a leak (lm-evaluation-harness's choice).
DEFAULT_NGRAM = 13
#: Items shorter than ``ngram`` words but at least this long are matched whole.
SHORT_ITEM_WORDS = 8
#: Where a benchmark item's text is looked for, in order.
BENCHMARK_COLUMNS = ("question", "prompt", "instruction", "problem", "turns", "input", "query", "text", "content")
#: Where an item's own id is looked for; without one, an item is named by its row number (from 0).
ID_COLUMNS = ("id", "task_id", "question_id")
_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".jsonl.gz", ".ndjson.gz", ".json.gz", ".csv.gz", ".parquet", ".pq")


@dataclass(frozen=True)
class Contamination:
    """The benchmark item a row leaks: its file (as given), its id, and the shared words."""

    benchmark: str
    item: Any
    ngram: str

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "item": self.item, "ngram": self.ngram}


def benchmark_files(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The files named: each file as it is, each folder's readable files in name order."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_SUFFIXES))
            if not found:
                raise DataError(f"benchmark folder {path} holds no .jsonl, .json, .csv or .parquet file")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"benchmark {path}: no such file or folder")
    return files


class Decontaminator:
    """An index of the n-grams of benchmark items, asked about one row's texts at a time."""

    def __init__(self, *, ngram: int = DEFAULT_NGRAM) -> None:
        self.ngram = at_least("ngram", ngram)
        self.benchmarks: list[str] = []
        self.items: list[list[Any]] = []
        self._grams: dict[int, dict[int, tuple[int, int]]] = {}
        self.indexed = self.too_short = 0

    @classmethod
    def from_files(cls, sources: Sequence[str | os.PathLike], *, ngram: int = DEFAULT_NGRAM,
                   column: str | None = None, normaliser: Normaliser | None = None) -> "Decontaminator":
        """An index of every item of the benchmark files (and folders of them) in ``sources``."""
        index = cls(ngram=ngram)
        for path in benchmark_files(sources):
            index.add_benchmark(path, column=column, normaliser=normaliser or Normaliser())
        return index

    def add_benchmark(self, path: Path, *, column: str | None, normaliser: Normaliser) -> None:
        """Index the items of one benchmark file; a file without a question column is refused."""
        label = str(path)
        columns = list(dict.fromkeys(key for row in iter_records(path) if isinstance(row, dict) for key in row))
        text_column, id_column = _benchmark_columns(columns, column, label)
        number = len(self.benchmarks)
        self.benchmarks.append(label)
        ids: list[Any] = []
        before = self.indexed
        for position, row in enumerate(iter_records(path)):
            fields = row if isinstance(row, dict) else {text_column: row}
            ids.append(_item_id(fields.get(id_column) if id_column else None, position))
            for text in _item_texts(fields.get(text_column)):
                self._add(normaliser.words(text), (number, position))
        self.items.append(ids)
        if self.indexed == before:
            raise DataError(f"benchmark {label} has no item of at least {min(self.ngram, SHORT_ITEM_WORDS)} words "
                            f"in column {text_column!r}; name its question column with --bench-column")
        logger.info("benchmark %s: %d items from column %r", label, len(ids), text_column)

    def _add(self, words: list[str], item: tuple[int, int]) -> None:
        size = min(self.ngram, len(words))
        if size < min(self.ngram, SHORT_ITEM_WORDS):
            self.too_short += bool(words)
            return
        grams = self._grams.setdefault(size, {})
        for start in range(len(words) - size + 1):
            grams.setdefault(hash(tuple(words[start:start + size])), item)
        self.indexed += 1

    def find(self, texts: Iterable[str], normaliser: Normaliser) -> Contamination | None:
        """The first benchmark item one of ``texts`` shares an n-gram with, if any."""
        for text in texts:
            words = normaliser.words(text)
            for size, grams in self._grams.items():
                for start in range(len(words) - size + 1):
                    window = tuple(words[start:start + size])
                    item = grams.get(hash(window))
                    if item is not None:
                        number, position = item
                        return Contamination(self.benchmarks[number], self.items[number][position], " ".join(window))
        return None

    def describe(self) -> str:
        return (f"{sum(map(len, self.items))} items of {len(self.benchmarks)} benchmark file(s), {self.ngram}-grams"
                + (f" ({self.too_short} item texts under {min(self.ngram, SHORT_ITEM_WORDS)} words left out)"
                   if self.too_short else ""))


def _benchmark_columns(columns: Sequence[str], column: str | None, label: str) -> tuple[str, str | None]:
    """(the item text column, the item id column) of a benchmark file."""
    id_column = next((name for name in ID_COLUMNS if name in columns), None)
    if not columns:  # a JSON list of strings: each is an item
        return column or "text", None
    if column is not None:
        if column not in columns:
            raise DataError(f"benchmark {label} has no column {column!r}; it has: {', '.join(map(str, columns))}")
        return column, id_column
    found = next((name for name in BENCHMARK_COLUMNS if name in columns), None)
    if found is None:
        raise DataError(f"benchmark {label} has none of the question columns {', '.join(BENCHMARK_COLUMNS)}; "
                        f"name one with --bench-column (it has: {', '.join(map(str, columns))})")
    return found, id_column


def _item_texts(value: Any) -> Iterator[str]:
    """An item cell's texts: a string, or each string of a list (MT-Bench's turns)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        yield from (item for item in value if isinstance(item, str))


def _item_id(value: Any, position: int) -> Any:
    """An item's id for the side file: its id cell when it has one, else its row number."""
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return value
    return position
