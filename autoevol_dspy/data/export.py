"""Evolved rows as training data: the columns TRL's ``SFTTrainer`` reads, failures left out.

``sft`` gives one conversation per row in ``messages`` (user: the evolved instruction and its
input, assistant: the response), TRL's conversational format; ``prompt-completion`` gives
``prompt`` and ``completion`` strings, its prompt-completion format. Every round of every seed
that passed the detectors is one example, so a three-round evolution mixes rounds 1, 2 and 3 as
the paper did. ``seed_id`` and ``round`` stay, for lineage, and so do the seed's other columns
(``seed_<name>``, e.g. Alpaca's ``seed_output``) and any column added to the rows.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import datasets

from autoevol_dspy.data.io import EVOLVED_FEATURES, load_evolved, save_evolved
from autoevol_dspy.errors import ConfigurationError, DataError

__all__ = ["EXPORT_FORMATS", "export_evolved", "training_dataset"]

logger = logging.getLogger(__name__)

ExportFormat = Literal["lineage", "sft", "prompt-completion"]
#: What ``export_evolved`` can write: every row with its lineage, or training examples.
EXPORT_FORMATS: tuple[str, ...] = ("lineage", "sft", "prompt-completion")


def _prompt(row: dict[str, Any]) -> str:
    """The user's turn: the evolved instruction, followed by the input it refers to unless the evolved
    instruction already quotes that input (a rewrite often does: it would then appear twice)."""
    instruction, context = row["evolved_instruction"], row.get("context")
    if not context or _words(context) in _words(instruction):
        return instruction
    return f"{instruction}\n\n{context}"


def _words(text: str) -> str:
    """``text`` with its whitespace runs made one space and its case folded, to find a quote in a rewrite."""
    return " ".join(text.split()).casefold()


def _carried(row: dict[str, Any], taken: tuple[str, ...]) -> dict[str, Any]:
    """The row's columns a training example keeps besides its own: the lineage keys and every extra column."""
    kept = {"seed_id": row["seed_id"], "round": row["round"]}
    kept.update({name: value for name, value in row.items()
                 if name not in EVOLVED_FEATURES and name not in taken and name not in kept})
    return kept


def training_dataset(evolved: datasets.Dataset, *, format: ExportFormat = "sft") -> datasets.Dataset:
    """The passing rows of ``evolved`` (see :func:`load_evolved`) as SFT examples in ``format``."""
    if format not in ("sft", "prompt-completion"):
        raise ConfigurationError(f"format must be 'sft' or 'prompt-completion', got {format!r}")
    passed = [row for row in evolved if row["failure"] is None and row["evolved_instruction"] and row["response"]]
    taken = ("messages",) if format == "sft" else ("prompt", "completion")
    if format == "sft":
        rows = [{"messages": [{"role": "user", "content": _prompt(row)},
                              {"role": "assistant", "content": row["response"]}], **_carried(row, taken)}
                for row in passed]
    else:
        rows = [{"prompt": _prompt(row), "completion": row["response"], **_carried(row, taken)} for row in passed]
    if not rows:
        extra = [name for name in evolved.column_names if name not in EVOLVED_FEATURES and name not in taken]
        return datasets.Dataset.from_dict({name: [] for name in [*taken, "seed_id", "round", *extra]})
    return datasets.Dataset.from_list(rows)


def _why_empty(evolved: datasets.Dataset) -> str:
    """Why no row made a training example: none passed, or the ones that passed have no response."""
    passed = sum(1 for failure in evolved["failure"] if failure is None)
    if not passed:
        return f"none of its {len(evolved)} rows passed the detectors"
    return (f"{passed} row(s) passed but none has a response (the evolution ran without answers: "
            "--no-response / with_response=False)")


def export_evolved(lineage: str | Path, out: str | Path, *, format: ExportFormat = "sft") -> tuple[Path, int]:
    """Write the rows of an evolution (its JSONL row store) to ``out`` (.jsonl or .parquet) in ``format``.

    ``lineage`` keeps every row, failures included; the training formats keep the passing
    ones. Returns the path written and the number of rows in it.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigurationError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    evolved = load_evolved(lineage)
    dataset = evolved if format == "lineage" else training_dataset(evolved, format=format)
    if format != "lineage" and len(dataset) == 0:
        logger.warning("%s: the %s export is empty: %s", lineage, format, _why_empty(evolved))
    out = Path(out)
    if out.resolve() == Path(lineage).resolve():
        raise DataError(f"the export would overwrite the row store {out}; choose another output name")
    return _save(dataset, out), len(dataset)


def _save(dataset: datasets.Dataset, out: Path) -> Path:
    """JSONL or Parquet by suffix, written whole (a partial export is never left behind)."""
    if not out.name.lower().endswith((".jsonl", ".ndjson", ".parquet", ".pq")):
        raise ConfigurationError(f"cannot tell the format of {out.name!r}: use a .jsonl or .parquet name")
    return save_evolved(dataset, out)
