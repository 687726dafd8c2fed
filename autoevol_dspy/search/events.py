"""Typed events of a search, and the callbacks that subscribe to them.

The loop announces what happens (a step planned, an evaluation started, a case judged,
a trial finished, a step decided, the run ended); progress bars, log lines and a user's
own tracking (MLflow, a dashboard) are subscribers. A callback that raises is logged
and ignored: observers never change a run's results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from autoevol_dspy.tasks.base import CaseResult
    from autoevol_dspy.search.holdout import HoldoutComparison
    from autoevol_dspy.search.records import (
        RunResult,
        StepOutcome,
        StepPlan,
        TrialRecord,
    )

__all__ = [
    "BASELINE_LABEL",
    "CaseJudged",
    "EvaluationEnded",
    "EvaluationStarted",
    "Event",
    "EventBus",
    "HoldoutChecked",
    "RunEnded",
    "RunStarted",
    "SearchCallback",
    "StepDecided",
    "StepPlanned",
    "TrialFinished",
]

logger = logging.getLogger(__name__)

#: The label of the baseline's evaluation (the initial instructions on the dev set).
BASELINE_LABEL = "initial instructions"


@dataclass(frozen=True)
class RunStarted:
    """A run opened its study (``resumed_trials`` finished trials were already there)."""

    study_name: str
    train_size: int
    dev_size: int
    holdout_size: int
    resumed_trials: int


@dataclass(frozen=True)
class StepPlanned:
    """A step has its trajectory and its distinct candidates (``resumed``: the plan came from the study)."""

    plan: "StepPlan"
    resumed: bool


@dataclass(frozen=True)
class EvaluationStarted:
    """Instructions started their evaluation on ``size`` cases (a trial is RUNNING, or a held-out check).

    ``program`` is the program evaluated and ``cases`` its examples, for observers that show them
    (DSPy's evaluate callbacks get them as ``dspy.Evaluate`` gives them).
    """

    label: str
    size: int
    trial_number: int | None
    program: Any = field(default=None, repr=False, compare=False)
    cases: Sequence[Any] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class CaseJudged:
    """One case of an evaluation finished; ``done`` cases so far, ``failures`` among them."""

    label: str
    done: int
    size: int
    failures: int
    case: "CaseResult | None" = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class EvaluationEnded:
    """An evaluation that is not a trial (a held-out check) ended."""

    label: str
    failures: float
    size: int


@dataclass(frozen=True)
class TrialFinished:
    """An evaluation ended as a trial: complete, pruned (early stop) or failed."""

    label: str
    trial: "TrialRecord"


@dataclass(frozen=True)
class StepDecided:
    """A step chose its winner (``resumed``: the outcome came from the study)."""

    outcome: "StepOutcome"
    resumed: bool


@dataclass(frozen=True)
class HoldoutChecked:
    """The initial and the best instructions were measured on the held-out cases."""

    comparison: "HoldoutComparison"


@dataclass(frozen=True)
class RunEnded:
    """The run stopped; the result holds everything it found."""

    result: "RunResult"


Event = Union[RunStarted, StepPlanned, EvaluationStarted, CaseJudged, EvaluationEnded, TrialFinished, StepDecided, HoldoutChecked,
              RunEnded]


@runtime_checkable
class SearchCallback(Protocol):
    """Receives every event of a run, in order, from the thread that produced it."""

    def on_event(self, event: Event) -> None: ...


class EventBus:
    """Delivers events to callbacks; a failing callback is logged once per event type, never raised."""

    def __init__(self, callbacks: Iterable[SearchCallback] = ()) -> None:
        self.callbacks = list(callbacks)
        self._warned: set[tuple[int, type]] = set()

    def emit(self, event: Event) -> None:
        for callback in self.callbacks:
            try:
                callback.on_event(event)
            except Exception as exc:  # noqa: BLE001 - an observer must not break the run
                key = (id(callback), type(event))
                if key not in self._warned:
                    self._warned.add(key)
                    logger.warning("callback %r failed on %s: %s", callback, type(event).__name__, exc)
