"""Evaluating instructions on a set of cases: the unit one trial records.

Program + cases + task in, per-case losses and usage out. ``should_stop`` sees the loss
so far after every case (the exact early stop: stop once the candidate cannot win);
``interrupt`` may end the evaluation for a run-level reason (the LM-call budget). An LM
outage ends it with ``error`` set: an outage says nothing about the instructions.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dspy

from autoevol_dspy.lm.errors import is_lm_error
from autoevol_dspy.lm.usage import UsageMeter, UsageReport
from autoevol_dspy.parallel import run_parallel
from autoevol_dspy.search.events import CaseJudged, EventBus
from autoevol_dspy.tasks.base import CaseResult, OptimizationTask
from autoevol_dspy.text import short_error

__all__ = ["Evaluation", "LMOutageError", "evaluate", "run_cases"]

#: Cases kept with a trial for the report: this many failed and this many passed ones.
EXAMPLES_KEPT = (3, 2)


class LMOutageError(Exception):
    """An LM call failed for a reason outside the instructions (raised with the first such error)."""


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

    def _keep_example(self, case: CaseResult) -> None:
        failed = case.failure is not None
        limit = EXAMPLES_KEPT[0] if failed else EXAMPLES_KEPT[1]
        if sum(1 for kept in self.examples if (kept.failure is not None) == failed) < limit:
            self.examples.append(case)


def evaluate(
    task: OptimizationTask,
    program: dspy.Module,
    cases: Sequence[dspy.Example],
    *,
    num_threads: int,
    meter: UsageMeter,
    events: EventBus,
    label: str,
    should_stop: Callable[[float], bool] | None = None,
    interrupt: Callable[[], str | None] | None = None,
) -> Evaluation:
    """Run every case (or until ``should_stop(loss so far)``), in parallel, announcing each judged case."""
    result = Evaluation(size=len(cases))
    before = meter.report()
    started = time.perf_counter()
    lock = threading.Lock()

    def stop_now() -> bool:
        reason = interrupt() if interrupt is not None else None
        if reason is not None:
            result.interrupted = reason
            return True
        return should_stop is not None and should_stop(result.failures)

    def run(indexed: tuple[int, dspy.Example]) -> CaseResult:
        index, example = indexed
        return task.run_case(program, example, index)

    try:
        for _, case in run_parallel(run, list(enumerate(cases)), num_threads=num_threads, should_stop=stop_now):
            with lock:
                result.evaluated += 1
                if case.case_loss > 0:
                    result.losses[case.index] = case.case_loss
                if case.failure is not None:
                    result.by_category[case.failure.category] += 1
                result._keep_example(case)
                progress = CaseJudged(label=label, done=result.evaluated, size=result.size, failures=len(result.losses))
            events.emit(progress)
    except Exception as exc:
        if not is_lm_error(exc):
            raise
        result.error = short_error(exc)
    if result.error is None and result.interrupted is None and result.evaluated < result.size:
        result.pruned = True
    result.usage = meter.report() - before
    result.seconds = time.perf_counter() - started
    return result


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
