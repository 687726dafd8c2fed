"""Failure detectors for evolved instructions: small, swappable, each naming a category.

A detector looks at one :class:`EvolutionCase` (the parent instruction, the evolved
one, and the response LM's answer when it needs one) and returns a :class:`Failure` or
``None``. The evolution failure rate of a method is the share of dev cases for which
any detector reports a failure.

The texts come from models and seed files, so every pattern here matches in time linear
in its input (each part can match one way: atomic groups and possessive quantifiers of
the ``regex`` package, bounded repetition), and a case holds at most
:data:`~autoevol_dspy.text.MAX_CHECKED_CHARS` characters of each text.

One module per family: :mod:`.base` (the case, the failure, the protocol), :mod:`.rules` (the papers'
rules), :mod:`.answered`, :mod:`.copies`, :mod:`.key_content`, :mod:`.repetition`, :mod:`.judge`; the words
and request forms they share in :mod:`.words` and :mod:`.requests`.
"""

from __future__ import annotations

from autoevol_dspy.evolution.detectors.answered import AnsweredInstead
from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure, FailureDetector
from autoevol_dspy.evolution.detectors.copies import AsksNothingNew, CopiedExample, EchoesMethod, NearCopy
from autoevol_dspy.evolution.detectors.judge import CompareInstructions, LLMJudge
from autoevol_dspy.evolution.detectors.key_content import LostKeyContent
from autoevol_dspy.evolution.detectors.repetition import Repetition
from autoevol_dspy.evolution.detectors.rules import EvolInstructRules, PaperResponseRules

__all__ = [
    "AnsweredInstead",
    "AsksNothingNew",
    "CompareInstructions",
    "CopiedExample",
    "EchoesMethod",
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
]


def default_detectors() -> list[FailureDetector]:
    """Cheap rules on the evolved text first (they spare a response call), then the paper's rules on the response.

    A case counts under the first rule that flags it, so the later rules (repetition, a copied
    worked example) count only what the earlier ones let through.
    """
    return [EvolInstructRules(), AnsweredInstead(), NearCopy(), LostKeyContent(), Repetition(), CopiedExample(),
            EchoesMethod(), AsksNothingNew(), PaperResponseRules()]
