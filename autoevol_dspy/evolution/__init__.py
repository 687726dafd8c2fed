"""The evolving method and how one evolution is judged."""

from autoevol_dspy.evolution.detectors import (
    AnsweredInstead,
    CopiedExample,
    EvolInstructRules,
    EvolutionCase,
    Failure,
    FailureDetector,
    LLMJudge,
    LostKeyContent,
    NearCopy,
    PaperResponseRules,
    Repetition,
    default_detectors,
)
from autoevol_dspy.evolution.method import INITIAL_METHOD, EvolInstruct
from autoevol_dspy.evolution.parsing import parse_rewritten_instruction

__all__ = [
    "INITIAL_METHOD",
    "AnsweredInstead",
    "CopiedExample",
    "EvolInstruct",
    "EvolInstructRules",
    "EvolutionCase",
    "Failure",
    "FailureDetector",
    "LLMJudge",
    "LostKeyContent",
    "NearCopy",
    "PaperResponseRules",
    "Repetition",
    "default_detectors",
    "parse_rewritten_instruction",
]
