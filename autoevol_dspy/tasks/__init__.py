"""What the loop optimizes: an evolving method on instruction data, or any DSPy program with a metric."""

from autoevol_dspy.tasks.base import (
    CaseResult,
    OptimizationTask,
    apply_instructions,
    get_instructions,
)
from autoevol_dspy.tasks.evolution import EvolutionTask
from autoevol_dspy.tasks.program import ProgramTask

__all__ = ["CaseResult", "EvolutionTask", "OptimizationTask", "ProgramTask", "apply_instructions", "get_instructions"]
