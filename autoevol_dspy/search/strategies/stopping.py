"""When the search stops: a step limit, no improvement, an LM-call budget, or any combination.

Stoppers read a :class:`SearchState`, both between steps and while a step runs (an
exhausted budget interrupts an evaluation, which is then retried by a resumed run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from autoevol_dspy.errors import at_least

__all__ = ["AnyOf", "LMCallBudget", "MaxSteps", "NoImprovement", "SearchState", "Stopper", "stop_when"]


@dataclass(frozen=True)
class SearchState:
    """What a stopper may look at: decided steps, steps since the last improvement, LM calls so far."""

    steps_done: int
    steps_without_improvement: int
    num_predictors: int
    lm_calls: int


@runtime_checkable
class Stopper(Protocol):
    """Returns why the search must stop now (a short reason such as ``"patience"``), or ``None``."""

    def stop_reason(self, state: SearchState) -> str | None: ...

    def describe(self) -> dict[str, Any]: ...


class MaxSteps:
    """Stop after ``max_steps`` decided steps (the paper: 10)."""

    def __init__(self, max_steps: int = 10) -> None:
        self.max_steps = at_least("max_steps", max_steps, 0)

    def stop_reason(self, state: SearchState) -> str | None:
        return "max_steps" if state.steps_done >= self.max_steps else None

    def describe(self) -> dict[str, Any]:
        return {"type": "MaxSteps", "max_steps": self.max_steps}


class NoImprovement:
    """Stop after ``patience`` full rounds over the predictors without an accepted candidate.

    Patience counts rounds, not steps, so every predictor of a pipeline gets its turn
    before the run gives up (one round is one step for a one-predictor program).
    """

    def __init__(self, patience: int = 1) -> None:
        self.patience = at_least("patience", patience, 1)

    def stop_reason(self, state: SearchState) -> str | None:
        limit = self.patience * max(1, state.num_predictors)
        return "patience" if state.steps_without_improvement >= limit else None

    def describe(self) -> dict[str, Any]:
        return {"type": "NoImprovement", "patience": self.patience}


class LMCallBudget:
    """Stop once the run has made ``max_calls`` LM requests (earlier processes of the run included).

    Checked between steps; the held-out check at the end of the run is not counted against it."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = at_least("max_calls", max_calls, 1)

    def stop_reason(self, state: SearchState) -> str | None:
        return "budget" if state.lm_calls >= self.max_calls else None

    def describe(self) -> dict[str, Any]:
        return {"type": "LMCallBudget", "max_calls": self.max_calls}


class AnyOf:
    """Stop as soon as any of the stoppers says so (the first reason, in order)."""

    def __init__(self, *stoppers: Stopper) -> None:
        self.stoppers = [s for stopper in stoppers for s in (stopper.stoppers if isinstance(stopper, AnyOf) else [stopper])]

    def stop_reason(self, state: SearchState) -> str | None:
        return next((reason for s in self.stoppers if (reason := s.stop_reason(state)) is not None), None)

    def describe(self) -> dict[str, Any]:
        return {"type": "AnyOf", "stoppers": [s.describe() for s in self.stoppers]}


def stop_when(*, patience: int = 1, max_lm_calls: int | None = None) -> Stopper:
    """The usual stopper from plain settings (a config file, the command line): patience and an optional budget."""
    stoppers: list[Stopper] = [NoImprovement(patience)]
    if max_lm_calls is not None:
        stoppers.append(LMCallBudget(max_lm_calls))
    return AnyOf(*stoppers)
