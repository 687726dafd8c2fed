"""What a check looks at and what it returns: the proposal in context, the rejection, the protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.text import bounded

__all__ = ["ProposalCheck", "ProposalContext", "Rejection", "retry_feedback"]


@dataclass(frozen=True)
class ProposalContext:
    """What a check may look at: the proposal, the incumbent it would replace, and what the optimizer saw.

    ``output_terms`` gives, per output field, the other words that name it (its type's values
    and its description's words, see :func:`signature_terms`): a rewrite may say those instead
    of the field's name.
    """

    text: str
    incumbent: str
    trajectory: str = ""
    cases: tuple[str, ...] = ()
    feedback: str = ""
    output_fields: tuple[str, ...] = ()
    output_terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:  # every text bounded: a check never reads megabytes of a model's loop
        for name in ("text", "incumbent", "trajectory", "feedback"):
            object.__setattr__(self, name, bounded(str(getattr(self, name))))
        object.__setattr__(self, "cases", tuple(bounded(str(case)) for case in self.cases))
        object.__setattr__(self, "output_fields", tuple(str(name) for name in self.output_fields))
        object.__setattr__(self, "output_terms", {str(name): tuple(str(term) for term in terms)
                                                  for name, terms in dict(self.output_terms).items()})


class Rejection(BaseModel):
    """Why a proposal was refused: a category to count, a reason to read, the check that refused it."""

    category: str
    reason: str
    check: str


def retry_feedback(rejection: Rejection) -> str:
    """One line telling the optimizer LM why its last rewrite was refused, for its next try."""
    return (f"Your previous rewrite was refused ({rejection.category}): {rejection.reason}. Write general "
            "instructions for the same task, not an answer, a question or the details of a case.")


@runtime_checkable
class ProposalCheck(Protocol):
    """Refuses a proposal that is not usable instructions, or returns ``None``."""

    def check(self, proposal: ProposalContext) -> Rejection | None: ...

    def describe(self) -> dict[str, Any]: ...


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return value
