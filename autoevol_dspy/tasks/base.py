"""What the loop optimizes, as a small protocol: run one case, describe a trajectory.

The optimization loop never looks inside a case; an :class:`OptimizationTask` turns a
program and one example into a :class:`CaseResult` (outputs plus a failure or none) and
renders a mini-batch of results as the trajectory the optimizer LM analyses. The
instruction data task (:mod:`.evolution`) and the any-program task (:mod:`.program`)
are the two implementations.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import dspy
from pydantic import BaseModel, Field

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.evolution.detectors import Failure

__all__ = ["CaseResult", "OptimizationTask", "apply_instructions", "get_instructions", "lm_name", "lm_sampling"]


class CaseResult(BaseModel):
    """One example run through a program: what went in, what came out, and whether it failed."""

    index: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    failure: Failure | None = None
    loss: float | None = None
    score: float | None = None
    feedback: str | None = None
    view: list[tuple[str, str]] = Field(default_factory=list, description="the case as its task shows it to a "
                                        "person: labelled texts, in order (empty: its inputs and outputs)")

    def shown(self) -> list[tuple[str, str]]:
        """The case as labelled texts, for the report: its task's view, else its inputs and outputs."""
        if self.view:
            return list(self.view)
        return ([(key, str(value)) for key, value in self.inputs.items()]
                + [(f"→ {key}", str(value)) for key, value in self.outputs.items()])

    @property
    def case_loss(self) -> float:
        """This case's share of the failure rate: its loss, else 1 for a failure and 0 for a pass."""
        if self.loss is not None:
            return self.loss
        return 1.0 if self.failure is not None else 0.0


@runtime_checkable
class OptimizationTask(Protocol):
    """Runs cases for the loop and tells the optimizer LM what it is looking at.

    The loop never asks what kind of task it runs: examples, programs, cases, the
    trajectory and the settings that decide results all come from the task.
    """

    analysis_guidance: str
    rewrite_guidance: str

    def examples(self, items: Sequence[Any], *, name: str) -> list[dspy.Example]:
        """``items`` as Examples with inputs marked; one-line :class:`DataError` otherwise."""
        ...

    def check(self, student: dspy.Module, *, default_lm: dspy.LM | None) -> None:
        """Refuse, before any LM call, a student or an LM setup the task cannot run."""
        ...

    def program_for(self, student: dspy.Module, instructions: dict[str, str]) -> dspy.Module:
        """A copy of ``student`` with these instructions, ready to run cases."""
        ...

    def run_case(self, program: dspy.Module, example: dspy.Example, index: int) -> CaseResult: ...

    def format_trajectory(self, results: list[CaseResult]) -> str: ...

    def validate_candidate(self, predictor: str, text: str) -> str | None:
        """Return why a proposed instruction text is unusable, or ``None`` if it is fine."""
        ...

    def describe(self) -> dict[str, Any]:
        """The task's settings that decide results (no secrets); a resumed run must match them."""
        ...


def lm_name(lm: dspy.LM | None) -> str | None:
    """The model name of an LM for settings records (never its key), or ``None``."""
    return getattr(lm, "model", None) if lm is not None else None


def lm_sampling(lm: dspy.LM | None) -> dict[str, Any] | None:
    """The sampling settings of an LM that decide its replies (temperature, top_p, max_tokens), or ``None``."""
    if lm is None:
        return None
    kwargs = getattr(lm, "kwargs", {}) or {}
    return {name: kwargs.get(name) for name in ("temperature", "top_p", "max_tokens") if kwargs.get(name) is not None}


def get_instructions(program: dspy.Module) -> dict[str, str]:
    """The instructions of every named predictor of ``program``: the optimizable parameter."""
    predictors = program.named_predictors()
    if not predictors:
        raise ConfigurationError("the program has no predictors (dspy.Predict or similar): nothing to optimize")
    return {name: predictor.signature.instructions for name, predictor in predictors}


def apply_instructions(program: dspy.Module, instructions: dict[str, str]) -> dspy.Module:
    """A copy of ``program`` with these instructions; demos and LMs set on predictors are kept."""
    shared = {}
    for _, predictor in program.named_predictors():
        lm = getattr(predictor, "lm", None)
        if lm is not None:
            shared[id(lm)] = lm  # LMs (and their engines) are shared, never copied
    try:
        new_program = copy.deepcopy(program, shared)
    except Exception:  # noqa: BLE001 - some user modules hold uncopyable state; DSPy's own fallback
        new_program = program.deepcopy()
    for name, predictor in new_program.named_predictors():
        if name in instructions:
            predictor.signature = predictor.signature.with_instructions(instructions[name])
    return new_program
