"""An LM judges whether a proposal is usable instructions (off by default: it costs a call)."""

from __future__ import annotations

from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.lm.context import use_lm
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection
from autoevol_dspy.text import clip


class JudgeInstructions(dspy.Signature):
    """Decide whether a proposed text is usable instructions for the same task as the current instructions.

    Usable instructions tell a model how to do the task in general. Not usable: an answer to
    one case, a question or case text, a placeholder, or instructions for a different task.
    """

    current_instructions: str = dspy.InputField()
    proposed_instructions: str = dspy.InputField()
    usable: bool = dspy.OutputField(desc="true only if a person could ship the proposal as the instructions")
    reason: str = dspy.OutputField(desc="one short sentence")


class JudgeCheck:
    """Asks an LM whether the proposal is usable instructions for the task; costs a call, so it is off by default."""

    def __init__(self, *, lm: dspy.LM | None = None) -> None:
        self.lm = lm
        self.judge = dspy.Predict(JudgeInstructions)

    def check(self, proposal: ProposalContext) -> Rejection | None:
        try:
            with use_lm(self.lm), lm_role("judge"), watched_reply():
                verdict = self.judge(current_instructions=proposal.incumbent, proposed_instructions=proposal.text)
        except AdapterParseError:
            return None  # a judge that cannot answer must not block the proposal
        if verdict.usable:
            return None
        return Rejection(category="judged_unusable", check="JudgeCheck",
                         reason=f"the judge found it unusable: {clip(verdict.reason, 200)}")

    def describe(self) -> dict[str, Any]:
        return {"type": "JudgeCheck", "lm": getattr(self.lm, "model", None)}
