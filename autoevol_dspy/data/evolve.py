"""Whole-dataset evolution: evolve each seed for some rounds, write rows with lineage.

After optimization the best method evolves the whole dataset (the paper mixed rounds
1+2+3). :func:`evolve_dataset` evolves each seed round after round and appends one row
per (seed, round) to a JSONL file as soon as it is done, so a killed run resumes where it
stopped and large datasets can be split into shards across machines. File formats and
the row store live in :mod:`autoevol_dspy.data.io`.

Memory stays flat as the dataset grows: a seed file is streamed (:mod:`.seed_file`), seeds
are drawn only as threads free up, each finished row goes to the store at once, and the
resume keeps a few numbers per stored seed (and the text of chains that go on), not rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import dspy
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from autoevol_dspy.data.io import RowStore
from autoevol_dspy.data.seed_file import SeedFile, scan_instructions
from autoevol_dspy.data.seeds import LoadedInstructions, Seed, load_instructions
from autoevol_dspy.errors import ConfigurationError, DataError, LMUnavailableError
from autoevol_dspy.evolution.detectors import (
    FailureDetector,
    default_detectors,
)
from autoevol_dspy.evolution.method import EvolInstruct, Style
from autoevol_dspy.evolution.unit import Evolver
from autoevol_dspy.lm.errors import is_lm_error
from autoevol_dspy.lm.health import (
    LMGarbageError,
    ReplyHealth,
    Unparsed,
    active_health,
    unparsed_replies,
    watching_replies,
)
from autoevol_dspy.lm.usage import UsageMeter, UsageReport
from autoevol_dspy.parallel import run_parallel
from autoevol_dspy.terminal import stderr_is_terminal
from autoevol_dspy.text import short_error

__all__ = ["EvolutionSummary", "evolve_dataset", "method_id"]

logger = logging.getLogger(__name__)

_META_VERSION = 3


# Evolving a dataset ----------------------------------------------------------------------------


def method_id(method: str) -> str:
    """A short hash of a method text, stored on every row so mixed methods are impossible to miss."""
    return hashlib.sha256(method.encode("utf-8")).hexdigest()[:12]


class EvolutionSummary(BaseModel):
    """What an evolution of one output file (one shard) holds after this run, and what this run did."""

    out_path: str
    dropped_path: str | None = None
    method_id: str
    seeds: int = Field(description="seeds in this shard")
    rounds: int
    rows: int = Field(description="(seed, round) rows done so far, by earlier runs and this one")
    kept: int = Field(description="rows in the output dataset")
    dropped: int = Field(description="failed rows left out of it (drop_failures=True)")
    failures: int
    failures_by_category: dict[str, int]
    resumed_rows: int = Field(description="rows an earlier run had already done")
    new_rows: int = Field(description="rows this run made")
    errors: int = Field(description="seeds whose chain stopped on an LM error in this run; a rerun retries them")
    complete: bool = Field(description="every seed's chain has all its rounds or ended with a failure")
    usage: UsageReport
    cached_calls: int = Field(0, description="LM calls DSPy's cache answered (not sent, not in usage)")
    seconds: float

    @property
    def failure_rate(self) -> float:
        """Failed rows over all rows."""
        return self.failures / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """A few lines for a person (the command line prints them)."""
        categories = ", ".join(f"{name} {count}" for name, count in sorted(self.failures_by_category.items()))
        lines = [
            f"evolved {self.seeds} seeds x {self.rounds} round(s) with method {self.method_id} -> {self.out_path}",
            f"rows: {self.rows} ({self.new_rows} new, {self.resumed_rows} resumed); "
            f"kept {self.kept}, dropped {self.dropped}",
            f"failures: {self.failures} ({self.failure_rate:.1%})" + (f": {categories}" if categories else ""),
            f"LM calls: {self.usage.calls} sent" + (f", {self.cached_calls} answered from DSPy's cache"
                                                     if self.cached_calls else "")
            + f", tokens: {self.usage.tokens}, time: {self.seconds:.1f}s",
        ]
        if self.dropped_path:
            lines.append(f"dropped rows: {self.dropped_path}")
        if not self.complete:
            lines.append(f"incomplete: {self.errors} seeds hit LM errors; rerun the same command to retry them")
        return "\n".join(lines)


class _RoundEvolver:
    """Evolves one instruction by one round with the shared :class:`Evolver`: the unit one row records."""

    def __init__(self, program: EvolInstruct, evolver: Evolver) -> None:
        self.program = program
        self.method_id = method_id(program.method)
        self.evolver = evolver

    def row(self, seed: Seed, round_: int, parent: str) -> dict[str, Any]:
        """The row for ``seed``'s round ``round_``, evolving ``parent`` (LM errors propagate)."""
        result = self.evolver.evolve_round(self.program, parent, seed.context)
        failure = result.failure
        return {
            "seed_id": seed.seed_id,
            "round": round_,
            "seed_instruction": seed.instruction,
            "context": seed.context or "",  # "" as Alpaca writes "no input": every reader types it as text
            "parent_instruction": parent,
            "evolved_instruction": result.evolved,
            "response": result.response,
            "failure": failure.category if failure else None,
            "failure_reason": failure.reason if failure else None,
            "method_id": self.method_id,
            **{f"seed_{name}": value for name, value in seed.extra.items()},
        }


