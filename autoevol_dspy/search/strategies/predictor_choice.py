"""Which predictor's instructions a step rewrites, for programs with several predictors."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["PredictorChoice", "RoundRobin"]


@runtime_checkable
class PredictorChoice(Protocol):
    """Picks the predictor a step rewrites; the choice is recorded in the step plan."""

    def choose(self, *, step: int, predictors: list[str]) -> str: ...

    def describe(self) -> dict[str, Any]: ...


class RoundRobin:
    """Each predictor in turn, in ``named_predictors()`` order: every one gets the same number of steps."""

    def choose(self, *, step: int, predictors: list[str]) -> str:
        return predictors[(step - 1) % len(predictors)]

    def describe(self) -> dict[str, Any]:
        return {"type": "RoundRobin"}
