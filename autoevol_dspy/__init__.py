"""autoevol-dspy: Auto Evol-Instruct (arXiv 2406.00770) for DSPy.

An LLM optimizes instructions from their failures: the evolving method that makes
instruction data harder (:class:`EvolInstruct`), the instructions of any DSPy program,
or one structured prompt.
"""

from .errors import AutoEvolError, ConfigurationError, DataError, LMSpecError, RunConflictError
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
    "UsageReport",
    "parse_rewritten_instruction",
]
