"""The search loop: trajectories, proposals, trials, selection, and its strategies."""

from autoevol_dspy.search.records import RunResult, StepOutcome, StepPlan, TrialRecord
from autoevol_dspy.search.teleprompter import AutoEvolInstruct

__all__ = ["AutoEvolInstruct", "RunResult", "StepOutcome", "StepPlan", "TrialRecord"]