@dataclass
class _Tally:
    """Counts of the rows stored for this output."""

    rows: int = 0
    kept: int = 0
    dropped: int = 0
    failures: Counter = field(default_factory=Counter)

    def add(self, row: dict[str, Any], dropped: bool) -> None:
        self.rows += 1
        self.dropped += dropped
        self.kept += not dropped
        if row.get("failure"):
            self.failures[row["failure"]] += 1


@dataclass(frozen=True)
class _Job:
    """The rest of one seed's chain: the next round to evolve and the instruction it evolves."""

    seed: Seed
    first_round: int
    parent: str


@dataclass
class _ChainResult:
    """What one chain produced in this run, and the error that stopped it, if any."""

    seed_id: str
    rows: list[tuple[dict[str, Any], bool]]
    error: str | None = None
    #: A failed row whose reply did not parse, with that reply: written once its LM has shown that it parses,
    #: never if the LM turns out broken (then a rerun redoes it).
    held: tuple[dict[str, Any], bool, tuple[Unparsed, ...]] | None = None
    #: Why the chain stopped when its LM answers garbage (the run stops).
    garbage: str | None = None


@dataclass(slots=True)
class _Stored:
    """What the resume needs of one seed's stored rows: its last round, whether that round failed,
    the rounds present (a bit per round), and the last evolved text while the chain may go on."""

    last_round: int
    failed: bool
    rounds_seen: int
    evolved: str | None

    def finished(self, rounds: int) -> bool:
        return self.failed or self.last_round >= rounds


