"""What the loop optimizes, as a small protocol: run one case, describe a trajectory.

The optimization loop never looks inside a case; an :class:`OptimizationTask` turns a
program and one example into a :class:`CaseResult` (outputs plus a failure or none) and
renders a mini-batch of results as the trajectory the optimizer LM analyses. The
instruction data task (:mod:`.evolution_task`) and the any-program task
(:mod:`.program_task`) are the two implementations.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

import dspy
from pydantic import BaseModel

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.evolution.detectors import Failure

__all__ = ["CaseResult", "OptimizationTask", "apply_instructions", "get_instructions"]


class CaseResult(BaseModel):
    """One example run through a program: what went in, what came out, and whether it failed."""

    index: int
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    failure: Failure | None = None
    score: float | None = None
    feedback: str | None = None


@runtime_checkable
class OptimizationTask(Protocol):
    """Runs cases for the loop and tells the optimizer LM what it is looking at."""

    kind: str
    analysis_guidance: str
    rewrite_guidance: str

    def run_case(self, program: dspy.Module, example: dspy.Example, index: int) -> CaseResult: ...

    def format_trajectory(self, results: list[CaseResult]) -> str: ...

    def validate_candidate(self, predictor: str, text: str) -> str | None:
        """Return why a proposed instruction text is unusable, or ``None`` if it is fine."""
        ...


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
