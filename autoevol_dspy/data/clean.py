"""Clean an instruction file: duplicates and benchmark leaks out, every removed row kept with why.

:func:`clean_file` streams a file the package reads (JSONL, JSON, CSV, each optionally gzipped,
or Parquet) through :func:`~autoevol_dspy.data.hygiene.clean_rows` and writes three files:

- ``OUT`` (``.jsonl`` or ``.parquet``): the kept rows, every column as it was, in source order;
- ``<stem>.removed.jsonl``: each removed row as ``{"index", "reason", "duplicate_of" | "contaminated_by",
  "row"}``, so nothing is lost silently;
- ``<stem>.hygiene.json``: the :class:`CleanSummary` (counts, settings, a few removed examples).

The same input and options give the same files, byte for byte.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from autoevol_dspy.data.columns import TextColumns
from autoevol_dspy.data.contamination import DEFAULT_NGRAM, Decontaminator
from autoevol_dspy.data.hygiene import DEFAULT_NEAR_THRESHOLD, HygieneCounts, RowHygiene, Verdict, clean_rows
from autoevol_dspy.data.io import iter_records
from autoevol_dspy.data.sinks import RowSink, output_format
from autoevol_dspy.errors import ConfigurationError, at_least
from autoevol_dspy.files import atomic_write_text
from autoevol_dspy.text import clip

__all__ = ["CleanSummary", "HygieneOptions", "clean_file", "hygiene_paths"]

logger = logging.getLogger(__name__)

#: Removed rows per reason that the summary (and the report) show.
EXAMPLES_PER_REASON = 3


@dataclass(frozen=True, kw_only=True)
class HygieneOptions:
    """What a clean removes: duplicates (``dedup``), and rows that leak the benchmarks in ``decontaminate``."""

    dedup: bool = False
    near_threshold: float = DEFAULT_NEAR_THRESHOLD
    decontaminate: tuple[str, ...] = ()
    ngram: int = DEFAULT_NGRAM
    bench_column: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.decontaminate, (str, os.PathLike)):
            object.__setattr__(self, "decontaminate", (self.decontaminate,))
        object.__setattr__(self, "decontaminate", tuple(str(path) for path in self.decontaminate))
        at_least("ngram", self.ngram)
        threshold = self.near_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ConfigurationError(f"near_threshold must be in (0, 1], got {threshold!r}")

    @property
    def active(self) -> bool:
        """Whether anything is checked at all."""
        return self.dedup or bool(self.decontaminate)

    def settings(self) -> dict[str, Any]:
        """The options as JSON (what a summary records)."""
        return {"dedup": self.dedup, "near_threshold": self.near_threshold if self.dedup else None,
                "decontaminate": list(self.decontaminate), "ngram": self.ngram if self.decontaminate else None,
                "bench_column": self.bench_column}

    def check(self) -> None:
        """Read the benchmark files now, so that a bad one fails before any long work instead of after it."""
        self._decontaminator()

    def row_hygiene(self, columns: TextColumns, *, passes: Callable[[Any], bool] | None = None) -> RowHygiene:
        """The checks for a file with these columns (the benchmark files are read here)."""
        if not self.active:
            raise ConfigurationError("nothing to clean: ask for dedup and/or decontaminate")
        decontaminator = self._decontaminator()
        if decontaminator is not None:
            logger.info("decontaminating against %s", decontaminator.describe())
        return RowHygiene(columns=columns, dedup=self.dedup, near_threshold=self.near_threshold,
                          decontaminator=decontaminator, passes=passes)

    def _decontaminator(self) -> Decontaminator | None:
        if not self.decontaminate:
            return None
        return Decontaminator.from_files(self.decontaminate, ngram=self.ngram, column=self.bench_column)


class CleanSummary(BaseModel):
    """What one clean read, kept and removed, and where it wrote them."""

    source: str
    out_path: str
    removed_path: str
    columns: str = Field(description="the columns compared")
    settings: dict[str, Any]
    counts: HygieneCounts
    examples: list[dict[str, Any]] = Field(default_factory=list, description="a few removed rows, by reason")
    seconds: float

    def describe(self) -> str:
        """The command's summary line."""
        return f"cleaned {self.source}: {self.counts.describe()} -> {self.out_path} (removed rows: {self.removed_path})"


