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
from collections.abc import Sequence
from typing import Any

import dspy

from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.search.evaluation import LMOutageError
from autoevol_dspy.search.events import EventBus, TrialFinished
from autoevol_dspy.search.queue import QueueView, TrialQueue
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
    """Evaluations of one run through its shared study; ``worker`` is the driver's own evaluation (or ``None``)."""

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
    def start(cls, queue: TrialQueue, *, tracker: RunTracker, devset: Sequence[dspy.Example], fingerprint: str,
              layout: dict[str, Any], events: EventBus, worker: QueueWorker | None) -> "QueueDriver":
        """Write what workers need into the run's identity (the dev set too, when it is JSON) and mark the run running."""
        rows = encode_examples(devset)
        kept_at = tracker.save_devset(rows) if rows is not None else None
        settings = queue.settings
        tracker.set_identity_part("workers", {
            "shared": settings.describe(), "layout": layout, "recipe": settings.recipe,
            "devset": {"fingerprint": fingerprint, "size": len(devset), "attr": kept_at},
        })
        driver = cls(queue=queue, tracker=tracker, events=events, worker=worker)
        driver.mark("running")
        return driver

    def mark(self, state: str, reason: str | None = None) -> None:
        """Tell the workers how the run stands (they leave once it is ``finished``)."""
        self.tracker.mark_driver(state, reason)

    def evaluate(self, specs: Sequence[TrialSpec]) -> list[TrialRecord]:
        """Each spec's finished trial, in order: enqueued where missing, evaluated here or by workers."""
        specs = list(specs)
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
