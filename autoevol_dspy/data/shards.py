"""Whole-dataset evolution split over machines: which shards are done, and one dataset from all of them.

``evolve --shard i/N`` writes each shard's rows to its own row store (a lineage JSONL with a
``.meta.json`` beside it). :func:`shard_status` reads the stores of a split against the
seeds and says, per shard, how far it got; :func:`merge_shards` checks that every
(seed, round) the evolution owes is present exactly once, across all shards, and writes
one row store, as an unsharded ``evolve`` would have written it. A seed owes rounds 1 to
``rounds``, or fewer when a round failed (a failure ends its chain).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoevol_dspy.data.io import RowStore, iter_jsonl
from autoevol_dspy.data.seeds import LoadedInstructions, load_instructions
from autoevol_dspy.errors import ConfigurationError, DataError, at_least
from autoevol_dspy.files import atomic_write_text, read_json_object

__all__ = ["ShardReport", "ShardStatus", "merge_shards", "shard_status"]

logger = logging.getLogger(__name__)

#: Meta settings every shard of one split must share (the shard itself aside).
_SHARED_META = ("format", "method_id", "seeds", "detectors", "with_response", "drop_failures", "style")
_SHOWN = 10


@dataclass(frozen=True)
class ShardStatus:
    """One shard's row store: its place in the split, its seeds, and how many of them are done."""

    path: str
    index: int
    count: int
    seeds: int
    done: int
    rows: int

    @property
    def complete(self) -> bool:
        return self.done == self.seeds

    def describe(self) -> str:
        state = "done" if self.complete else "in progress"
        return f"shard {self.index}/{self.count}: {state}, {self.done}/{self.seeds} seeds, {self.rows} rows ({self.path})"


@dataclass(frozen=True)
class ShardReport:
    """A split read against its seeds: per shard, and what the whole still lacks or holds twice."""

    count: int
    rounds: int
    shards: list[ShardStatus]
    absent: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)
    missing: list[tuple[str, int]] = field(default_factory=list)
    duplicated: list[tuple[str, int]] = field(default_factory=list)
    unexpected: list[tuple[str, int]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every (seed, round) owed is present exactly once, in the shard it belongs to."""
        return not (self.absent or self.repeated or self.missing or self.duplicated or self.unexpected)

    def problems(self) -> list[str]:
        found = []
        if self.absent:
            found.append(f"no store for shard(s) {', '.join(map(str, self.absent))} of {self.count}")
        if self.repeated:
            found.append(f"more than one store for shard(s) {', '.join(map(str, self.repeated))}")
        for name, pairs in (("missing", self.missing), ("duplicated", self.duplicated),
                            ("in the wrong shard or not among the seeds", self.unexpected)):
            if pairs:
                shown = ", ".join(f"{seed}#{round_}" for seed, round_ in pairs[:_SHOWN])
                more = f" and {len(pairs) - _SHOWN} more" if len(pairs) > _SHOWN else ""
                found.append(f"{len(pairs)} (seed, round) {name}: {shown}{more}")
        return found

    def describe(self) -> str:
        lines = [shard.describe() for shard in sorted(self.shards, key=lambda s: (s.index, s.path))]
        done = sum(shard.complete for shard in self.shards)
        lines.append(f"{done} of {self.count} shard(s) done; " + ("every (seed, round) is present exactly once"
                                                                 if self.complete else "; ".join(self.problems())))
        return "\n".join(lines)


@dataclass
class _Store:
    path: Path
    meta: dict[str, Any]
    rows: list[tuple[dict[str, Any], bool]]


def shard_status(seeds: LoadedInstructions | str | os.PathLike, stores: Sequence[str | os.PathLike], *,
                 rounds: int = 1, column: str = "instruction") -> ShardReport:
    """How far each shard's row store got, and what the split as a whole lacks or repeats."""
    report, _ = _read_split(seeds, stores, rounds=rounds, column=column)
    return report


def merge_shards(seeds: LoadedInstructions | str | os.PathLike, stores: Sequence[str | os.PathLike], *,
                 out_path: str | os.PathLike, rounds: int = 1, column: str = "instruction") -> ShardReport:
    """Write the split's rows as one row store at ``out_path`` (seed order, then round), once it is complete.

    A split that lacks or repeats a (seed, round), misses a shard or mixes settings raises
    :class:`DataError` naming them, and writes nothing.
    """
    report, split = _read_split(seeds, stores, rounds=rounds, column=column)
    if not report.complete:
        raise DataError("the shards cannot be merged yet: " + "; ".join(report.problems()))
    target = RowStore(out_path)
    if target.out_path.resolve() in {store.path.resolve() for store in split["stores"]}:
        raise ConfigurationError(f"{target.out_path} is one of the shards; merge into another file")
    order = {seed.seed_id: position for position, seed in enumerate(split["loaded"].seeds)}
    rows = sorted((pair for store in split["stores"] for pair in store.rows),
                  key=lambda pair: (order[pair[0]["seed_id"]], pair[0]["round"]))
    kept = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row, dropped in rows if not dropped)
    dropped = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row, dropped in rows if dropped)
    atomic_write_text(target.out_path, kept)
    if dropped:
        atomic_write_text(target.dropped_path, dropped)
    else:
        target.dropped_path.unlink(missing_ok=True)
    meta = {**split["stores"][0].meta, "shard": None}  # what an unsharded evolve of these seeds writes
    atomic_write_text(target.meta_path, json.dumps(meta, indent=2, ensure_ascii=False))
    logger.info("merged %d shard(s) into %s: %d rows (%d in %s)", report.count, target.out_path, len(rows),
                dropped.count("\n"), target.dropped_path.name)
    return report


