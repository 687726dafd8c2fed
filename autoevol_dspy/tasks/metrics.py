"""Turning a user's DSPy metric into a pass/fail verdict with an optional score and feedback.

Accepted metric forms: ``metric(example, prediction)``, ``metric(example, prediction,
trace)``, and GEPA's ``metric(gold, pred, trace, pred_name, pred_trace)``. A metric may
return a bool, a number, or ``dspy.Prediction(score=..., feedback=...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy

from autoevol_dspy.errors import ConfigurationError

__all__ = ["MetricVerdict", "check_metric", "judge"]

_ACCEPTED = "metric(example, prediction), metric(example, prediction, trace) or metric(gold, pred, trace, pred_name, pred_trace)"


@dataclass(frozen=True)
class MetricVerdict:
    """The metric's word on one run: its loss (0 = perfect, 1 = failed), score and feedback."""

    loss: float
    score: float | None
    feedback: str | None

    @property
    def passed(self) -> bool:
        return self.loss == 0.0


def _positional_capacity(metric: Callable) -> tuple[int, int]:
    parameters = inspect.signature(metric).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 0, 99
    positional = [
        p for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required = sum(1 for p in positional if p.default is inspect.Parameter.empty)
    return required, len(positional)


def check_metric(metric: Callable) -> int:
    """How many positional arguments to pass ``metric`` (2, 3 or 5); a clear error if none fits."""
    if not callable(metric):
        raise ConfigurationError(f"the metric must be callable, got {type(metric).__name__}; accepted: {_ACCEPTED}")
    try:
        required, capacity = _positional_capacity(metric)
    except (TypeError, ValueError):
        return 2
    for count in (2, 3, 5):
        if required <= count <= capacity:
            return count
    raise ConfigurationError(
        f"the metric takes {required} required argument(s), which fits none of the accepted forms: {_ACCEPTED}"
    )


def judge(
    metric: Callable, arity: int, example: dspy.Example, prediction: Any, *, threshold: float | None
) -> MetricVerdict:
    """Call ``metric`` and turn its value into a loss.

    A bool passes or fails. A number is a score: without ``threshold`` the loss is
    ``1 - score`` (scores are clipped to [0, 1]), so the objective is one minus the mean
    score, as DSPy's ``Evaluate`` reports it; with ``threshold`` a score passes when it
    reaches the threshold. ``dspy.Prediction(score=..., feedback=...)`` adds feedback.
    """
    arguments: tuple = (example, prediction, None, None, None)[:arity]
    value = metric(*arguments)
    feedback = None
    if isinstance(value, dspy.Prediction) or (hasattr(value, "score") and not isinstance(value, (int, float))):
        feedback = getattr(value, "feedback", None)
        value = getattr(value, "score", None)
    if isinstance(value, bool) or value is None:
        passed = bool(value)
        return MetricVerdict(loss=0.0 if passed else 1.0, score=float(passed), feedback=feedback)
    try:
        score = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the metric returned {type(value).__name__}, not a bool, a number or a Prediction") from exc
    if threshold is not None:
        return MetricVerdict(loss=0.0 if score >= threshold else 1.0, score=score, feedback=feedback)
    return MetricVerdict(loss=round(1.0 - min(1.0, max(0.0, score)), 9), score=score, feedback=feedback)
