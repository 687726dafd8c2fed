"""Evaluating instructions on a set of cases: several programs at once, in one pool of LM slots.

Programs (a step's candidates, or one program alone) are evaluated case by case in one
shared thread pool, in order: the next program's cases start as soon as slots free up, so
no slot idles while one candidate finishes its tail. After every judged case, a job's
``should_stop`` sees its evaluation so far (the exact early stop: stop once the candidate
cannot win); ``interrupt`` may end everything for a run-level reason (the LM-call budget).
An LM outage ends the pool with ``error`` set on the job that hit it: an outage says
nothing about the instructions. So does an LM that answers garbage (see
:mod:`autoevol_dspy.lm.health`): an evaluation that ends while an LM's recent replies mostly
did not parse is failed, not saved as a result. Each job counts its own LM usage.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import dspy

from autoevol_dspy.lm.errors import LMOutageError, is_lm_error
from autoevol_dspy.lm.health import active_health
from autoevol_dspy.lm.usage import UsageMeter, UsageReport
from autoevol_dspy.parallel import run_parallel
from autoevol_dspy.search.events import CaseJudged, EventBus
from autoevol_dspy.tasks.base import CaseResult, OptimizationTask
from autoevol_dspy.text import short_error

__all__ = ["Evaluation", "EvaluationInterrupted", "EvaluationJob", "LMOutageError", "evaluate", "evaluate_jobs",
           "raise_for", "run_cases", "trial_outcome"]

#: Cases kept with a trial for the report: this many failed and this many passed ones.
EXAMPLES_KEPT = (3, 2)


@dataclass
class Evaluation:
    """What one evaluation found: the loss of every judged case, or why it could not finish."""

    size: int
    losses: dict[int, float] = field(default_factory=dict)
    evaluated: int = 0
    by_category: Counter = field(default_factory=Counter)
    pruned: bool = False
    error: str | None = None
    interrupted: str | None = None
    examples: list[CaseResult] = field(default_factory=list)
    usage: UsageReport = field(default_factory=UsageReport)
    seconds: float = 0.0

    @property
    def failures(self) -> float:
        """The sum of the case losses (the number of failed cases for pass/fail judgements)."""
        return round(sum(self.losses.values()), 9)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.size if self.size else 0.0

    @property
    def status(self) -> str:
        if self.error or self.interrupted:
            return "failed"
        return "pruned" if self.pruned else "complete"

    def add(self, case: CaseResult) -> None:
        """Count one judged case, keeping a few failed and passed ones as evidence."""
        self.evaluated += 1
        if case.case_loss > 0:
            self.losses[case.index] = case.case_loss
        if case.failure is not None:
            self.by_category[case.failure.category] += 1
        failed = case.failure is not None
        limit = EXAMPLES_KEPT[0] if failed else EXAMPLES_KEPT[1]
        if sum(1 for kept in self.examples if (kept.failure is not None) == failed) < limit:
            self.examples.append(case)


class EvaluationInterrupted(Exception):
    """A stopper ended the run in the middle of an evaluation (what it left is evaluated by a resumed run)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def raise_for(evaluations: Sequence[Evaluation]) -> None:
    """Raise :class:`LMOutageError` if an evaluation hit an outage, else :class:`EvaluationInterrupted` if one
    was interrupted: neither is a result."""
    error = next((e.error for e in evaluations if e.error), None)
    if error is not None:
        raise LMOutageError(error)
    interrupted = next((e.interrupted for e in evaluations if e.interrupted), None)
    if interrupted is not None:
        raise EvaluationInterrupted(interrupted)


@dataclass
class EvaluationJob:
    """One program to evaluate in a pool; ``should_stop`` sees its evaluation after each case."""

    label: str
    program: dspy.Module
    should_stop: Callable[[Evaluation], bool] | None = None
    on_start: Callable[[], int | None] | None = None
    on_finish: Callable[[Evaluation], None] | None = None


@dataclass
class _Running:
    """The pool's bookkeeping for one job."""

    job: EvaluationJob
    evaluation: Evaluation
    meter: UsageMeter
    next_case: int = 0
    in_flight: int = 0
    started: float | None = None
    stopped: bool = False
    finished: bool = False