def _read_split(seeds: LoadedInstructions | str | os.PathLike, paths: Sequence[str | os.PathLike], *, rounds: int,
                column: str) -> tuple[ShardReport, dict[str, Any]]:
    at_least("rounds", rounds)
    if not paths:
        raise ConfigurationError("give the row stores of the shards (the --out files of evolve --shard)")
    loaded = seeds if isinstance(seeds, LoadedInstructions) else load_instructions(seeds, column=column)
    stores = [_read_store(Path(path)) for path in paths]
    count = _check_metas(stores, loaded)
    by_index: dict[int, list[_Store]] = defaultdict(list)
    for store in stores:
        by_index[store.meta["shard"][0]].append(store)
    owner = {seed.seed_id: position % count for position, seed in enumerate(loaded.seeds)}
    seen: Counter = Counter()
    unexpected = []
    for store in stores:
        for row, _ in store.rows:
            key = (str(row.get("seed_id")), int(row.get("round", 0)))
            seen[key] += 1
            if owner.get(key[0]) != store.meta["shard"][0]:
                unexpected.append(key)
    chains: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for store in stores:
        for row, _ in store.rows:
            chains[str(row.get("seed_id"))][int(row.get("round", 0))] = row
    missing = [pair for seed in loaded.seeds for pair in _owed(seed.seed_id, chains.get(seed.seed_id, {}), rounds)]
    statuses = []
    for store in stores:
        index = store.meta["shard"][0]
        mine = [seed.seed_id for seed in loaded.seeds if owner[seed.seed_id] == index]
        done = sum(1 for seed_id in mine if not _owed(seed_id, chains.get(seed_id, {}), rounds))
        statuses.append(ShardStatus(path=str(store.path), index=index, count=count, seeds=len(mine), done=done,
                                    rows=len(store.rows)))
    report = ShardReport(
        count=count, rounds=rounds, shards=statuses,
        absent=[i for i in range(count) if i not in by_index],
        repeated=sorted(i for i, found in by_index.items() if len(found) > 1),
        missing=missing, duplicated=sorted(key for key, n in seen.items() if n > 1), unexpected=sorted(unexpected),
    )
    return report, {"loaded": loaded, "stores": stores}


def _owed(seed_id: str, chain: dict[int, dict[str, Any]], rounds: int) -> list[tuple[str, int]]:
    """The rounds of one seed that are still missing (none after a failed round: it ended the chain)."""
    owed = []
    for round_ in range(1, rounds + 1):
        row = chain.get(round_)
        if row is None:
            owed.append((seed_id, round_))
        elif row.get("failure"):
            break
    return owed


def _read_store(path: Path) -> _Store:
    store = RowStore(path)
    if not store.meta_path.is_file():
        raise DataError(f"{path} has no {store.meta_path.name}: give the row stores that evolve --shard wrote")
    meta = read_json_object(store.meta_path, what="the evolution's meta file")
    shard = meta.get("shard")
    if not (isinstance(shard, list) and len(shard) == 2):
        raise DataError(f"{path} was not evolved as a shard (its meta has no shard); nothing to merge it with")
    rows = [(row, False) for row in iter_jsonl(store.out_path)]
    rows += [(row, True) for row in iter_jsonl(store.dropped_path)]
    return _Store(path=path, meta=meta, rows=rows)


def _check_metas(stores: list[_Store], loaded: LoadedInstructions) -> int:
    """The split's shard count, after checking that every store evolved these seeds with the same settings."""
    first = stores[0]
    counts = {store.meta["shard"][1] for store in stores}
    if len(counts) != 1:
        raise DataError(f"the stores come from different splits (shard counts {sorted(counts)})")
    for store in stores:
        differing = [key for key in _SHARED_META if store.meta.get(key) != first.meta.get(key)]
        if differing:
            raise DataError(f"{store.path} was evolved with other settings than {first.path} "
                            f"({', '.join(differing)})")
    if first.meta.get("seeds") != loaded.fingerprint():
        raise DataError(f"the shards were evolved from other seeds than {loaded.source}; give the seed file "
                        "(and --column) that evolve --shard read")
    return counts.pop()
