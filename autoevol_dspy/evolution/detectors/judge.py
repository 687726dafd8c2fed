"""An LM judges whether an evolution gained information over its parent."""

from __future__ import annotations

from typing import Literal

import dspy
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure
from autoevol_dspy.lm.context import adapter_context, use_lm
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role


class CompareInstructions(dspy.Signature):
    """Decide whether two instructions ask for the same thing with the same constraints, depth and breadth."""

    first: str = dspy.InputField(desc="the original instruction")
    second: str = dspy.InputField(desc="the rewritten instruction")
    verdict: Literal["equal", "not equal"] = dspy.OutputField()


class LLMJudge:
    """An LM judges whether the evolution gained information over its parent (off by default: it costs a call)."""

    name = "llm_judge"
    needs_response = False

    def __init__(self, *, lm: dspy.LM | None = None) -> None:
        self.lm = lm
        self.compare = dspy.Predict(CompareInstructions)

    def describe(self) -> dict:
        return {"type": self.name, "lm": getattr(self.lm, "model", None)}

    def detect(self, case: EvolutionCase) -> Failure | None:
        try:
            with lm_role("judge"), use_lm(self.lm), adapter_context(None), watched_reply():
                verdict = self.compare(first=case.instruction, second=case.evolved).verdict
        except AdapterParseError:
            return None  # a judge that cannot answer does not fail the evolution
        if verdict == "equal":
            return Failure(
                category="no_information_gain",
                reason="the judge found the evolved instruction no richer than its parent",
                detector=self.name,
            )
        return None
