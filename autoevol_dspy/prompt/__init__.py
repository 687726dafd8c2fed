"""Optimizing one structured prompt from examples and a metric, with a held-out before/after."""

from autoevol_dspy.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("Contains", "ExactMatch", "RegexMatch", "RubricJudge", "metric_from_name"),
                    "autoevol_dspy.prompt.metrics"),
    **dict.fromkeys(("PromptProgram", "PromptResult", "load_examples", "load_prompt", "optimize_prompt",
                     "prompt_examples", "prompt_signature", "split_holdout", "write_prompt_outputs"),
                    "autoevol_dspy.prompt.optimize"),
    **dict.fromkeys(("DEFAULT_HOLDOUT_SHARE", "METRIC_NAMES", "PROMPT_DEFAULTS"), "autoevol_dspy.prompt.settings"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(_EXPORTS)
