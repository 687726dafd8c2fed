"""Optimizing one structured prompt (role, skills, rules, output format) from examples and a metric.

The prompt becomes the instructions of a one-predictor program whose input and output
fields are named by the caller; AutoEvolInstruct rewrites it from the failures the metric
finds. Some examples are held out first (deterministically, by seed) and never seen by the
optimization, so the failure rates reported before and after are an honest comparison.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dspy
from pydantic import BaseModel, Field

from autoevol_dspy.data.io import read_records
from autoevol_dspy.data.splits import split_holdout
from autoevol_dspy.errors import ConfigurationError, DataError
from autoevol_dspy.files import atomic_write_text, read_text
from autoevol_dspy.lm.usage import UsageReport
from autoevol_dspy.prompt.metrics import OutputMetric, RubricJudge, metric_from_name
from autoevol_dspy.prompt.settings import DEFAULT_HOLDOUT_SHARE, PROMPT_DEFAULTS
from autoevol_dspy.search.records import RunResult
from autoevol_dspy.search.strategies import stop_when
from autoevol_dspy.teleprompter import AutoEvolInstruct
from autoevol_dspy.tasks.program import ProgramTask

__all__ = [
    "PromptProgram",
    "PromptResult",
    "load_examples",
    "load_prompt",
    "optimize_prompt",
    "prompt_examples",
    "prompt_signature",
    "split_holdout",
    "write_prompt_outputs",
]

logger = logging.getLogger(__name__)



# The prompt as a program -----------------------------------------------------------------------------


def _check_field_names(input_fields: Sequence[str], output_field: str) -> tuple[list[str], str]:
    """Field names as DSPy needs them: identifiers, at least one input, the output not among the inputs."""
    inputs = list(input_fields)
    if isinstance(input_fields, str) or not inputs:
        raise ConfigurationError("input_fields must be a list of one or more field names, e.g. ['question']")
    names = [*inputs, output_field]
    bad = [name for name in names if not isinstance(name, str) or not name.isidentifier() or name.startswith("_")]
    if bad:
        raise ConfigurationError(f"field names must be Python identifiers (letters, digits, _): {bad!r}")
    if len(set(names)) != len(names):
        raise ConfigurationError(f"field names must differ from each other: inputs {inputs!r}, output {output_field!r}")
    return inputs, output_field


def prompt_signature(prompt: str, input_fields: Sequence[str], output_field: str) -> type[dspy.Signature]:
    """A signature whose instructions are the prompt text and whose fields are the given names (all text)."""
    inputs, output = _check_field_names(input_fields, output_field)
    fields: dict[str, tuple[type, Any]] = {name: (str, dspy.InputField()) for name in inputs}
    fields[output] = (str, dspy.OutputField())
    return dspy.make_signature(fields, instructions=prompt, signature_name="StructuredPrompt")


class PromptProgram(dspy.Module):
    """One prompt as a one-predictor DSPy program; its ``respond`` predictor holds the prompt as instructions."""

    def __init__(self, prompt: str, *, input_fields: Sequence[str], output_field: str) -> None:
        super().__init__()
        self.input_fields = list(input_fields)
        self.output_field = output_field
        self.respond = dspy.Predict(prompt_signature(prompt, input_fields, output_field))

    @property
    def prompt(self) -> str:
        """The current prompt text."""
        return self.respond.signature.instructions

    def forward(self, **inputs: Any) -> dspy.Prediction:
        return self.respond(**inputs)


# Loading ---------------------------------------------------------------------------------------------


def load_prompt(path: str | Path) -> str:
    """The prompt text of a plain-text or Markdown file, kept as written (surrounding blank lines dropped)."""
    file = Path(path)
    text = read_text(file, what="prompt file").strip()
    if not text:
        raise DataError(f"the prompt file {file} is empty: write the prompt (role, rules, output format) in it")
    return text


def load_examples(
    path: str | Path, *, input_fields: Sequence[str], output_field: str, require_output: bool = True
) -> list[dspy.Example]:
    """Examples from a JSONL, JSON, CSV or Parquet file, with the input fields marked; one-line errors for bad files."""
    file = Path(path)
    return prompt_examples(read_records(file), input_fields=input_fields, output_field=output_field,
                           require_output=require_output, source=str(file))


def _row_fields(row: Any, source: str, number: int) -> dict[str, Any]:
    if isinstance(row, dspy.Example):
        return dict(row.items())
    if isinstance(row, Mapping):
        return dict(row)
    raise DataError(f"{source} example {number} is a {type(row).__name__}, not an object with named fields")


def prompt_examples(
    rows: Sequence[Any],
    *,
    input_fields: Sequence[str],
    output_field: str,
    require_output: bool = True,
    source: str = "examples",
) -> list[dspy.Example]:
    """Dicts or Examples as Examples with ``input_fields`` marked; every one must hold the named fields."""
    inputs, output = _check_field_names(input_fields, output_field)
    if not rows:
        raise DataError(f"{source} holds no examples")
    required = [*inputs, output] if require_output else inputs
    examples = []
    for number, row in enumerate(rows, start=1):
        fields = _row_fields(row, source, number)
        missing = [name for name in required if fields.get(name) is None]
        if missing:
            present = ", ".join(sorted(fields)) or "none"
            raise DataError(f"{source} example {number} lacks the field(s) {', '.join(missing)} "
                            f"(fields present: {present}); name fields with the input and output options")
        examples.append(dspy.Example(**fields).with_inputs(*inputs))
    return examples


# The result ------------------------------------------------------------------------------------------


class PromptResult(BaseModel):
    """What ``optimize_prompt`` found: the improved prompt, held-out failure rates before and after, the run."""

    schema_version: int = 1
    prompt: str = Field(description="the improved prompt (the initial one when nothing beat it)")
    initial_prompt: str
    input_fields: list[str]
    output_field: str
    metric: str
    holdout_size: int
    holdout_failures_before: float
    holdout_failures_after: float
    holdout_failure_rate_before: float
    holdout_failure_rate_after: float
    holdout_usage: UsageReport = Field(default_factory=UsageReport)
    run: RunResult

    @property
    def changed(self) -> bool:
        """Whether the optimization replaced the initial prompt."""
        return self.prompt != self.initial_prompt

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "PromptResult":
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


# The whole job ---------------------------------------------------------------------------------------


def _check_sizes(total: int, holdout: int, settings: Mapping[str, Any]) -> None:
    """A clear message before any LM call when the examples cannot fill holdout, mini-batch and dev set."""
    batch, dev = settings["batch_sampler"], settings["dev_size"]
    batch = getattr(batch, "size", batch)  # a BatchSampler or a size
    rest = total - holdout
    if isinstance(batch, int) and isinstance(dev, int) and rest < batch + dev:
        raise DataError(f"{total} examples with {holdout} held out leave {rest}, but a mini-batch of {batch} "
                        f"plus a dev set of {dev} needs {batch + dev}; "
                        "add examples or lower holdout, batch_size or dev_size")


def _resolve_metric(metric: Callable | str, output_field: str, judge_lm: dspy.LM | None) -> Callable:
    """A metric name becomes a built-in metric; a judge without its own LM uses ``judge_lm``."""
    if isinstance(metric, str):
        return metric_from_name(metric, output_field=output_field, judge_lm=judge_lm)
    if isinstance(metric, RubricJudge) and metric.lm is None:
        metric.lm = judge_lm
    return metric


def _metric_name(metric: Callable) -> str:
    return getattr(metric, "__name__", type(metric).__name__)


def optimize_prompt(
    text: str,
    examples: Sequence[Any],
    metric: Callable | str,
    *,
    input_fields: Sequence[str],
    output_field: str,
    holdout: int | float = DEFAULT_HOLDOUT_SHARE,
    lm: dspy.LM | None = None,
    optimizer_lm: dspy.LM | None = None,
    run_dir: str | Path | None = None,
    **optimizer_settings: Any,
) -> PromptResult:
    """Improve the prompt ``text`` with AutoEvolInstruct and report held-out failure rates before and after.

    ``examples`` are dicts or ``dspy.Example`` objects holding the input fields and the
    output field; ``metric`` is a DSPy metric or a built-in name (see :mod:`autoevol_dspy.prompt.metrics`).
    ``holdout`` is a count or a share of the examples kept out of the optimization.
    ``lm`` answers with the prompt (the configured LM when None); ``optimizer_lm`` analyses
    and rewrites it and judges for ``judge:`` metrics (default: ``lm``). Other keyword
    arguments go to :class:`AutoEvolInstruct` over :data:`PROMPT_DEFAULTS`. With
    ``run_dir``, the run's study and result.json go there, with prompt.txt (the improved
    prompt) and prompt_result.json (this result); rerunning continues the same study.
    """
    if not isinstance(text, str) or not text.strip():
        raise DataError("the prompt is empty: give the prompt text (role, rules, output format)")
    text = text.strip()
    optimizer_lm = optimizer_lm or lm
    metric = _resolve_metric(metric, output_field, optimizer_lm)
    needs_expected = getattr(metric, "needs_expected", True) if isinstance(metric, OutputMetric) else True
    items = prompt_examples(examples, input_fields=input_fields, output_field=output_field,
                            require_output=needs_expected)
    settings = {**PROMPT_DEFAULTS, **optimizer_settings}
    if "batch_size" in settings:
        settings["batch_sampler"] = settings.pop("batch_size")
    if "patience" in settings or "max_lm_calls" in settings:
        settings["stopper"] = stop_when(patience=settings.pop("patience", 1), max_lm_calls=settings.pop("max_lm_calls", None))
    seed, threshold = settings.get("seed", 0), settings.pop("metric_threshold", None)
    if holdout == 0 and not isinstance(holdout, bool):
        raise ConfigurationError("holdout must hold at least 1 example: the before/after comparison is the point")
    optimize_on, held_out = split_holdout(items, holdout=holdout, seed=seed)
    _check_sizes(len(items), len(held_out), settings)
    student = PromptProgram(text, input_fields=input_fields, output_field=output_field)
    task = ProgramTask(metric=metric, threshold=threshold, lm=lm)
    optimizer = AutoEvolInstruct(task=task, lm=lm, optimizer_lm=optimizer_lm, run_dir=run_dir, **settings)

    compiled = optimizer.compile(student, trainset=optimize_on, holdoutset=held_out)
    improved = compiled.respond.signature.instructions
    check = optimizer.result.holdout
    before, after = check.initial.failures, check.best.failures

    result = PromptResult(
        prompt=improved,
        initial_prompt=text,
        input_fields=list(input_fields),
        output_field=output_field,
        metric=_metric_name(metric),
        holdout_size=len(held_out),
        holdout_failures_before=before,
        holdout_failures_after=after,
        holdout_failure_rate_before=check.initial.failure_rate,
        holdout_failure_rate_after=check.best.failure_rate,
        holdout_usage=check.initial.usage + (check.best.usage if check.best is not check.initial else UsageReport()),
        run=optimizer.result,
    )
    if run_dir is not None:
        write_prompt_outputs(result, run_dir)
    return result


def write_prompt_outputs(result: PromptResult, run_dir: str | Path) -> None:
    """Write RUN_DIR/prompt.txt (the improved prompt) and RUN_DIR/prompt_result.json (the whole result)."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "prompt.txt", result.prompt + "\n")
    result.save(out / "prompt_result.json")
