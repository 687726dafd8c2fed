"""What a detector judges and what it reports: the case, the failure, the protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from autoevol_dspy.text import bounded

__all__ = ["EvolutionCase", "Failure", "FailureDetector"]


class Failure(BaseModel):
    """Why one case failed: a category to count and a reason to read."""

    category: str
    reason: str
    detector: str


@dataclass(frozen=True)
class EvolutionCase:
    """What the detectors judge: one instruction, its evolution, and the answer to it.

    ``examples``: the outputs of the worked examples (DSPy demos) the evolving LM was shown,
    which an evolution of another instruction must not copy. ``method``: the evolving method
    that made the evolution, whose words an evolution must not merely repeat ('' when unknown).
    Each text is :func:`~autoevol_dspy.text.bounded`: a megabyte of a model's loop is judged
    by its two ends, never read whole.
    """

    instruction: str
    evolved: str
    response: str | None = None
    examples: tuple[str, ...] = ()
    method: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "instruction", bounded(self.instruction))
        object.__setattr__(self, "evolved", bounded(self.evolved))
        if self.response is not None:
            object.__setattr__(self, "response", bounded(self.response))
        object.__setattr__(self, "examples", tuple(bounded(str(text)) for text in self.examples))
        object.__setattr__(self, "method", bounded(self.method))


@runtime_checkable
class FailureDetector(Protocol):
    """Judges one evolution; ``needs_response`` asks the response LM to answer first."""

    name: str
    needs_response: bool

    def detect(self, case: EvolutionCase) -> Failure | None: ...
