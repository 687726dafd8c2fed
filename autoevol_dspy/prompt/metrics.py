"""Built-in metrics for optimizing one prompt, selectable by name on the command line.

Names: ``exact`` (normalized exact match with the expected output), ``contains`` (the
output contains the expected text), ``regex:PATTERN`` (the output matches PATTERN) and
``judge:RUBRIC`` (an LM checks the output against a rubric, given as a file path or as
text). Every metric returns ``dspy.Prediction(score=..., feedback=...)``: the feedback of a
failed case tells the optimizer LM what went wrong.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Any

import dspy
import regex

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.lm.context import use_lm
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.prompt.settings import METRIC_NAMES
from autoevol_dspy.text import clip

__all__ = [
    "Contains",
    "ExactMatch",
    "OutputMetric",
    "RegexMatch",
    "RubricJudge",
    "metric_from_name",
    "normalize",
]

_EDGE_PUNCTUATION = " \t\n\"'`.,;:!?"


def normalize(value: Any) -> str:
    """Text for comparisons: NFKC, case-folded, whitespace collapsed, edge punctuation and quotes stripped."""
    text = unicodedata.normalize("NFKC", "" if value is None else str(value)).casefold()
    return " ".join(text.split()).strip(_EDGE_PUNCTUATION)


def _verdict(passed: bool, feedback: str) -> dspy.Prediction:
    return dspy.Prediction(score=1.0 if passed else 0.0, feedback=None if passed else feedback)


class OutputMetric:
    """A metric on one output field; ``needs_expected`` says whether examples must hold that field."""

    needs_expected = True

    def __init__(self, *, output_field: str, name: str) -> None:
        self.output_field = output_field
        self.__name__ = name  # recorded in the run's settings, so a resumed run must use the same metric

    def output(self, prediction: Any) -> str:
        value = prediction.get(self.output_field) if hasattr(prediction, "get") else None
        return "" if value is None else str(value)

    def expected(self, example: dspy.Example) -> str:
        value = example.get(self.output_field)
        if value is None:
            raise ValueError(f"the example has no {self.output_field!r} to compare with")
        return str(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__name__!r})"


class ExactMatch(OutputMetric):
    """Passes when the output equals the expected text after normalization (case, spaces, edge punctuation)."""

    def __init__(self, *, output_field: str) -> None:
        super().__init__(output_field=output_field, name="exact")

    def __call__(self, example: dspy.Example, prediction: Any, trace: Any = None) -> dspy.Prediction:
        expected, output = self.expected(example), self.output(prediction)
        want, got = normalize(expected), normalize(output)
        feedback = f"expected {clip(expected, 200)!r} exactly, got {clip(output, 200)!r}"
        if want and want in got:  # the right answer, wrapped in other words: say what a right output looks like
            feedback += f"; the {self.output_field.replace('_', ' ')} must be the answer alone, with no other words"
        return _verdict(got == want, feedback)


class Contains(OutputMetric):
    """Passes when the normalized output contains the normalized expected text."""

    def __init__(self, *, output_field: str) -> None:
        super().__init__(output_field=output_field, name="contains")

    def __call__(self, example: dspy.Example, prediction: Any, trace: Any = None) -> dspy.Prediction:
        expected, output = self.expected(example), self.output(prediction)
        return _verdict(normalize(expected) in normalize(output),
                        f"the output should contain {clip(expected, 200)!r} but was {clip(output, 200)!r}")


class RegexMatch(OutputMetric):
    """Passes when the output (stripped) matches PATTERN anywhere (anchor it with ^ and $ for a whole match).

    The user's pattern may backtrack without end on some output: a search that runs past
    ``timeout`` seconds fails the case with that reason instead of holding the run.
    """

    needs_expected = False

    def __init__(self, pattern: str, *, output_field: str, timeout: float = 5.0) -> None:
        if not pattern:
            raise ConfigurationError("regex: needs a pattern, e.g. regex:^(yes|no)$")
        self.timeout = timeout
        try:
            self.pattern = regex.compile(pattern, regex.DOTALL)
        except regex.error as exc:
            raise ConfigurationError(f"invalid regex {pattern!r}: {exc}") from None
        super().__init__(output_field=output_field, name=f"regex:{pattern}")

    def __call__(self, example: dspy.Example, prediction: Any, trace: Any = None) -> dspy.Prediction:
        output = self.output(prediction).strip()
        try:
            found = self.pattern.search(output, timeout=self.timeout)
        except TimeoutError:
            return _verdict(False, f"the required pattern {self.pattern.pattern!r} ran past {self.timeout:g} s "
                                   f"on the output {clip(output, 200)!r}")
        return _verdict(found is not None,
                        f"the output {clip(output, 200)!r} does not match the required pattern "
                        f"{self.pattern.pattern!r}")


class JudgeResponse(dspy.Signature):
    """Judge whether a response meets every point of the rubric.

    Be strict: a response that misses any point of the rubric fails. If a reference answer
    is given, the response must agree with it in substance. Explain in one or two sentences
    what is wrong or missing, so the prompt that produced the response can be improved.
    """

    rubric: str = dspy.InputField(desc="the points a good response must meet")
    request: str = dspy.InputField(desc="the inputs the response was written for")
    reference: str = dspy.InputField(desc="a reference answer, or 'none'")
    candidate: str = dspy.InputField(desc="the response to judge")
    meets_rubric: bool = dspy.OutputField(desc="true only if every point of the rubric is met")
    feedback: str = dspy.OutputField(desc="what is wrong or missing; 'none' if nothing")


class RubricJudge(OutputMetric):
    """An LM judges the output against a rubric; the expected output, when present, is its reference."""

    needs_expected = False

    def __init__(self, rubric: str, *, output_field: str, lm: dspy.LM | None = None) -> None:
        if not rubric.strip():
            raise ConfigurationError("judge: needs a rubric, as a file path or as text")
        digest = hashlib.sha256(rubric.encode("utf-8")).hexdigest()[:12]
        super().__init__(output_field=output_field, name=f"judge:{digest}")
        self.rubric = rubric.strip()
        self.lm = lm
        self.judge = dspy.Predict(JudgeResponse)

    def __call__(self, example: dspy.Example, prediction: Any, trace: Any = None) -> dspy.Prediction:
        request = "\n".join(f"{key}: {value}" for key, value in example.inputs().items())
        reference = example.get(self.output_field)
        with use_lm(self.lm), lm_role("judge"):
            verdict = self.judge(rubric=self.rubric, request=request, candidate=self.output(prediction),
                                 reference="none" if reference is None else str(reference))
        feedback = str(verdict.feedback or "").strip() or "the response does not meet the rubric"
        return _verdict(bool(verdict.meets_rubric), f"judge: {clip(feedback, 400)}")


def _rubric_text(source: str) -> str:
    """The rubric from a file when ``source`` names one, else ``source`` itself."""
    path = Path(source).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # a long rubric text is not a valid path
        is_file = False
    return path.read_text(encoding="utf-8") if is_file else source


def metric_from_name(name: str, *, output_field: str, judge_lm: dspy.LM | None = None) -> OutputMetric:
    """The built-in metric called ``name`` on ``output_field``; a one-line error for unknown names."""
    kind, colon, argument = (name or "").strip().partition(":")
    if kind == "exact" and not colon:
        return ExactMatch(output_field=output_field)
    if kind == "contains" and not colon:
        return Contains(output_field=output_field)
    if kind == "regex" and colon:
        return RegexMatch(argument, output_field=output_field)
    if kind == "judge" and colon:
        return RubricJudge(_rubric_text(argument), output_field=output_field, lm=judge_lm)
    raise ConfigurationError(f"unknown metric {name!r}; accepted: {METRIC_NAMES}")
