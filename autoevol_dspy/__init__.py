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

from autoevol_dspy.errors import (
    AutoEvolError,
    ConfigurationError,
    DataError,
    LMSpecError,
    LMUnavailableError,
    NothingUsableError,
    RunConflictError,
)
from autoevol_dspy.lazy import lazy_exports

__version__ = "0.1.0"

#: The public API by the module that defines it; imported on first use (``autoevol --version`` needs none of it).
_EXPORTS = {name: module for module, names in {
    "autoevol_dspy.data.evolve": ("EvolutionSummary", "evolve_dataset"),
    "autoevol_dspy.data.export": ("export_evolved", "training_dataset"),
    "autoevol_dspy.data.io": ("load_evolved", "save_evolved"),
    "autoevol_dspy.data.seed_file": ("scan_instructions",),
    "autoevol_dspy.data.seeds": ("LoadedInstructions", "load_instructions"),
    "autoevol_dspy.evolution.detectors": ("AnsweredInstead", "EvolInstructRules", "EvolutionCase", "Failure",
                                          "FailureDetector", "LLMJudge", "LostKeyContent", "NearCopy",
                                          "PaperResponseRules"),
    "autoevol_dspy.evolution.method": ("INITIAL_METHOD", "EvolInstruct"),
    "autoevol_dspy.evolution.parsing": ("parse_rewritten_instruction",),
    "autoevol_dspy.evolution.unit": ("Evolver",),
    "autoevol_dspy.lm.spec": ("make_lm",),
    "autoevol_dspy.lm.usage": ("UsageReport",),
    "autoevol_dspy.prompt.optimize": ("PromptResult", "optimize_prompt"),
    "autoevol_dspy.search.events": ("SearchCallback",),
    "autoevol_dspy.search.holdout": ("HoldoutComparison",),
    "autoevol_dspy.search.queue": ("SharedStudy",),
    "autoevol_dspy.search.records": ("RunResult", "StepOutcome", "StepPlan", "TrialRecord"),
    "autoevol_dspy.search.lm_sources": ("LMAmend", "LMRewrite"),
    "autoevol_dspy.search.strategies": ("AnyOf", "EditLibrary", "EpochBatches", "ExactEarlyStop", "FeedbackRules",
                                        "FullEvaluation", "LMCallBudget", "MarginAcceptance", "MaxSteps",
                                        "NoImprovement", "PairedTestAcceptance", "PaperProtocol", "PredictorChoice",
                                        "ProposalGuard", "ProposalSource", "RandomBatches", "RoundRobin",
                                        "StrictImprovement"),
    "autoevol_dspy.search.worker": ("WorkerSummary", "run_worker"),
    "autoevol_dspy.tasks.evolution": ("EvolutionTask",),
    "autoevol_dspy.teleprompter": ("AutoEvolInstruct",),
    "autoevol_dspy.tasks.program": ("ProgramTask",),
}.items() for name in names}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = sorted(["AutoEvolError", "ConfigurationError", "DataError", "LMSpecError", "LMUnavailableError",
                  "NothingUsableError", "RunConflictError", *_EXPORTS])