def evolve_dataset(
    seeds: LoadedInstructions | SeedFile | datasets.Dataset | Sequence[Any] | str | os.PathLike,
    *,
    method: str | EvolInstruct,
    out_path: str | os.PathLike,
    style: Style | None = None,
    rounds: int = 1,
    evol_lm: dspy.LM | None = None,
    response_lm: dspy.LM | None = None,
    detectors: Sequence[FailureDetector] | None = None,
    with_response: bool = True,
    drop_failures: bool = False,
    num_threads: int = 4,
    shard: tuple[int, int] | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    max_errors: int | None = 20,
) -> EvolutionSummary:
    """Evolve every seed for ``rounds`` rounds into ``out_path`` (JSONL), one row per (seed, round), resumably.

    Round i evolves round i-1's output; each row carries ``seed_id``, ``round``,
    ``seed_instruction``, ``context`` (the seed's input, e.g. Alpaca's, shown to the LMs with the
    instruction; ``""`` when it has none, as Alpaca writes it), ``parent_instruction``, ``evolved_instruction``, ``response`` (the response LM's
    answer, null when ``with_response=False`` or the evolution failed before it),
    ``failure`` and ``failure_reason`` (null when it passed every detector) and
    ``method_id``, and the seed's other source columns as ``seed_<name>``. A failed row ends
    its seed's chain. ``method`` is a method text (in
    ``style``, default ``"rewrite"``) or a (compiled) ``EvolInstruct``, used as it is; ``evol_lm``/``response_lm`` default to the
    configured LM; ``detectors`` default to the optimizer's.

    Rows are appended and flushed one by one, so rerunning a killed run with the same
    arguments continues it: finished rows are not redone, a half-written last line is
    repaired, and raising ``rounds`` extends finished chains. The settings are kept in
    ``<stem>.meta.json``; a rerun with another method, other seeds, detectors, shard,
    ``with_response`` or ``drop_failures`` is refused unless ``overwrite=True`` starts over.

    With ``drop_failures=True`` failed rows go to the sidecar ``<stem>.dropped.jsonl``
    instead of the output. A sidecar rather than a flag in the output keeps the output
    file a clean training set that any JSONL reader can use as is, while the resume
    still sees every finished row (and why a chain ended) in the two files together.

    ``shard=(index, count)`` evolves only the seeds whose position among the loaded seeds
    is ``index`` modulo ``count``; give each shard its own ``out_path`` and concatenate
    the results. A seed whose LM call raises is not written and is retried by a rerun;
    after more than ``max_errors`` such seeds the run stops with an error.

    ``seeds`` is a :class:`LoadedInstructions`, a :class:`SeedFile`, or anything
    :func:`load_instructions` reads with its defaults (column ``instruction``); a path is
    streamed (:func:`scan_instructions`), never held in memory. Rows are appended in the
    order they finish.

    ``num_threads`` LM calls are in flight at once; against a server, hundreds work (its
    engine keeps that many connections, and a 429 slows every thread down, see
    :mod:`autoevol_dspy.lm.backpressure`). Memory does not grow with the dataset: the calls
    are left out of DSPy's history and trace (``dspy.inspect_history`` shows none of them).
    """
    loaded = _seeds_of(seeds)
    program = _program_of(method, style)
    text = program.method
    _check_options(rounds=rounds, num_threads=num_threads, shard=shard, max_errors=max_errors)
    _check_lms(evol_lm, response_lm, with_response)
    detectors = list(default_detectors() if detectors is None else detectors)
    size = _shard_size(len(loaded), shard)
    evolver = _RoundEvolver(program, Evolver(detectors=detectors, respond=with_response, lm=evol_lm,
                                             response_lm=response_lm))
    meta = _meta(loaded, text, detectors, with_response=with_response, drop_failures=drop_failures, shard=shard)
    meta["style"] = program.style
    started = time.perf_counter()
    with RowStore(out_path).open(overwrite=overwrite) as store:
        store.check_meta(meta)
        tally, stored = _read_progress(store, rounds)
        if stored:
            _check_stored_seeds(store, stored, _shard_of(loaded, shard))
        finished = sum(1 for chain in stored.values() if chain.finished(rounds))
        jobs = _pending_jobs(_shard_of(loaded, shard), stored, rounds)
        resumed = tally.rows
        logger.info(
            "evolving %d of %d seeds for %d round(s) into %s (%d rows already done, method %s, %d threads)",
            size - finished, size, rounds, store.out_path, resumed, evolver.method_id, num_threads,
        )
        meter = UsageMeter()
        # DSPy's call history and trace would hold the last 10,000 prompts, replies and predictions (the
        # history three times over: globally, per LM, per predictor): memory that grows with the dataset up
        # to hundreds of MiB, none of it needed once a row is stored.
        callbacks = [*(dspy.settings.get("callbacks") or []), meter.counter]  # tells cache hits from calls sent
        with dspy.context(usage_tracker=meter, callbacks=callbacks, disable_history=True, trace=None), \
                watching_replies():
            errors = _run_jobs(jobs, evolver, store, tally, rounds=rounds, drop_failures=drop_failures,
                               num_threads=num_threads, max_errors=max_errors, progress=progress, total=size,
                               done=finished)
    summary = EvolutionSummary(
        out_path=str(store.out_path),
        dropped_path=str(store.dropped_path) if store.dropped_path.exists() else None,
        method_id=evolver.method_id,
        seeds=size,
        rounds=rounds,
        rows=tally.rows,
        kept=tally.kept,
        dropped=tally.dropped,
        failures=sum(tally.failures.values()),
        failures_by_category=dict(tally.failures),
        resumed_rows=resumed,
        new_rows=tally.rows - resumed,
        errors=errors,
        complete=errors == 0,
        usage=meter.report(),
        cached_calls=meter.cached,
        seconds=round(time.perf_counter() - started, 3),
    )
    _report(summary, max_errors)
    return summary


