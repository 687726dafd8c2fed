"""Failure detectors for evolved instructions: small, swappable, each naming a category.

A detector looks at one :class:`EvolutionCase` (the parent instruction, the evolved
one, and the response LM's answer when it needs one) and returns a :class:`Failure` or
``None``. The evolution failure rate of a method is the share of dev cases for which
any detector reports a failure.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import dspy
from pydantic import BaseModel

from autoevol_dspy.lm.usage import lm_role

__all__ = [
    "EvolInstructRules",
    "EvolutionCase",
    "Failure",
    "FailureDetector",
    "LLMJudge",
    "PaperResponseRules",
    "default_detectors",
]


class Failure(BaseModel):
    """Why one case failed: a category to count and a reason to read."""

    category: str
    reason: str
    detector: str


@dataclass(frozen=True)
class EvolutionCase:
    """What the detectors judge: one instruction, its evolution, and the answer to it."""

    instruction: str
    evolved: str
    response: str | None = None


@runtime_checkable
class FailureDetector(Protocol):
    """Judges one evolution; ``needs_response`` asks the response LM to answer first."""

    name: str
    needs_response: bool

    def detect(self, case: EvolutionCase) -> Failure | None: ...


_ACKNOWLEDGEMENTS = ("understood", "thank you", "thanks", "got it", "noted", "i understand", "acknowledged")


class PaperResponseRules:
    """The paper's rules on the response: stagnant complexity, insufficient qualification, lost information."""

    name = "paper_response_rules"
    needs_response = True

    def detect(self, case: EvolutionCase) -> Failure | None:
        response = (case.response or "").strip()
        lowered = response.lower()
        asks_back = response.endswith("?")
        if asks_back and lowered.startswith(_ACKNOWLEDGEMENTS):
            return self._fail("stagnant_complexity", "the response acknowledges and asks what to do")
        if asks_back and lowered.startswith("sure"):
            return self._fail("insufficient_qualification", "the response says 'Sure' and asks for details")
        if "please provide" in lowered:
            return self._fail("loss_of_key_information", "the response asks the user to provide missing information")
        return None

    def _fail(self, category: str, reason: str) -> Failure:
        return Failure(category=category, reason=reason, detector=self.name)


_STOP_WORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being
    it its this that these those i you he she we they me him her us them my your our their not no yes
    do does did done so such can could will would shall should may might must have has had there here
    what which who whom whose when where why how all any each few more most other some than too very
    just also only own same ok okay""".split()
)
_TEMPLATE_WORDS = (
    "#rewritten instruction#",
    "#finally rewritten instruction#",
    "#given prompt#",
    "#rewritten prompt#",
    "#methods list#",
    "#plan#",
    "given prompt",
    "rewritten prompt",
    "rewritten instruction",
)


def _normalized(text: str) -> str:
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


class EvolInstructRules:
    """The original Evol-Instruct elimination rules: unchanged, template copied, short apology, empty answer."""

    name = "evol_instruct_rules"
    needs_response = True

    def __init__(self, *, sorry_max_words: int = 80) -> None:
        self.sorry_max_words = sorry_max_words

    def detect(self, case: EvolutionCase) -> Failure | None:
        if _normalized(case.evolved) == _normalized(case.instruction):
            return self._fail("unchanged", "the evolved instruction is the same as its parent")
        lowered = case.evolved.lower()
        copied = next((word for word in _TEMPLATE_WORDS if word in lowered), None)
        if copied:
            return self._fail("copied_template", f"the evolved instruction copies the template words {copied!r}")
        if case.response is None:
            return None
        words = case.response.split()
        if "sorry" in case.response.lower() and len(words) < self.sorry_max_words:
            return self._fail("short_apology", f"the response apologises in under {self.sorry_max_words} words")
        tokens = re.findall(r"[a-z0-9']+", case.response.lower())
        if all(token in _STOP_WORDS for token in tokens):
            return self._fail("empty_response", "the response holds only punctuation and stop words")
        return None

    def _fail(self, category: str, reason: str) -> Failure:
        return Failure(category=category, reason=reason, detector=self.name)


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

    def detect(self, case: EvolutionCase) -> Failure | None:
        with lm_role("judge"), dspy.context(**({"lm": self.lm} if self.lm is not None else {})):
            verdict = self.compare(first=case.instruction, second=case.evolved).verdict
        if verdict == "equal":
            return Failure(
                category="no_information_gain",
                reason="the judge found the evolved instruction no richer than its parent",
                detector=self.name,
            )
        return None


def default_detectors() -> list[FailureDetector]:
    """The paper's response rules plus the Evol-Instruct elimination rules."""
    return [EvolInstructRules(), PaperResponseRules()]
