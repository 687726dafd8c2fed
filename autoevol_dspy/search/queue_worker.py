"""Evaluating queued trials: the loop that the driver and every worker process run.

Popped trials share one pool of LM slots: a trial is taken from the queue only when a
slot is free and the trials already taken have no case left to start, so no slot idles
on a candidate's tail. The exact early stop works across processes: a candidate stops
once it cannot be accepted, or once a candidate of its step that finished anywhere has
fewer failures than it has so far (or as many, and comes first in the plan).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import dspy
from optuna.exceptions import UpdateFinishedTrialError

from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.evaluation import (
    Evaluation,
    EvaluationJob,
    LMOutageError,
    evaluate_jobs,
    trial_outcome,
)
from autoevol_dspy.search.events import EvaluationStarted, EventBus, TrialFinished
from autoevol_dspy.search.queue import TrialQueue
from autoevol_dspy.search.records import TrialRecord, TrialSpec
from autoevol_dspy.search.strategies import AcceptanceCriterion, EvaluationPolicy
from autoevol_dspy.search.tracking import LiveTrial, RunTracker
from autoevol_dspy.tasks.base import OptimizationTask

__all__ = ["QueueWorker"]

logger = logging.getLogger(__name__)


class QueueWorker:
    """Pops trials of one shared study and evaluates them on the dev set, ``num_threads`` LM calls at a time."""

    def __init__(
        self,
        *,
        queue: TrialQueue,
        tracker: RunTracker,
        task: OptimizationTask,
        student: dspy.Module,
        devset: Sequence[dspy.Example],
        evaluation: EvaluationPolicy,
        acceptance: AcceptanceCriterion,
        num_threads: int,
        meter: UsageMeter,
        events: EventBus,
        announce: bool = True,
    ) -> None:
        self.queue = queue
        self.tracker = tracker
        self.task = task
        self.student = student
        self.devset = list(devset)
        self.policy = evaluation
        self.acceptance = acceptance
        self.num_threads = num_threads
        self.meter = meter
        self.events = events
        self.announce = announce
        self.evaluated = 0
        self._finished_here: dict[int, list[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def drain(self) -> int:
        """Evaluate queued trials until none is waiting and the pool is idle; returns how many were told.

        An LM outage ends the pool (the trials it cut short are told failed, with the reason) and
        raises :class:`LMOutageError`, as in a single process.
        """
        before = self.evaluated

        def more() -> EvaluationJob | None:
            self.queue.fail_stale()
            popped = self.queue.pop()
            return self._job(*popped) if popped is not None else None

        try:
            evaluations = evaluate_jobs(self.task, [], self.devset, num_threads=self.num_threads, meter=self.meter,
                                        events=self.events, more=more)
        except BaseException:
            self.queue.release_all()  # whatever this process still holds goes stale and is evaluated elsewhere
            raise
        error = next((e.error for e in evaluations if e.error), None)
        if error is not None:
            raise LMOutageError(error)
        return self.evaluated - before

    def _job(self, trial, spec: TrialSpec) -> EvaluationJob:
        live = self.tracker.take(trial, spec)
        size = len(self.devset)

        def should_stop(evaluation: Evaluation) -> bool:
            if spec.kind != "candidate" or spec.incumbent_failures is None:
                return False
            loss = evaluation.failures
            could_accept = self.acceptance.could_accept(loss=loss, incumbent_loss=spec.incumbent_failures,
                                                        dev_size=size)
            unbeaten = self.policy.should_stop(loss=loss, could_accept=could_accept, beaten=False)
            if unbeaten == self.policy.should_stop(loss=loss, could_accept=could_accept, beaten=True):
                return unbeaten  # the rivals cannot change the answer: no read of the storage
            rivals = self.queue.rivals(spec.step, max_age_s=self.queue.settings.poll_s)
            with self._lock:
                rivals = rivals + self._finished_here.get(spec.step, [])
            beaten = any(f < loss or (f <= loss and i < spec.position) for f, i in rivals)
            return self.policy.should_stop(loss=loss, could_accept=could_accept, beaten=beaten)

        program = self.task.program_for(self.student, spec.instructions)

        def on_start() -> int:
            self.events.emit(EvaluationStarted(label=spec.label, size=size, trial_number=live.number, program=program,
                                               cases=self.devset))
            return live.number

        def on_finish(evaluation: Evaluation) -> None:
            record = self._tell(live, trial, evaluation)
            if record is None:
                return
            if record.status == "complete" and spec.kind == "candidate":
                with self._lock:
                    self._finished_here.setdefault(spec.step, []).append((record.failures, spec.position))
            if self.announce:
                self.events.emit(TrialFinished(label=spec.label, trial=record))

        return EvaluationJob(label=spec.label, program=program,
                             should_stop=should_stop, on_start=on_start, on_finish=on_finish)

    def _tell(self, live: LiveTrial, trial, evaluation: Evaluation) -> TrialRecord | None:
        """Record the outcome; a trial given up as stale meanwhile is left to its retry."""
        try:
            with self.queue.locked():
                record = self.tracker.finish(live, **trial_outcome(evaluation))
        except (UpdateFinishedTrialError, ValueError) as exc:
            if isinstance(exc, ValueError) and "Cannot tell" not in str(exc):
                raise
            logger.warning("trial %d was given up as stale while this process evaluated it; its retry counts",
                           live.number)
            return None
        finally:
            self.queue.release(trial)
        self.evaluated += 1
        return record