def _program_of(method: str | EvolInstruct, style: Style | None) -> EvolInstruct:
    """The evolving program: a copy of a (compiled) ``EvolInstruct``, or a method text in ``style``."""
    if isinstance(method, EvolInstruct):
        if style is not None and style != method.style:
            raise ConfigurationError(f"style={style!r} does not match the EvolInstruct's style {method.style!r}")
        return method.deepcopy()
    if not isinstance(method, str) or not method.strip():
        raise ConfigurationError("method must be a non-empty method text or an EvolInstruct")
    return EvolInstruct(method, style=style or "rewrite")


def _check_options(*, rounds: int, num_threads: int, shard: tuple[int, int] | None, max_errors: int | None) -> None:
    """One-line errors for impossible numbers."""
    for name, value in (("rounds", rounds), ("num_threads", num_threads)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{name} must be an integer of at least 1, got {value!r}")
    if max_errors is not None and (not isinstance(max_errors, int) or max_errors < 0):
        raise ConfigurationError(f"max_errors must be a non-negative integer or None, got {max_errors!r}")
    if shard is not None:
        valid = isinstance(shard, (tuple, list)) and len(shard) == 2 and all(isinstance(v, int) for v in shard)
        if not valid or not 0 <= shard[0] < shard[1]:
            raise ConfigurationError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}")


def _check_lms(evol_lm: dspy.LM | None, response_lm: dspy.LM | None, with_response: bool) -> None:
    """Fail before any work when a role has no LM, instead of once per seed."""
    configured = dspy.settings.lm is not None
    if evol_lm is None and not configured:
        raise ConfigurationError("no LM to evolve with: pass evol_lm= or call dspy.configure(lm=...)")
    if with_response and response_lm is None and evol_lm is None and not configured:
        raise ConfigurationError(
            "no LM to answer evolved instructions: pass response_lm=, dspy.configure(lm=...), or with_response=False"
        )


def _seeds_of(seeds: Any) -> LoadedInstructions | SeedFile:
    """Loaded seeds as given, a path streamed, anything else loaded."""
    if isinstance(seeds, (LoadedInstructions, SeedFile)):
        return seeds
    if isinstance(seeds, (str, os.PathLike)):
        return scan_instructions(seeds)
    return load_instructions(seeds)


def _shard_of(seeds: Iterable[Seed], shard: tuple[int, int] | None) -> Iterator[Seed]:
    """The seeds whose position modulo ``count`` is ``index`` (all of them without a shard), lazily."""
    if shard is None:
        yield from seeds
        return
    index, count = shard
    for position, seed in enumerate(seeds):
        if position % count == index:
            yield seed


def _shard_size(total: int, shard: tuple[int, int] | None) -> int:
    """How many of ``total`` seeds a shard holds."""
    return total if shard is None else len(range(shard[0], total, shard[1]))


