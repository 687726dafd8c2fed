"""DSPy's own evaluate callbacks for every evaluation of a run, so DSPy integrations see them.

Tools that hook ``dspy.settings.callbacks`` (MLflow-style tracing) get
``on_evaluate_start`` and ``on_evaluate_end`` around each trial and held-out check, with an
``EvaluationResult`` whose score is ``100 * (1 - failure rate)``, as ``dspy.Evaluate`` reports.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from dspy.evaluate.evaluate import EvaluationResult

from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.search.events import (
    EvaluationEnded,
    EvaluationStarted,
    Event,
    TrialFinished,
)

__all__ = ["DSPyEvaluateCallbacks"]

logger = logging.getLogger(__name__)


class DSPyEvaluateCallbacks:
    """Forwards evaluation events to DSPy callbacks (``dspy.settings.callbacks`` at compile time)."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)
        self._calls: dict[str, str] = {}

    def on_event(self, event: Event) -> None:
        if not self.callbacks:
            return
        if isinstance(event, EvaluationStarted):
            call_id = uuid.uuid4().hex
            self._calls[event.label] = call_id
            inputs = {"label": event.label, "size": event.size, "trial_number": event.trial_number}
            self._each("on_evaluate_start", call_id=call_id, instance=self, inputs=inputs)
        elif isinstance(event, (TrialFinished, EvaluationEnded)) and event.label in self._calls:
            call_id = self._calls.pop(event.label)
            failures, size, error = self._outcome(event)
            exception = AutoEvolError(error) if error else None
            outputs = None if exception else EvaluationResult(score=round(100 * (1 - failures / max(size, 1)), 2),
                                                              results=[])
            self._each("on_evaluate_end", call_id=call_id, outputs=outputs, exception=exception)

    @staticmethod
    def _outcome(event: TrialFinished | EvaluationEnded) -> tuple[float, int, str | None]:
        if isinstance(event, TrialFinished):
            return event.trial.failures, event.trial.evaluated or 1, event.trial.error
        return event.failures, event.size, None

    def _each(self, method: str, **arguments: Any) -> None:
        for callback in self.callbacks:
            handler = getattr(callback, method, None)
            if handler is not None:
                handler(**arguments)
