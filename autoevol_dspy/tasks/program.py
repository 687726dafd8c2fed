"""Any DSPy program as the optimized object: a failure is a run the user's metric rejects."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import dspy

from autoevol_dspy.evolution.detectors import Failure
from autoevol_dspy.lm.context import use_lm
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.tasks.base import CaseResult
from autoevol_dspy.tasks.metrics import check_metric, judge
from autoevol_dspy.text import clip, short_error

__all__ = ["ProgramTask"]

_ANALYSIS_GUIDANCE = """\
The instructions belong to one step of a program built from LM calls. Each case shows \
the program's inputs, its outputs, and the metric's verdict with any feedback. Find \
the cases that failed, say what went wrong in each and which part of the instructions \
let it happen (missing rule, unclear wording, wrong format, missing knowledge)."""

_REWRITE_GUIDANCE = """\
The instructions are the task description given to an LM for one step of a program. \
Keep the task the same; make the description clearer and add the rules or hints the \
feedback shows are missing."""


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


class ProgramTask:
    """Run the program on an example's inputs and let the metric decide whether it failed."""

    kind = "program"
    analysis_guidance = _ANALYSIS_GUIDANCE
    rewrite_guidance = _REWRITE_GUIDANCE

    def __init__(self, *, metric: Callable, threshold: float | None = None, lm: dspy.LM | None = None) -> None:
        self.metric = metric
        self.arity = check_metric(metric)
        self.threshold = threshold
        self.lm = lm

    def run_case(self, program: dspy.Module, example: dspy.Example, index: int) -> CaseResult:
        inputs = {key: _jsonable(value) for key, value in example.inputs().items()}
        try:
            with lm_role("program"), use_lm(self.lm):
                prediction = program(**example.inputs())
        except Exception as exc:  # noqa: BLE001 - a program that crashes on a case fails that case
            if _is_lm_transport_error(exc):
                raise
            failure = Failure(category="program_error", reason=short_error(exc), detector="program")
            return CaseResult(index=index, inputs=inputs, outputs={}, failure=failure)
        outputs = {key: _jsonable(value) for key, value in dict(prediction.items()).items()}
        try:
            verdict = judge(self.metric, self.arity, example, prediction, threshold=self.threshold)
        except Exception as exc:  # noqa: BLE001 - the metric's exceptions are failures with their reason
            failure = Failure(category="metric_error", reason=short_error(exc), detector="metric")
            return CaseResult(index=index, inputs=inputs, outputs=outputs, failure=failure)
        failure = None
        if not verdict.passed:
            reason = verdict.feedback or f"the metric scored {verdict.score:g}"
            failure = Failure(category="metric_rejected", reason=clip(reason, 500), detector="metric")
        return CaseResult(
            index=index, inputs=inputs, outputs=outputs, failure=failure, score=verdict.score, feedback=verdict.feedback
        )

    def format_trajectory(self, results: list[CaseResult]) -> str:
        blocks = []
        for number, result in enumerate(results, start=1):
            status = "FAILED" if result.failure else "passed"
            lines = [f"Case {number} ({status})"]
            lines += [f"  Input {key}: {clip(value, 500)}" for key, value in result.inputs.items()]
            lines += [f"  Output {key}: {clip(value, 500)}" for key, value in result.outputs.items()]
            if result.score is not None:
                lines.append(f"  Score: {result.score:g}")
            if result.feedback:
                lines.append(f"  Feedback: {clip(result.feedback, 600)}")
            elif result.failure is not None:
                lines.append(f"  Problem: {result.failure.category} ({result.failure.reason})")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def validate_candidate(self, predictor: str, text: str) -> str | None:
        if len(text.split()) < 3:
            return "the proposed instructions are too short"
        return None


def _is_lm_transport_error(exc: BaseException) -> bool:
    """Errors of the LM service itself (timeouts, connection, auth) fail the trial, not the case."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TimeoutError", "ConnectionError", "APIConnectionError", "AuthenticationError",
                         "RateLimitError", "ServiceUnavailableError", "APITimeoutError", "ProviderError"})
