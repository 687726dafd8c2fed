"""The evaluation port: the loop asks for finished trials and does not know where they run.

The loop hands an :class:`Evaluator` the trials it needs (:class:`TrialSpec`: the baseline, a
re-measured incumbent, a step's candidates) and gets each one's finished record back, in
order; trials a step already finished are reused. :class:`LocalEvaluator` runs them in this
process, a step's candidates side by side in one pool; ``QueueDriver`` (:mod:`.queue_driver`)
puts them in a shared study's queue for any process to run. Every trial, wherever it runs, is
one job built by :func:`trial_job`, so the exact early stop is the same everywhere: a
candidate stops once it cannot be accepted, or once a finished candidate of its step beats it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import dspy

from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.evaluation import (
    Evaluation,
    EvaluationInterrupted,
    EvaluationJob,
    evaluate_jobs,
    raise_for,
    trial_outcome,
)
from autoevol_dspy.search.events import EvaluationStarted, EventBus, TrialFinished
from autoevol_dspy.search.records import TrialRecord, TrialSpec
from autoevol_dspy.search.strategies import AcceptanceCriterion, EvaluationPolicy
from autoevol_dspy.search.strategies.evaluation_policy import beaten
from autoevol_dspy.search.tracking import LiveTrial, RunTracker
from autoevol_dspy.tasks.base import OptimizationTask

__all__ = ["Evaluator", "LocalEvaluator", "TrialJobs"]

#: A trial's rivals in its step: (failures, plan position) of the candidates that finished complete.
Rivals = Callable[[int], list[tuple[float, int]]]


@runtime_checkable
class Evaluator(Protocol):
    """Where the loop's trials are evaluated.

    ``evaluates_here``: whether this process runs evaluations (a driver that only coordinates
    does not); ``remote_calls``: LM calls other processes made for this run in this session.
    """

    evaluates_here: bool
    remote_calls: int

    def evaluate(self, specs: Sequence[TrialSpec], *, interrupt: Callable[[], str | None]) -> list[TrialRecord]:
        """Each spec's finished trial, in order (evaluated where missing). An LM outage raises
        ``LMOutageError``; ``interrupt`` returning a reason raises ``EvaluationInterrupted``."""
        ...

    def mark(self, state: str, reason: str | None = None) -> None:
        """How the run stands (running, finished, stopped), for the processes that share it."""
        ...


class TrialJobs:
    """Builds the job of one trial for the shared pool: the policy's early stop, the trial's events."""

    def __init__(self, *, task: OptimizationTask, student: dspy.Module, devset: Sequence[dspy.Example],
                 policy: EvaluationPolicy, acceptance: AcceptanceCriterion, events: EventBus) -> None:
        self.task = task
        self.student = student
        self.devset = list(devset)
        self.policy = policy
        self.acceptance = acceptance
        self.events = events

    def job(self, spec: TrialSpec, *, open_trial: Callable[[], LiveTrial],
            tell: Callable[[LiveTrial, Evaluation], TrialRecord | None], rivals: Rivals) -> EvaluationJob:
        """``open_trial`` gives the RUNNING trial when the first case starts; ``tell`` records the outcome
        (``None``: not recorded here); ``rivals(step)`` are read only when they can change the answer."""
        program = self.task.program_for(self.student, spec.instructions)
        size = len(self.devset)
        opened: dict[str, LiveTrial] = {}

        def should_stop(evaluation: Evaluation) -> bool:
            if spec.kind != "candidate" or spec.incumbent_failures is None:
                return False
            loss = evaluation.failures
            could_accept = self.acceptance.could_accept(loss=loss, incumbent_loss=spec.incumbent_failures,
                                                        dev_size=size)
            unbeaten = self.policy.should_stop(loss=loss, could_accept=could_accept, beaten=False)
            if unbeaten == self.policy.should_stop(loss=loss, could_accept=could_accept, beaten=True):
                return unbeaten  # the rivals cannot change the answer: no need to read them
            return self.policy.should_stop(loss=loss, could_accept=could_accept,
                                           beaten=beaten(loss, spec.position, rivals(spec.step)))

        def on_start() -> int:
            opened["trial"] = open_trial()
            self.events.emit(EvaluationStarted(label=spec.label, size=size, trial_number=opened["trial"].number,
                                               program=program, cases=self.devset))
            return opened["trial"].number

        def on_finish(evaluation: Evaluation) -> None:
            record = tell(opened["trial"], evaluation)
            if record is not None:
                self.events.emit(TrialFinished(label=spec.label, trial=record))

        return EvaluationJob(label=spec.label, program=program, should_stop=should_stop, on_start=on_start,
                             on_finish=on_finish)


class LocalEvaluator:
    """Trials evaluated in this process, in one pool of ``num_threads`` LM calls."""

    evaluates_here = True
    remote_calls = 0

    def __init__(self, *, tracker: RunTracker, jobs: TrialJobs, num_threads: int, meter: UsageMeter) -> None:
        self.tracker = tracker
        self.jobs = jobs
        self.num_threads = num_threads
        self.meter = meter

    def evaluate(self, specs: Sequence[TrialSpec], *, interrupt: Callable[[], str | None]) -> list[TrialRecord]:
        records = [self.tracker.find_trial(step=s.step, candidate_key=s.candidate_key) for s in specs]
        missing = [i for i, record in enumerate(records) if record is None]
        if not missing:
            return records  # type: ignore[return-value]
        reason = interrupt()
        if reason is not None:
            raise EvaluationInterrupted(reason)
        lock = threading.Lock()

        def rivals(step: int) -> list[tuple[float, int]]:
            with lock:
                return [(r.failures, s.position) for s, r in zip(specs, records)
                        if r is not None and r.kind == "candidate" and r.status == "complete"]

        def teller(index: int) -> Callable[[LiveTrial, Evaluation], TrialRecord]:
            def tell(live: LiveTrial, evaluation: Evaluation) -> TrialRecord:
                record = self.tracker.finish(live, **trial_outcome(evaluation))
                with lock:
                    records[index] = record
                return record
            return tell

        jobs = [self.jobs.job(specs[i], open_trial=lambda spec=specs[i]: self.tracker.start(**spec.planned()),
                              tell=teller(i), rivals=rivals) for i in missing]
        evaluations = evaluate_jobs(self.jobs.task, jobs, self.jobs.devset, num_threads=self.num_threads,
                                    meter=self.meter, events=self.jobs.events, interrupt=interrupt)
        raise_for(evaluations)
        return records  # type: ignore[return-value]

    def mark(self, state: str, reason: str | None = None) -> None:
        """Nothing to tell: no other process takes part."""
