"""What ``optimize_prompt`` and ``autoevol prompt`` assume unless told: settings sized for tens of examples,
the metrics by name. Kept apart from the code that needs DSPy, so the command's ``--help`` shows them quickly."""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_HOLDOUT_SHARE", "METRIC_NAMES", "PROMPT_DEFAULTS"]

#: AutoEvolInstruct settings sized for a prompt with tens of examples; any of them can be overridden.
PROMPT_DEFAULTS: dict[str, Any] = {"num_candidates": 4, "batch_size": 5, "dev_size": 15, "max_steps": 5}
#: The share of the examples held out when ``holdout`` is not given.
DEFAULT_HOLDOUT_SHARE = 0.2
#: The metrics ``metric_from_name`` accepts.
METRIC_NAMES = "'exact', 'contains', 'regex:PATTERN' or 'judge:RUBRIC_FILE_OR_TEXT'"
