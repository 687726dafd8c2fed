"""The driver's side of a shared study: enqueue evaluations, help evaluate them, wait until each one is settled.

A step is decided only when every candidate has a finished trial (complete or stopped
early), wherever it ran. A candidate whose evaluation failed on an LM outage stops the run
as in one process; one whose trials were abandoned more than ``max_retry`` times (workers
that died) stops it too, since deciding without it could select another method. Both leave
the finished trials in the study, and the rerun enqueues only what is missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import dspy

from autoevol_dspy.data.splits import fingerprint
from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.evaluation import EvaluationInterrupted, LMOutageError
from autoevol_dspy.search.evaluators import TrialJobs
from autoevol_dspy.search.events import EventBus, TrialFinished
from autoevol_dspy.search.queue import QueueView, SharedStudy, TrialQueue
from autoevol_dspy.search.queue_worker import QueueWorker
from autoevol_dspy.search.records import TrialRecord, TrialSpec
from autoevol_dspy.search.tracking import QUEUED_KEY, RunTracker

__all__ = ["QueueDriver", "decode_examples", "encode_examples"]

logger = logging.getLogger(__name__)

_WAIT_LOG_S = 30.0


def encode_examples(examples: Sequence[dspy.Example]) -> list[dict[str, Any]] | None:
    """The examples as JSON rows (fields and input names), or ``None`` when a value is not JSON."""
    rows = [{"fields": example.toDict(), "inputs": sorted(example.inputs().keys())} for example in examples]
    try:
        json.dumps(rows)
    except (TypeError, ValueError):
        return None
    return rows


def decode_examples(rows: Sequence[dict[str, Any]]) -> list[dspy.Example]:
    return [dspy.Example(**row["fields"]).with_inputs(*row["inputs"]) for row in rows]


class QueueDriver:
    """The :class:`Evaluator` of a run whose study is shared: its trials are queued, and evaluated by any
    process; ``worker`` is the driver's own evaluation (``None`` when it only coordinates)."""

    def __init__(self, *, queue: TrialQueue, tracker: RunTracker, events: EventBus,
                 worker: QueueWorker | None) -> None:
        self.queue = queue
        self.tracker = tracker
        self.events = events
        self.worker = worker
        self.remote_calls = 0
        self._since = len(tracker.study.get_trials(deepcopy=False))  # failures before this session do not count
        self._orphans: dict[tuple[int, str], float] = {}
        self._last_log = time.monotonic()

    @classmethod
    def open(cls, settings: SharedStudy, *, tracker: RunTracker, jobs: TrialJobs, num_threads: int,
             meter: UsageMeter, layout: dict[str, Any]) -> "QueueDriver":
        """The driver of a run shared as ``settings`` say, with a worker of its own unless ``settings.evaluate``
        is off. Writes what workers need into the run's identity (the dev set too, when it is JSON) and marks
        the run running."""
        queue = TrialQueue(tracker.study, settings)
        worker = (QueueWorker(queue=queue, tracker=tracker, jobs=jobs, num_threads=num_threads, meter=meter)
                  if settings.evaluate else None)
        devset = jobs.devset
        rows = encode_examples(devset)
        kept_at = tracker.save_devset(rows) if rows is not None else None
        tracker.set_identity_part("workers", {
            "shared": settings.describe(), "layout": layout, "recipe": settings.recipe,
            "devset": {"fingerprint": fingerprint(devset), "size": len(devset), "attr": kept_at},
        })
        driver = cls(queue=queue, tracker=tracker, events=jobs.events, worker=worker)
        driver.mark("running")
        return driver

    @property
    def evaluates_here(self) -> bool:
        return self.worker is not None

    def mark(self, state: str, reason: str | None = None) -> None:
        """Tell the workers how the run stands (they leave once it is ``finished``)."""
        self.tracker.mark_driver(state, reason)

    def evaluate(self, specs: Sequence[TrialSpec], *, interrupt: Callable[[], str | None]) -> list[TrialRecord]:
        """Each spec's finished trial, in order: enqueued where missing, evaluated here or by workers.

        ``interrupt`` is asked once, before anything is enqueued: a queued evaluation runs to its end."""
        specs = list(specs)
        if any(self.tracker.find_trial(step=s.step, candidate_key=s.candidate_key) is None for s in specs):
            reason = interrupt()
            if reason is not None:
                raise EvaluationInterrupted(reason)
        while True:
            view = self.queue.view()  # one read: pending and finished come from the same moment
            self._observe(view)
            records = [self.tracker.find_trial(step=s.step, candidate_key=s.candidate_key) for s in specs]
            if all(record is not None for record in records):
                return records  # type: ignore[return-value]
            for spec, record in zip(specs, records):
                if record is None and not view.pending(spec.key):
                    self._requeue(spec, view)
            self.queue.fail_stale()
            done = self.worker.drain() if self.worker is not None else 0
            if not done:
                self._log_wait(view, sum(r is None for r in records))
                time.sleep(self.queue.settings.poll_s)

    def _requeue(self, spec: TrialSpec, view: QueueView) -> None:
        """Enqueue a candidate with no live trial, unless its evaluations failed for good."""
        errors, abandoned = view.failures(spec.key, since=self._since)
        if errors:
            raise LMOutageError(errors[-1])
        if abandoned > self.queue.settings.max_retry:
            raise AutoEvolError(
                f"{spec.label or spec.candidate_key}: its evaluation was abandoned {abandoned} times (the processes "
                "running it stopped beating); every finished trial is saved: rerun to continue"
            )
        if abandoned:
            # Optuna's retry callback enqueues a copy right after failing a stale trial; the process
            # that failed it may have died in between, so after a grace period the driver enqueues it.
            first_seen = self._orphans.setdefault(spec.key, time.monotonic())
            if time.monotonic() - first_seen < self.queue.settings.grace_s:
                return
        self._orphans.pop(spec.key, None)
        self.tracker.enqueue(spec)
        logger.debug("enqueued %s", spec.label)

    def _observe(self, view: QueueView) -> None:
        """Trials that other processes finished: announce them, count their LM calls."""
        for record in self.tracker.refresh(view.trials):
            self.remote_calls += record.usage.calls
            self.events.emit(TrialFinished(label=_label_of(view, record), trial=record))

    def _log_wait(self, view: QueueView, missing: int) -> None:
        if time.monotonic() - self._last_log < _WAIT_LOG_S:
            return
        self._last_log = time.monotonic()
        counts = view.counts()
        logger.info("waiting for %d evaluation(s): %d queued, %d running in worker processes",
                    missing, counts["waiting"], counts["running"])


def _label_of(view: QueueView, record: TrialRecord) -> str:
    for trial in view.trials:
        if trial.number == record.number:
            return (trial.user_attrs.get(QUEUED_KEY) or {}).get("label") or f"trial {record.number}"
    return f"trial {record.number}"
