"""The search rules as small objects: batch sampling, evaluation, acceptance, stopping, predictor choice,
where proposals come from (the LM sources, ``LMRewrite`` and ``LMAmend``, are in :mod:`autoevol_dspy.search.lm_sources`).

Each rule is a Protocol with a few classes; every class can ``describe()`` its settings,
which a resumed run compares with the study's.
"""

from autoevol_dspy.search.strategies.acceptance import (
    AcceptanceCriterion,
    MarginAcceptance,
    PairedTestAcceptance,
    StrictImprovement,
)
from autoevol_dspy.search.strategies.batch import (
    BatchSampler,
    EpochBatches,
    RandomBatches,
)
from autoevol_dspy.search.strategies.evaluation_policy import (
    EvaluationPolicy,
    ExactEarlyStop,
    FullEvaluation,
    PaperProtocol,
)
from autoevol_dspy.search.strategies.edit_library import EditLibrary
from autoevol_dspy.search.strategies.feedback_rules import FeedbackRules
from autoevol_dspy.search.strategies.predictor_choice import PredictorChoice, RoundRobin
from autoevol_dspy.search.strategies.proposal_guard import ProposalCheck, ProposalContext, ProposalGuard, Rejection
from autoevol_dspy.search.strategies.proposal_source import Draft, ProposalRequest, ProposalSource
from autoevol_dspy.search.strategies.stopping import (
    AnyOf,
    LMCallBudget,
    MaxSteps,
    NoImprovement,
    SearchState,
    Stopper,
    stop_when,
)

__all__ = [
    "AcceptanceCriterion",
    "AnyOf",
    "BatchSampler",
    "Draft",
    "EditLibrary",
    "EpochBatches",
    "EvaluationPolicy",
    "ExactEarlyStop",
    "FeedbackRules",
    "FullEvaluation",
    "LMCallBudget",
    "MarginAcceptance",
    "MaxSteps",
    "NoImprovement",
    "PairedTestAcceptance",
    "PaperProtocol",
    "PredictorChoice",
    "ProposalCheck",
    "ProposalContext",
    "ProposalGuard",
    "ProposalRequest",
    "ProposalSource",
    "RandomBatches",
    "Rejection",
    "RoundRobin",
    "SearchState",
    "StrictImprovement",
    "Stopper",
    "stop_when",
]
