"""DSPy's own evaluate callbacks for every evaluation of a run, so DSPy integrations see them.

Tools that hook ``dspy.settings.callbacks`` (MLflow-style tracing) get
``on_evaluate_start`` and ``on_evaluate_end`` around each trial and held-out check, with what
``dspy.Evaluate`` gives them: ``instance`` is a ``dspy.Evaluate`` holding the cases, the metric
and the thread count; ``inputs`` are the arguments of ``dspy.Evaluate.__call__`` (``program``,
``devset``, ``metric``, ``num_threads``, ...; ``callback_metadata`` names the evaluation: its
``label`` and ``trial_number``); ``outputs`` is an ``EvaluationResult`` whose score is
``100 * (1 - failure rate)`` and whose ``results`` are ``(example, prediction, score)`` per
judged case.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.evaluate.evaluate import EvaluationResult

from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.search.events import (
    CaseJudged,
    EvaluationEnded,
    EvaluationStarted,
    Event,
    TrialFinished,
)

__all__ = ["DSPyEvaluateCallbacks"]

logger = logging.getLogger(__name__)


@dataclass
class _Open:
    """One evaluation a callback saw start: its call id, its cases and the cases judged so far."""

    call_id: str
    cases: Sequence[Any]
    results: list[tuple[Any, dspy.Prediction, float]] = field(default_factory=list)


class DSPyEvaluateCallbacks:
    """Forwards evaluation events to DSPy callbacks (``dspy.settings.callbacks`` at compile time)."""

    def __init__(self, callbacks: Sequence[Any], *, metric: Callable | None = None, num_threads: int | None = None,
                 ) -> None:
        self.callbacks = list(callbacks)
        self.metric = metric
        self.num_threads = num_threads
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        if not self.callbacks:
            return
        if isinstance(event, EvaluationStarted):
            self._start(event)
        elif isinstance(event, CaseJudged) and event.case is not None:
            with self._lock:
                open_ = self._open.get(event.label)
                if open_ is not None:
                    open_.results.append(_result(open_.cases, event.case))
        elif isinstance(event, (TrialFinished, EvaluationEnded)):
            with self._lock:
                open_ = self._open.pop(event.label, None)
            if open_ is not None:
                self._end(event, open_)

    def _start(self, event: EvaluationStarted) -> None:
        cases = list(event.cases)
        open_ = _Open(call_id=uuid.uuid4().hex, cases=cases)
        with self._lock:
            self._open[event.label] = open_
        instance = dspy.Evaluate(devset=cases, metric=self.metric, num_threads=self.num_threads)
        inputs = {"program": event.program, "metric": self.metric, "devset": cases, "num_threads": self.num_threads,
                  "display_progress": False, "display_table": False,
                  "callback_metadata": {"label": event.label, "trial_number": event.trial_number,
                                        "size": event.size},
                  "save_as_csv": None, "save_as_json": None}
        self._each("on_evaluate_start", call_id=open_.call_id, instance=instance, inputs=inputs)

    def _end(self, event: TrialFinished | EvaluationEnded, open_: _Open) -> None:
        failures, size, error = _outcome(event)
        exception = AutoEvolError(error) if error else None
        outputs = None if exception else EvaluationResult(score=round(100 * (1 - failures / max(size, 1)), 2),
                                                          results=sorted(open_.results, key=_position(open_.cases)))
        self._each("on_evaluate_end", call_id=open_.call_id, outputs=outputs, exception=exception)

    def _each(self, method: str, **arguments: Any) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, method, None)
            if handler is not None:
                handler(**arguments)


def _result(cases: Sequence[Any], case: Any) -> tuple[Any, dspy.Prediction, float]:
    """``(example, prediction, score)`` for a judged case, as ``dspy.Evaluate`` lists it."""
    example = cases[case.index] if 0 <= case.index < len(cases) else None
    score = case.score if case.score is not None else 1.0 - case.case_loss
    return example, dspy.Prediction(**case.outputs), score


def _position(cases: Sequence[Any]) -> Callable[[tuple[Any, dspy.Prediction, float]], int]:
    """Results in the order of the cases (they finish in any order)."""
    order = {id(case): i for i, case in enumerate(cases)}
    return lambda result: order.get(id(result[0]), len(order))


def _outcome(event: TrialFinished | EvaluationEnded) -> tuple[float, int, str | None]:
    if isinstance(event, TrialFinished):
        return event.trial.failures, event.trial.evaluated or 1, event.trial.error
    return event.failures, event.size, None
