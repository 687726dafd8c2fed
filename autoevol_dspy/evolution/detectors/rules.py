"""The rules of the papers: Evol-Instruct's elimination rules and Auto Evol-Instruct's rules on the response."""

from __future__ import annotations

from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure
from autoevol_dspy.evolution.detectors.words import _STOP_WORDS, _TOKENS, _normalized


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
    "evolved_instruction",  # the output fields of the evolving step, copied from the adapter's template
    "added_requirement",
)


class EvolInstructRules:
    """The original Evol-Instruct elimination rules: unchanged, template copied, short apology, empty answer."""

    name = "evol_instruct_rules"
    needs_response = True

    def __init__(self, *, sorry_max_words: int = 80) -> None:
        self.sorry_max_words = sorry_max_words

    def describe(self) -> dict:
        return {"type": self.name, "sorry_max_words": self.sorry_max_words}

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
        tokens = _TOKENS.findall(case.response.lower())
        if all(token in _STOP_WORDS for token in tokens):
            return self._fail("empty_response", "the response holds only punctuation and stop words")
        return None

    def _fail(self, category: str, reason: str) -> Failure:
        return Failure(category=category, reason=reason, detector=self.name)
