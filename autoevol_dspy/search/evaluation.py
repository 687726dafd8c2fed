"""Evaluating one candidate on the dev set: the self-contained unit recorded as one trial.

Candidate instructions + dev set + LMs in, failures and usage out. With a failure
bound (the incumbent's failures, or the best candidate's so far in this step), the
evaluation stops as soon as the candidate cannot win any more: the selection is the
same as with a full evaluation, for fewer LM calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dspy
from tqdm.auto import tqdm

from autoevol_dspy.lm.usage import UsageMeter, UsageReport
from autoevol_dspy.parallel import run_parallel
from autoevol_dspy.tasks.base import CaseResult, OptimizationTask
from autoevol_dspy.text import short_error

__all__ = ["Evaluation", "evaluate_program", "run_cases"]

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Failures of one program on the dev set, or why the evaluation could not finish."""

    dev_size: int
    failures: int = 0
    evaluated: int = 0
    by_category: Counter = field(default_factory=Counter)
    pruned: bool = False
    error: str | None = None
    usage: UsageReport = field(default_factory=UsageReport)
    seconds: float = 0.0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.dev_size if self.dev_size else 0.0


def evaluate_program(
    task: OptimizationTask,
    program: dspy.Module,
    devset: Sequence[dspy.Example],
    *,
    num_threads: int,
    meter: UsageMeter,
    failure_bound: int | None = None,
    out_of_budget: Callable[[], bool] | None = None,
    description: str = "evaluating",
    progress: bool = True,
) -> Evaluation:
    """Run every dev example (or until ``failure_bound`` failures make winning impossible)."""
    result = Evaluation(dev_size=len(devset))
    before = meter.report()
    started = time.perf_counter()
    lock = threading.Lock()
    budget_hit = threading.Event()

    def should_stop() -> bool:
        if out_of_budget is not None and out_of_budget():
            budget_hit.set()
            return True
        return failure_bound is not None and result.failures >= failure_bound

    def run(indexed: tuple[int, dspy.Example]) -> CaseResult:
        index, example = indexed
        return task.run_case(program, example, index)

    bar = tqdm(total=len(devset), desc=description, leave=False, disable=not progress)
    try:
        for _, case in run_parallel(run, list(enumerate(devset)), num_threads=num_threads, should_stop=should_stop):
            with lock:
                result.evaluated += 1
                if case.failure is not None:
                    result.failures += 1
                    result.by_category[case.failure.category] += 1
            bar.update(1)
            bar.set_postfix(failures=result.failures)
    except Exception as exc:  # noqa: BLE001 - an LM that keeps failing fails this trial, not the run
        result.error = short_error(exc)
        logger.warning("%s failed: %s", description, result.error)
    finally:
        bar.close()
    if result.error is None and result.evaluated < result.dev_size:
        if budget_hit.is_set():
            result.error = "the LM call budget ran out before the evaluation finished"
        else:
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
    """Run a mini-batch for the trajectory; a case whose LM call errors is kept as a failed case."""
    from autoevol_dspy.evolution.detectors import Failure

    def run(indexed: tuple[int, dspy.Example]) -> CaseResult:
        index, example = indexed
        try:
            return task.run_case(program, example, index)
        except Exception as exc:  # noqa: BLE001 - the analysis can still use the other cases
            failure = Failure(category="lm_error", reason=short_error(exc), detector="runner")
            return CaseResult(index=index, inputs=dict(example.inputs()), outputs={}, failure=failure)

    results = dict(run_parallel(run, list(examples), num_threads=num_threads))
    return [results[i] for i in range(len(examples))]
