"""Optimizing one structured prompt from examples and a metric, with a held-out before/after."""

from autoevol_dspy.prompt.metrics import (
    METRIC_NAMES,
    Contains,
    ExactMatch,
    RegexMatch,
    RubricJudge,
    metric_from_name,
)
from autoevol_dspy.prompt.optimize import (
    DEFAULT_HOLDOUT_SHARE,
    PROMPT_DEFAULTS,
    PromptProgram,
    PromptResult,
    load_examples,
    load_prompt,
    optimize_prompt,
    prompt_examples,
    prompt_signature,
    split_holdout,
    write_prompt_outputs,
)

__all__ = [
    "DEFAULT_HOLDOUT_SHARE",
    "METRIC_NAMES",
    "PROMPT_DEFAULTS",
    "Contains",
    "ExactMatch",
    "PromptProgram",
    "PromptResult",
    "RegexMatch",
    "RubricJudge",
    "load_examples",
    "load_prompt",
    "metric_from_name",
    "optimize_prompt",
    "prompt_examples",
    "prompt_signature",
    "split_holdout",
    "write_prompt_outputs",
]
