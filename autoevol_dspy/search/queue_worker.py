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

import optuna
from optuna.exceptions import UpdateFinishedTrialError

from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.evaluation import Evaluation, EvaluationJob, evaluate_jobs, raise_for, trial_outcome
from autoevol_dspy.search.evaluators import TrialJobs
from autoevol_dspy.search.queue import TrialQueue
from autoevol_dspy.search.records import TrialRecord, TrialSpec
from autoevol_dspy.search.tracking import LiveTrial, RunTracker

__all__ = ["QueueWorker"]

logger = logging.getLogger(__name__)


class QueueWorker:
    """Pops trials of one shared study and evaluates them on the dev set, ``num_threads`` LM calls at a time."""

    def __init__(self, *, queue: TrialQueue, tracker: RunTracker, jobs: TrialJobs, num_threads: int,
                 meter: UsageMeter) -> None:
        self.queue = queue
        self.tracker = tracker
        self.jobs = jobs
        self.num_threads = num_threads
        self.meter = meter
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
            evaluations = evaluate_jobs(self.jobs.task, [], self.jobs.devset, num_threads=self.num_threads,
                                        meter=self.meter, events=self.jobs.events, more=more)
        except BaseException:
            self.queue.release_all()  # whatever this process still holds goes stale and is evaluated elsewhere
            raise
        raise_for(evaluations)
        return self.evaluated - before

    def _job(self, trial: optuna.Trial, spec: TrialSpec) -> EvaluationJob:
        live = self.tracker.take(trial, spec)

        def rivals(step: int) -> list[tuple[float, int]]:
            """The step's candidates that finished anywhere (read at most every poll), and here."""
            found = self.queue.rivals(step, max_age_s=self.queue.settings.poll_s)
            with self._lock:
                return found + self._finished_here.get(step, [])

        def tell(live: LiveTrial, evaluation: Evaluation) -> TrialRecord | None:
            record = self._tell(live, trial, evaluation)
            if record is not None and record.status == "complete" and spec.kind == "candidate":
                with self._lock:
                    self._finished_here.setdefault(spec.step, []).append((record.failures, spec.position))
            return record

        return self.jobs.job(spec, open_trial=lambda: live, tell=tell, rivals=rivals)

    def _tell(self, live: LiveTrial, trial: optuna.Trial, evaluation: Evaluation) -> TrialRecord | None:
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