def evaluate_jobs(
    task: OptimizationTask,
    jobs: Sequence[EvaluationJob],
    cases: Sequence[dspy.Example],
    *,
    num_threads: int,
    meter: UsageMeter,
    events: EventBus,
    interrupt: Callable[[], str | None] | None = None,
    more: Callable[[], EvaluationJob | None] | None = None,
) -> list[Evaluation]:
    """Evaluate every job on ``cases`` in one pool of ``num_threads`` slots; results in job order.

    Cases are started job after job, in order. ``on_start`` runs when a job's first case
    starts, ``on_finish`` when its last one ends (complete, stopped early, interrupted or
    failed); both run in the calling thread. After an outage or an interruption no case
    starts, running ones finish, and every unfinished job ends failed. ``more``, when given,
    is asked for another job whenever a slot is free and no job has a case left to start
    (a worker pulling trials from a shared study); the pool ends once it returns ``None``.
    """
    running = [_Running(job, Evaluation(size=len(cases)), UsageMeter(parent=meter)) for job in jobs]
    health = active_health()
    lock = threading.Lock()
    stop_all: dict[str, str] = {}
    unexpected: list[BaseException] = []

    def run_case(state: _Running, index: int) -> CaseResult:
        with dspy.context(usage_tracker=state.meter):
            return task.run_case(state.job.program, cases[index], index)

    def finish(state: _Running) -> None:
        evaluation = state.evaluation
        if not stop_all and state.stopped and evaluation.evaluated < evaluation.size:
            evaluation.pruned = True
        if evaluation.evaluated < evaluation.size and not evaluation.pruned and not evaluation.error:
            evaluation.interrupted = evaluation.interrupted or stop_all.get("interrupt") or stop_all.get("outage")
        doubt = health.doubt() if health is not None and not (evaluation.error or evaluation.interrupted) else None
        if doubt is not None:  # its unparsed replies may be a broken server's: not a result, as an outage
            evaluation.error = doubt
            stop_all.setdefault("outage", f"stopped: {doubt}")
        evaluation.usage = state.meter.report()
        evaluation.seconds = time.perf_counter() - (state.started or time.perf_counter())
        state.finished = True
        if state.job.on_finish is not None:
            state.job.on_finish(evaluation)

    def refresh() -> None:
        """Stop jobs that can no longer win; close the ones with nothing left in flight."""
        for state in running:
            if state.finished:
                continue
            if not state.stopped and state.started is not None and state.job.should_stop is not None:
                state.stopped = state.job.should_stop(state.evaluation)
            exhausted = state.next_case >= len(cases) or state.stopped or bool(stop_all)
            if state.started is not None and exhausted and state.in_flight == 0:
                finish(state)

    def next_work() -> _Running | None:
        if stop_all:
            return None
        reason = interrupt() if interrupt is not None else None
        if reason is not None:
            stop_all["interrupt"] = reason
            return None
        while True:
            for state in running:
                if state.finished or state.stopped or state.next_case >= len(cases):
                    continue
                if (state.started is None and state.job.should_stop is not None
                        and state.job.should_stop(state.evaluation)):
                    start(state)  # it cannot win even before its first case: a trial that stopped at once
                    state.stopped = True
                    finish(state)
                    continue
                return state
            job = more() if more is not None else None
            if job is None:
                return None
            running.append(_Running(job, Evaluation(size=len(cases)), UsageMeter(parent=meter)))

    def start(state: _Running) -> None:
        state.started = time.perf_counter()
        if state.job.on_start is not None:
            state.job.on_start()

    with ThreadPoolExecutor(max_workers=max(1, num_threads), thread_name_prefix="autoevol-eval") as pool:
        futures: dict[Future, _Running] = {}
        while True:
            while len(futures) < num_threads:
                state = next_work()
                if state is None:
                    break
                if state.started is None:
                    start(state)
                index, state.next_case = state.next_case, state.next_case + 1
                state.in_flight += 1
                context = contextvars.copy_context()
                futures[pool.submit(context.run, run_case, state, index)] = state
            if not futures:
                refresh()
                break
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for future in done:
                state = futures.pop(future)
                state.in_flight -= 1
                try:
                    case = future.result()
                except Exception as exc:
                    if not is_lm_error(exc):  # a bug: close every started trial as failed, then raise it
                        unexpected.append(exc)
                    state.evaluation.error = state.evaluation.error or short_error(exc)
                    stop_all.setdefault("outage", f"stopped: another evaluation failed ({short_error(exc)})")
                    continue
                with lock:
                    state.evaluation.add(case)
                evaluation = state.evaluation
                events.emit(CaseJudged(label=state.job.label, done=evaluation.evaluated, size=evaluation.size,
                                       failures=len(evaluation.losses), case=case))
            refresh()
    for state in running:  # jobs that never started (the pool stopped first)
        if not state.finished:
            state.evaluation.interrupted = stop_all.get("interrupt") or stop_all.get("outage") or "not started"
            state.evaluation.usage = state.meter.report()
    if unexpected:
        raise unexpected[0]
    return [state.evaluation for state in running]


def evaluate(
    task: OptimizationTask,
    program: dspy.Module,
    cases: Sequence[dspy.Example],
    *,
    num_threads: int,
    meter: UsageMeter,
    events: EventBus,
    label: str,
    interrupt: Callable[[], str | None] | None = None,
) -> Evaluation:
    """Evaluate one program on every case (a pool of one job, no early stop)."""
    job = EvaluationJob(label=label, program=program)
    return evaluate_jobs(task, [job], cases, num_threads=num_threads, meter=meter, events=events,
                         interrupt=interrupt)[0]


def run_cases(
    task: OptimizationTask,
    program: dspy.Module,
    examples: Sequence[tuple[int, dspy.Example]],
    *,
    num_threads: int,
) -> list[CaseResult]:
    """Run a mini-batch for the trajectory, in order; an LM outage raises :class:`LMOutageError`."""

    def run(indexed: tuple[int, dspy.Example]) -> CaseResult:
        index, example = indexed
        return task.run_case(program, example, index)

    try:
        results = dict(run_parallel(run, list(examples), num_threads=num_threads))
    except Exception as exc:
        if is_lm_error(exc):
            raise LMOutageError(short_error(exc)) from exc
        raise
    return [results[i] for i in range(len(examples))]


def trial_outcome(evaluation: Evaluation) -> dict[str, Any]:
    """The fields of a trial record that an evaluation decides."""
    status = evaluation.status
    error = evaluation.error
    if evaluation.interrupted:
        error = f"interrupted ({evaluation.interrupted}); a resumed run evaluates it again"
    return {
        "status": status,
        "failure_rate": evaluation.failure_rate if status == "complete" else None,
        "failures": evaluation.failures,
        "evaluated": evaluation.evaluated,
        "dev_size": evaluation.size,
        "failures_by_category": dict(evaluation.by_category),
        "losses": dict(evaluation.losses),
        "examples": evaluation.examples,
        "error": error,
        "usage": evaluation.usage,
        "seconds": round(evaluation.seconds, 3),
    }
