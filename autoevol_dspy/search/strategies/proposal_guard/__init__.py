"""Validity checks for proposed instructions, run before a proposal becomes a candidate.

A weak optimizer LM often returns text no person would ship as instructions: the answer
to one training case, a copied question, the name of the output field, or a text about
something else. Evaluating such a candidate costs a dev-set pass and, on a small noisy
dev set, it can even win. Each :class:`ProposalCheck` spots one kind of garbage from the
texts alone (:class:`JudgeCheck` asks an LM, off by default); :class:`ProposalGuard` runs
them in order, cheapest first, and returns the first :class:`Rejection`.

One module per check family: :mod:`.length`, :mod:`.repetition`, :mod:`.not_instruction`,
:mod:`.prompt_format`, :mod:`.task`, :mod:`.trajectory`, :mod:`.judge`; what they share in :mod:`.base` and
:mod:`.words`; :mod:`.guard` runs them.
"""

from __future__ import annotations

from autoevol_dspy.search.strategies.proposal_guard.base import ProposalCheck, ProposalContext, Rejection, retry_feedback
from autoevol_dspy.search.strategies.proposal_guard.guard import ProposalGuard, default_checks
from autoevol_dspy.search.strategies.proposal_guard.judge import JudgeCheck, JudgeInstructions
from autoevol_dspy.search.strategies.proposal_guard.length import LengthOutOfRange
from autoevol_dspy.search.strategies.proposal_guard.not_instruction import NotAnInstruction
from autoevol_dspy.search.strategies.proposal_guard.prompt_format import NamesPromptFormat
from autoevol_dspy.search.strategies.proposal_guard.repetition import RepeatsItself, RestatesInstructions
from autoevol_dspy.search.strategies.proposal_guard.task import DropsTask, signature_terms
from autoevol_dspy.search.strategies.proposal_guard.trajectory import CopiesTrajectory

__all__ = [
    "CopiesTrajectory",
    "DropsTask",
    "JudgeCheck",
    "JudgeInstructions",
    "LengthOutOfRange",
    "NamesPromptFormat",
    "NotAnInstruction",
    "ProposalCheck",
    "ProposalContext",
    "ProposalGuard",
    "Rejection",
    "RepeatsItself",
    "RestatesInstructions",
    "default_checks",
    "retry_feedback",
    "signature_terms",
]