def _meta(
    loaded: LoadedInstructions | SeedFile,
    method: str,
    detectors: Sequence[FailureDetector],
    *,
    with_response: bool,
    drop_failures: bool,
    shard: tuple[int, int] | None,
) -> dict[str, Any]:
    """The settings that decide the rows (no LM details, no secrets); a resume must match them."""
    return {
        "format": _META_VERSION,
        "method_id": method_id(method),
        "seeds": loaded.fingerprint(),
        "detectors": [getattr(d, "name", type(d).__name__) for d in detectors],
        "with_response": with_response,
        "drop_failures": drop_failures,
        "shard": list(shard) if shard is not None else None,
        "method": method,
    }


def _read_progress(store: RowStore, rounds: int) -> tuple[_Tally, dict[str, _Stored]]:
    """Count the stored rows and note, per seed, what the resume needs (see :class:`_Stored`)."""
    tally = _Tally()
    stored: dict[str, _Stored] = {}
    for row, dropped in store.existing_rows():
        seed_id, round_ = row.get("seed_id"), row.get("round")
        if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 1:
            raise DataError(f"{store.out_path} holds a row of seed {seed_id!r} without a valid round ({round_!r})")
        chain = stored.get(seed_id)
        if chain is not None and chain.rounds_seen >> round_ & 1:
            logger.warning("%s: ignoring a second row for seed %r round %s", store.out_path, seed_id, round_)
            continue
        tally.add(row, dropped)
        if chain is None:
            chain = stored[seed_id] = _Stored(last_round=0, failed=False, rounds_seen=0, evolved=None)
        chain.rounds_seen |= 1 << round_
        if round_ > chain.last_round:
            chain.last_round = round_
            chain.failed = row.get("failure") is not None
            chain.evolved = row.get("evolved_instruction") if round_ < rounds and not chain.failed else None
    return tally, stored


def _check_stored_seeds(store: RowStore, stored: dict[str, _Stored], seeds: Iterable[Seed]) -> None:
    """Refuse rows of seeds that are not among this run's (one pass over the seeds' ids)."""
    unknown = set(stored)
    for seed in seeds:
        unknown.discard(seed.seed_id)
        if not unknown:
            return
    seed_id = min(unknown, key=str)
    raise DataError(f"{store.out_path} holds a row for seed {seed_id!r}, which is not among this run's seeds")


def _pending_jobs(seeds: Iterable[Seed], stored: dict[str, _Stored], rounds: int) -> Iterator[_Job]:
    """The chains still to evolve, lazily: new seeds from round 1, unfinished ones from their next round."""
    for seed in seeds:
        chain = stored.get(seed.seed_id)
        if chain is None:
            yield _Job(seed, 1, seed.instruction)
        elif not chain.finished(rounds):
            yield _Job(seed, chain.last_round + 1, chain.evolved)


def _run_jobs(
    jobs: Iterable[_Job],
    evolver: _RoundEvolver,
    store: RowStore,
    tally: _Tally,
    *,
    rounds: int,
    drop_failures: bool,
    num_threads: int,
    max_errors: int | None,
    progress: bool | None,
    total: int,
    done: int,
) -> int:
    """Run the chains in parallel threads (DSPy context carried along); returns the seeds that hit LM errors.

    Jobs are drawn as threads free up and each chain's rows are counted and dropped as it
    ends, so nothing here grows with the dataset."""
    errors = 0
    lock = threading.Lock()
    health = active_health()
    held = _HeldRows(store, tally)
    garbage: list[str] = []

    def run(job: _Job) -> _ChainResult:
        return _run_chain(job, evolver, store, rounds=rounds, drop_failures=drop_failures, health=health)

    def should_stop() -> bool:
        with lock:
            return bool(garbage) or (max_errors is not None and errors > max_errors)

    bar = tqdm(total=total, initial=done, desc="evolving", unit="seed",
               disable=not (stderr_is_terminal() if progress is None else progress))
    try:
        for _, result in run_parallel(run, jobs, num_threads=num_threads, should_stop=should_stop):
            for row, dropped in result.rows:
                tally.add(row, dropped)
            if result.garbage is not None:
                with lock:
                    garbage.append(result.garbage)
            elif result.error is not None:
                with lock:
                    errors += 1
                logger.warning("seed %r stopped on an LM error: %s", result.seed_id, result.error)
            held.add(result.held)
            if not garbage:
                held.write(confirmed_by=health)
            bar.update(1)
            bar.set_postfix(failures=sum(tally.failures.values()), errors=errors)
    finally:
        bar.close()
    reason = garbage[0] if garbage else (health.doubt() if held and health is not None else None)
    if reason is not None:
        raise LMUnavailableError(f"{reason}; the {tally.rows} finished rows are saved in {store.out_path}: fix the "
                                 "server and rerun to continue")
    held.write()  # the run ended with every LM out of doubt: these failures are results
    return errors