def hygiene_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """(the side file of removed rows, the summary) beside ``out``: ``<stem>.removed.jsonl``,
    ``<stem>.hygiene.json``."""
    out = Path(out)
    output_format(out)
    stem = out.name.rsplit(".", 1)[0]
    return out.with_name(f"{stem}.removed.jsonl"), out.with_name(f"{stem}.hygiene.json")


def clean_file(source: str | os.PathLike, *, out: str | os.PathLike, options: HygieneOptions,
               column: str | None = None, source_label: str | None = None,
               passes: Callable[[Any], bool] | None = None) -> CleanSummary:
    """Write the rows of ``source`` that pass ``options`` to ``out`` (.jsonl or .parquet), the removed ones beside.

    ``column`` names the instruction column (default: the first of
    :data:`~autoevol_dspy.data.columns.INSTRUCTION_COLUMNS` the file has; Alpaca's ``input``, a
    ``context`` and a ``response``/``output``/``completion`` column are found too). Every
    problem with the input or a benchmark file is a one-line ``DataError``. ``source_label``
    names the source in the summary when ``source`` is a temporary export of it; rows ``passes``
    says yes to are kept unchecked (see :class:`~autoevol_dspy.data.hygiene.RowHygiene`).
    """
    source, out = Path(source), Path(out)
    removed_path, summary_path = hygiene_paths(out)
    if out.resolve() == source.resolve() or removed_path.resolve() == source.resolve():
        raise ConfigurationError(f"the clean would overwrite its input {source}; choose another output name")
    started = time.perf_counter()
    label = source_label or str(source)
    names = list(dict.fromkeys(key for row in iter_records(source) if isinstance(row, dict) for key in row))
    columns = TextColumns.infer(names, column=column, label=label)
    hygiene = options.row_hygiene(columns, passes=passes)
    examples = _Examples(columns)
    with RowSink(out, schema_from=source) as kept, RowSink(removed_path) as removed:
        for verdict in clean_rows(iter_records(source), hygiene):
            row = verdict.row if isinstance(verdict.row, dict) else {columns.instruction: verdict.row}
            if verdict.removal is None:
                kept.write(row)
            else:
                removed.write({"index": verdict.index, **verdict.removal.to_json(), "row": row})
                examples.add(verdict)
    summary = CleanSummary(source=label, out_path=str(out), removed_path=str(removed_path),
                           columns=columns.describe(), settings=options.settings(), counts=hygiene.counts,
                           examples=examples.found, seconds=round(time.perf_counter() - started, 3))
    atomic_write_text(summary_path, json.dumps(summary.model_dump(exclude={"seconds"}), indent=2,
                                               ensure_ascii=False) + "\n")
    logger.debug("%s in %.1fs", summary.describe(), summary.seconds)
    return summary


class _Examples:
    """The first few removed rows of each reason, shortened, for the summary and the report."""

    def __init__(self, columns: TextColumns) -> None:
        self.columns = columns
        self.found: list[dict[str, Any]] = []
        self._per_reason: dict[str, int] = {}

    def add(self, verdict: Verdict) -> None:
        removal = verdict.removal
        if removal is None or self._per_reason.get(removal.reason, 0) >= EXAMPLES_PER_REASON:
            return
        self._per_reason[removal.reason] = self._per_reason.get(removal.reason, 0) + 1
        prompt = self.columns.texts(verdict.row).prompt()
        self.found.append({"index": verdict.index, **removal.to_json(), "prompt": clip(prompt, 300)})
