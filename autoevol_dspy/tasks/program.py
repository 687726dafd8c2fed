"""Any DSPy program as the optimized object: a failure is a run the user's metric rejects."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dspy

from autoevol_dspy.data.splits import as_examples
from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.evolution.detectors import Failure
from autoevol_dspy.lm.context import use_lm
from autoevol_dspy.lm.errors import is_lm_error
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.tasks.base import (
    CaseResult,
    apply_instructions,
    get_instructions,
    lm_name,
    lm_sampling,
)
from autoevol_dspy.tasks.metrics import check_metric, judge
from autoevol_dspy.text import clip, short_error

__all__ = ["ProgramTask", "is_async_only", "run_coroutine"]

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


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to its end from synchronous code, also when this thread already runs an event loop
    (``compile()`` called inside ``asyncio.run(main())``): then in a thread of its own, with DSPy's context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoevol-async") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


def is_async_only(program: dspy.Module) -> bool:
    """Whether ``program`` defines ``aforward`` but no ``forward`` (it runs with ``acall``)."""
    return not callable(getattr(type(program), "forward", None)) and callable(getattr(type(program), "aforward", None))


class ProgramTask:
    """Run the program on an example's inputs and let the metric judge the run.

    A bool metric passes or fails a case; a numeric one scores it and the failure rate is
    one minus the mean score (``threshold`` turns scores into pass/fail instead). ``lm``
    runs the program (default: the run's LM; LMs set on predictors win, as in DSPy).
    """

    analysis_guidance = _ANALYSIS_GUIDANCE
    rewrite_guidance = _REWRITE_GUIDANCE

    def __init__(self, *, metric: Callable, threshold: float | None = None, lm: dspy.LM | None = None) -> None:
        self.metric = metric
        self.arity = check_metric(metric)
        self.threshold = threshold
        self.lm = lm

    def describe(self) -> dict[str, Any]:
        name = getattr(self.metric, "__name__", type(self.metric).__name__)
        return {"type": "ProgramTask", "metric": name, "threshold": self.threshold, "lm": lm_name(self.lm),
                "lm_sampling": lm_sampling(self.lm)}

    def examples(self, items: Sequence[Any], *, name: str) -> list[dspy.Example]:
        return as_examples(items, input_field=None, name=name)

    def check(self, student: dspy.Module, *, default_lm: dspy.LM | None) -> None:
        get_instructions(student)
        if not callable(getattr(type(student), "forward", None)) and not is_async_only(student):
            raise ConfigurationError(f"{type(student).__name__} has neither forward() nor aforward(): nothing to run")
        own = all(getattr(predictor, "lm", None) is not None for _, predictor in student.named_predictors())
        if self.lm is None and default_lm is None and not own:
            raise ConfigurationError("no LM to run the program with: pass lm= to AutoEvolInstruct or to the "
                                     "ProgramTask, set one on each predictor, or call dspy.configure(lm=...)")

    def program_for(self, student: dspy.Module, instructions: dict[str, str]) -> dspy.Module:
        return apply_instructions(student, instructions)

    def _run(self, program: dspy.Module, inputs: dict[str, Any]) -> Any:
        if is_async_only(program):
            return run_coroutine(program.acall(**inputs))
        return program(**inputs)

    def run_case(self, program: dspy.Module, example: dspy.Example, index: int) -> CaseResult:
        inputs = {key: _jsonable(value) for key, value in example.inputs().items()}
        try:
            with lm_role("program"), use_lm(self.lm), watched_reply():
                prediction = self._run(program, dict(example.inputs()))
        except Exception as exc:  # noqa: BLE001 - a program that crashes on a case fails that case
            if is_lm_error(exc):
                raise
            failure = Failure(category="program_error", reason=short_error(exc), detector="program")
            return CaseResult(index=index, inputs=inputs, outputs={}, failure=failure)
        outputs = {key: _jsonable(value) for key, value in dict(prediction.items()).items()}
        try:
            verdict = judge(self.metric, self.arity, example, prediction, threshold=self.threshold)
        except Exception as exc:  # noqa: BLE001 - the metric's exceptions are failures with their reason
            if is_lm_error(exc):
                raise  # the metric's own LM (a judge) failed: an outage, not a verdict
            failure = Failure(category="metric_error", reason=short_error(exc), detector="metric")
            return CaseResult(index=index, inputs=inputs, outputs=outputs, failure=failure)
        failure = None
        if not verdict.passed:
            reason = verdict.feedback or f"the metric scored {verdict.score:g}"
            category = "metric_rejected" if verdict.loss >= 1.0 else "low_score"
            failure = Failure(category=category, reason=clip(reason, 500), detector="metric")
        return CaseResult(index=index, inputs=inputs, outputs=outputs, failure=failure, loss=verdict.loss,
                          score=verdict.score, feedback=verdict.feedback)

    def format_trajectory(self, results: list[CaseResult]) -> str:
        blocks = []
        for number, result in enumerate(results, start=1):
            status = "passed" if result.failure is None else ("FAILED" if result.case_loss >= 1.0 else "imperfect")
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
