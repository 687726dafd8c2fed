"""The search loop: trajectories, proposals, trials, selection, and its strategies."""

from autoevol_dspy.search.records import RunResult, StepOutcome, StepPlan, TrialRecord
from autoevol_dspy.search.queue import SharedStudy
from autoevol_dspy.search.worker import WorkerSummary, run_worker

__all__ = ["RunResult", "SharedStudy", "StepOutcome", "StepPlan", "TrialRecord", "WorkerSummary", "run_worker"]
