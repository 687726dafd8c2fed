"""What a dataset evolution wrote, kept with the run whose method made it, for that run's report.

``autoevol evolve --method RUN_DIR`` records each output in ``RUN_DIR/evolved.json``: its rows by
round, passed and failed, the failure categories and, when the output was cleaned, the hygiene
counts and a few removed rows. A later evolution into the same output replaces its entry.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from autoevol_dspy.data.clean import CleanSummary
from autoevol_dspy.data.io import RowStore, iter_jsonl
from autoevol_dspy.errors import DataError
from autoevol_dspy.files import atomic_write_text, read_json_object

__all__ = ["EVOLVED_FILE", "EvolvedDataset", "describe_store", "read_evolutions", "record_evolution"]

logger = logging.getLogger(__name__)

#: The file in a run directory that lists the datasets evolved with its method.
EVOLVED_FILE = "evolved.json"


class EvolvedDataset(BaseModel):
    """One evolution's output: its rows by round, its failures, and its hygiene when it was cleaned."""

    out_path: str
    store: str
    format: str
    rows: int = Field(description="rows in the row store, every round, failures included")
    rows_by_round: dict[str, int]
    passed_by_round: dict[str, int]
    failures_by_category: dict[str, int]
    hygiene: CleanSummary | None = None
    updated: str = ""


def describe_store(store: str | os.PathLike, *, out: str | os.PathLike, format: str,
                   hygiene: CleanSummary | None = None) -> EvolvedDataset:
    """Count an evolution's row store (and its dropped-failures sidecar), row by row."""
    rows = RowStore(store)
    by_round: Counter = Counter()
    passed: Counter = Counter()
    failures: Counter = Counter()
    for path in (rows.out_path, rows.dropped_path):
        for row in iter_jsonl(path):
            round_ = str(row.get("round"))
            by_round[round_] += 1
            if row.get("failure"):
                failures[str(row["failure"])] += 1
            else:
                passed[round_] += 1
    order = sorted(by_round, key=lambda key: (len(key), key))
    return EvolvedDataset(out_path=str(out), store=str(store), format=format, rows=sum(by_round.values()),
                          rows_by_round={key: by_round[key] for key in order},
                          passed_by_round={key: passed[key] for key in order},
                          failures_by_category=dict(sorted(failures.items())), hygiene=hygiene,
                          updated=datetime.now().isoformat(timespec="seconds"))


def read_evolutions(run_dir: str | os.PathLike) -> list[EvolvedDataset]:
    """The evolutions recorded in a run directory, newest first; none when it has no (readable) record."""
    path = Path(run_dir) / EVOLVED_FILE
    if not path.is_file():
        return []
    try:
        entries = read_json_object(path, what="evolutions file").get("datasets") or []
        found = [EvolvedDataset.model_validate(entry) for entry in entries]
    except (DataError, ValidationError, TypeError) as exc:
        logger.warning("ignoring %s: %s", path, str(exc).splitlines()[0])
        return []
    return sorted(found, key=lambda entry: entry.updated, reverse=True)


def record_evolution(run_dir: str | os.PathLike, dataset: EvolvedDataset) -> Path:
    """Add ``dataset`` to ``RUN_DIR/evolved.json`` (replacing an earlier entry for the same output)."""
    path = Path(run_dir) / EVOLVED_FILE
    target = str(Path(dataset.out_path).resolve())
    kept = [entry for entry in read_evolutions(run_dir) if str(Path(entry.out_path).resolve()) != target]
    payload = {"datasets": [entry.model_dump(mode="json") for entry in [dataset, *kept]]}
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return path