class _HeldRows:
    """Failed rows whose replies did not parse, kept back until their LMs show that they parse."""

    def __init__(self, store: RowStore, tally: _Tally) -> None:
        self.store = store
        self.tally = tally
        self.rows: list[tuple[dict[str, Any], bool, tuple[Unparsed, ...]]] = []

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, row: tuple[dict[str, Any], bool, tuple[Unparsed, ...]] | None) -> None:
        if row is not None:
            self.rows.append(row)

    def write(self, *, confirmed_by: ReplyHealth | None = None) -> None:
        """Store the rows whose LMs have parsed enough replies since (``confirmed_by``), or all of them."""
        keep = []
        for row, dropped, unparsed in self.rows:
            if confirmed_by is not None and not confirmed_by.confirmed(unparsed):
                keep.append((row, dropped, unparsed))
                continue
            self.store.append(row, dropped=dropped)
            self.tally.add(row, dropped)
        self.rows = keep


def _run_chain(job: _Job, evolver: _RoundEvolver, store: RowStore, *, rounds: int, drop_failures: bool,
               health: ReplyHealth | None = None) -> _ChainResult:
    """Evolve one seed round after round, storing each row at once; a failure ends the chain. A failure whose
    reply did not parse is held back, for the caller to store once ``health`` confirms its LM
    (see :mod:`autoevol_dspy.lm.health`)."""
    result = _ChainResult(seed_id=job.seed.seed_id, rows=[])
    parent = job.parent
    for round_ in range(job.first_round, rounds + 1):
        try:
            with unparsed_replies() as unparsed:
                row = evolver.row(job.seed, round_, parent)
        except Exception as exc:
            if not is_lm_error(exc):
                raise  # a bug, not an outage: a rerun would only repeat it
            result.error = f"round {round_}: {short_error(exc)}"  # the chain stops here; a rerun retries it
            if isinstance(exc, LMGarbageError):
                result.garbage = str(exc)
            return result
        dropped = drop_failures and row["failure"] is not None
        if unparsed and row["failure"] is not None and health is not None:
            result.held = (row, dropped, tuple(unparsed))
            break
        store.append(row, dropped=dropped)
        result.rows.append((row, dropped))
        if row["failure"] is not None:
            break
        parent = row["evolved_instruction"]
    return result


def _report(summary: EvolutionSummary, max_errors: int | None) -> None:
    """Log the outcome; too many LM errors become one error the command line can show."""
    logger.info(
        "%s: %d rows (%d new, %d kept, %d dropped), %d failures %s, %d LM calls sent (%d answered from DSPy's "
        "cache) in %.1fs", summary.out_path, summary.rows, summary.new_rows, summary.kept, summary.dropped,
        summary.failures, summary.failures_by_category or "", summary.usage.calls, summary.cached_calls,
        summary.seconds,
    )
    if max_errors is not None and summary.errors > max_errors:
        raise LMUnavailableError(
            f"stopped after {summary.errors} seeds hit LM errors (see the log); the {summary.rows} finished rows "
            f"are saved in {summary.out_path}: fix the LM and rerun to continue"
        )
    if summary.errors:
        logger.warning(
            "%d seeds hit LM errors and were not written; rerun with the same arguments to retry them", summary.errors
        )
