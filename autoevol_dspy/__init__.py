"""autoevol-dspy: Auto Evol-Instruct (arXiv 2406.00770) for DSPy.

An LLM optimizes instructions from their failures: the evolving method that makes
instruction data harder (:class:`EvolInstruct`), the instructions of any DSPy program,
or one structured prompt.
"""

from .data import EvolutionSummary, LoadedInstructions, evolve_dataset, load_evolved, load_instructions, save_evolved
from .errors import AutoEvolError, ConfigurationError, DataError, LMSpecError, RunConflictError
from .lm import make_lm
from .failures import EvolInstructRules, EvolutionCase, Failure, FailureDetector, LLMJudge, PaperResponseRules
from .method import INITIAL_METHOD, EvolInstruct
from .parsing import parse_rewritten_instruction
from .predictor_choice import PredictorChoice, RoundRobin
from .records import RunResult, StepOutcome, StepPlan, TrialRecord
from .teleprompter import AutoEvolInstruct
from .usage import UsageReport

__version__ = "0.1.0"

__all__ = [
    "INITIAL_METHOD",
    "AutoEvolError",
    "AutoEvolInstruct",
    "ConfigurationError",
    "DataError",
    "EvolInstruct",
    "EvolInstructRules",
    "EvolutionCase",
    "Failure",
    "FailureDetector",
    "LLMJudge",
    "LMSpecError",
    "PaperResponseRules",
    "PredictorChoice",
    "RoundRobin",
    "RunConflictError",
    "RunResult",
    "StepOutcome",
    "StepPlan",
    "TrialRecord",
    "EvolutionSummary",
    "LoadedInstructions",
    "UsageReport",
    "evolve_dataset",
    "load_evolved",
    "load_instructions",
    "make_lm",
    "parse_rewritten_instruction",
    "save_evolved",
]
