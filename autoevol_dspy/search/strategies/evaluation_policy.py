"""How candidates are evaluated on the dev set: exact early stop, full evaluation, or the paper's protocol."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["EvaluationPolicy", "ExactEarlyStop", "FullEvaluation", "PaperProtocol"]


@runtime_checkable
class EvaluationPolicy(Protocol):
    """Decides when a candidate's evaluation may stop, and whether duplicates and the incumbent are re-run."""

    deduplicate: bool
    reevaluate_incumbent: bool

    def should_stop(self, *, loss: float, could_accept: bool, best_so_far: float | None) -> bool:
        """Whether to stop a candidate whose total loss so far is ``loss``.

        ``could_accept`` says whether the acceptance criterion can still accept it;
        ``best_so_far`` is the loss of this step's best fully evaluated candidate.
        """
        ...

    def describe(self) -> dict[str, Any]: ...


class ExactEarlyStop:
    """Stop a candidate as soon as it can neither be accepted nor beat this step's best: same choice, fewer calls."""

    deduplicate = True
    reevaluate_incumbent = False

    def should_stop(self, *, loss: float, could_accept: bool, best_so_far: float | None) -> bool:
        return not could_accept or (best_so_far is not None and loss >= best_so_far)

    def describe(self) -> dict[str, Any]:
        return {"type": "ExactEarlyStop"}


class FullEvaluation:
    """Evaluate every distinct candidate on the whole dev set (full failure rates for every trial)."""

    deduplicate = True
    reevaluate_incumbent = False

    def should_stop(self, *, loss: float, could_accept: bool, best_so_far: float | None) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"type": "FullEvaluation"}


class PaperProtocol:
    """The paper's protocol, for comparisons: every sample and the incumbent on the whole dev set each step."""

    deduplicate = False
    reevaluate_incumbent = True

    def should_stop(self, *, loss: float, could_accept: bool, best_so_far: float | None) -> bool:
        return False

    def describe(self) -> dict[str, Any]:
        return {"type": "PaperProtocol"}
