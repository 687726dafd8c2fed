"""How candidates are evaluated on the dev set: exact early stop, full evaluation, or the paper's protocol."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["EvaluationPolicy", "ExactEarlyStop", "FullEvaluation", "PaperProtocol", "beaten"]


def beaten(loss: float, position: int, rivals: Iterable[tuple[float, int]]) -> bool:
    """Whether a candidate at ``position`` in its step's plan, with ``loss`` so far, is beaten by a rival of the
    step that finished: one with a lower loss, or an equal one and earlier in the plan (ties go to the first).
    ``rivals``: (loss, plan position) of the step's complete candidates."""
    return any(failures < loss or (failures <= loss and i < position) for failures, i in rivals)


@runtime_checkable
class EvaluationPolicy(Protocol):
    """Decides when a candidate's evaluation may stop, and whether duplicates and the incumbent are re-run."""

    deduplicate: bool
    reevaluate_incumbent: bool

    def should_stop(self, *, loss: float, could_accept: bool, beaten: bool) -> bool:
        """Whether to stop a candidate whose total loss so far is ``loss``.

        ``could_accept`` says whether the acceptance criterion can still accept it; ``beaten``
        whether a fully evaluated candidate of this step already has a loss it cannot beat
        (:func:`beaten`).
        """
        ...

    def describe(self) -> dict[str, Any]: ...


class ExactEarlyStop:
    """Stop a candidate as soon as it can neither be accepted nor beat this step's best: same choice, fewer calls."""

    deduplicate = True
    reevaluate_incumbent = False

    def should_stop(self, *, loss: float, could_accept: bool, beaten: bool) -> bool:
        return not could_accept or beaten

    def describe(self) -> dict[str, Any]:
        return {"type": "ExactEarlyStop"}


class FullEvaluation:
    """Evaluate every distinct candidate on the whole dev set (full failure rates for every trial)."""

    deduplicate = True
    reevaluate_incumbent = False

    def should_stop(self, *, loss: float, could_accept: bool, beaten: bool) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"type": "FullEvaluation"}


class PaperProtocol:
    """The paper's protocol, for comparisons: every sample and the incumbent on the whole dev set each step."""

    deduplicate = False
    reevaluate_incumbent = True

    def should_stop(self, *, loss: float, could_accept: bool, beaten: bool) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"type": "PaperProtocol"}
