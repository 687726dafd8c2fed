"""autoevol-dspy: Auto Evol-Instruct (arXiv 2406.00770) for DSPy.

An LLM optimizes instructions from their failures: the evolving method that makes
instruction data harder (:class:`EvolInstruct`), the instructions of any DSPy program,
or one structured prompt.
"""

import os as _os

# Nothing reaches the network unless an LM spec points there: DSPy (and LiteLLM) would
# otherwise download LiteLLM's model price map from GitHub on first use; the copy they
# ship is used instead. Set before any LM is made, so it holds for the CLI and the API.
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from autoevol_dspy.data import (
    EvolutionSummary,
    LoadedInstructions,
    evolve_dataset,
    load_evolved,
    load_instructions,
    save_evolved,
    scan_instructions,
)
from autoevol_dspy.errors import (
    AutoEvolError,
    ConfigurationError,
    DataError,
    LMSpecError,
    RunConflictError,
)
from autoevol_dspy.data.export import export_evolved, training_dataset
from autoevol_dspy.evolution import (
    INITIAL_METHOD,
    AnsweredInstead,
    EvolInstruct,
    EvolInstructRules,
    EvolutionCase,
    Failure,
    FailureDetector,
    LLMJudge,
    LostKeyContent,
    NearCopy,
    PaperResponseRules,
    parse_rewritten_instruction,
)
from autoevol_dspy.evolution.unit import Evolver
from autoevol_dspy.lm import make_lm
from autoevol_dspy.lm.usage import UsageReport
from autoevol_dspy.prompt import PromptResult, optimize_prompt
from autoevol_dspy.search import (
    AutoEvolInstruct,
    RunResult,
    SharedStudy,
    StepOutcome,
    StepPlan,
    TrialRecord,
    WorkerSummary,
    run_worker,
)
from autoevol_dspy.search.events import SearchCallback
from autoevol_dspy.search.holdout import HoldoutComparison
from autoevol_dspy.search.strategies import (
    AnyOf,
    EpochBatches,
    ExactEarlyStop,
    FullEvaluation,
    LMCallBudget,
    MarginAcceptance,
    MaxSteps,
    NoImprovement,
    PairedTestAcceptance,
    PaperProtocol,
    PredictorChoice,
    ProposalGuard,
    RandomBatches,
    RoundRobin,
    StrictImprovement,
)
from autoevol_dspy.tasks import EvolutionTask, ProgramTask

__version__ = "0.1.0"

__all__ = [
    "INITIAL_METHOD",
    "AnsweredInstead",
    "AnyOf",
    "AutoEvolError",
    "AutoEvolInstruct",
    "ConfigurationError",
    "DataError",
    "EpochBatches",
    "EvolInstruct",
    "EvolInstructRules",
    "EvolutionCase",
    "EvolutionSummary",
    "EvolutionTask",
    "Evolver",
    "ExactEarlyStop",
    "Failure",
    "FailureDetector",
    "FullEvaluation",
    "HoldoutComparison",
    "LLMJudge",
    "LMCallBudget",
    "LMSpecError",
    "LoadedInstructions",
    "LostKeyContent",
    "MarginAcceptance",
    "MaxSteps",
    "NearCopy",
    "NoImprovement",
    "PairedTestAcceptance",
    "PaperProtocol",
    "PaperResponseRules",
    "PredictorChoice",
    "ProgramTask",
    "PromptResult",
    "ProposalGuard",
    "RandomBatches",
    "RoundRobin",
    "RunConflictError",
    "RunResult",
    "SearchCallback",
    "SharedStudy",
    "StepOutcome",
    "StepPlan",
    "StrictImprovement",
    "TrialRecord",
    "UsageReport",
    "WorkerSummary",
    "evolve_dataset",
    "export_evolved",
    "load_evolved",
    "load_instructions",
    "make_lm",
    "optimize_prompt",
    "parse_rewritten_instruction",
    "run_worker",
    "save_evolved",
    "scan_instructions",
    "training_dataset",
]
