"""A proposal that carries the specifics of the cases the optimizer saw: their numbers, names, phrases."""

from __future__ import annotations

import re
from typing import Any

from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection, _positive
from autoevol_dspy.search.strategies.proposal_guard.not_instruction import _DIRECTIVE_VERBS
from autoevol_dspy.search.strategies.proposal_guard.words import _NUMBER, _QUOTED, _STOP_WORDS, _lower_words, _words


# A capitalized word inside a sentence, as names stand in the cases ("How many did Natalia sell?").
_MID_SENTENCE_CAPITAL = re.compile(r"(?<=[a-z0-9,;] )[A-Z][a-z][A-Za-z-]+")
# A format shown by example: "e.g. 12 or 3.5", or a line of its own, "Example answer: 18".
_EXAMPLE = re.compile(r"\b(e\.g\.|for example|for instance|such as)[^.;:)\n]*|^example\b[^:\n]{0,40}:[^\n]*",
                      re.IGNORECASE | re.MULTILINE)


class CopiesTrajectory:
    """Refuses a proposal that carries specifics of the cases the optimizer saw, which the incumbent lacks.

    Specifics: numbers of at least ``min_number`` (or with a decimal point or fraction),
    names (words capitalized inside a sentence and never written in lower case there), and
    runs of ``ngram`` words.
    """

    def __init__(self, *, ngram: int = 5, min_number: float = 10) -> None:
        self.ngram = int(_positive("ngram", ngram))
        self.min_number = min_number

    def check(self, proposal: ProposalContext) -> Rejection | None:
        cases = "\n".join(proposal.cases)
        if not cases.strip():
            return None
        found = self._number(proposal, cases) or self._name(proposal, cases) or self._phrase(proposal)
        if found is None:
            return None
        return Rejection(category="copies_case", check="CopiesTrajectory",
                         reason=f"it copies {found} from the cases it was shown")

    def _specific(self, number: str) -> bool:
        if not number.replace(",", "").isdigit():
            return True
        return int(number.replace(",", "")) >= self.min_number

    def _number(self, proposal: ProposalContext, cases: str) -> str | None:
        known = set(_NUMBER.findall(proposal.incumbent))
        seen = set(_NUMBER.findall(cases))
        stated = _EXAMPLE.sub("", _QUOTED.sub("", proposal.text))  # "e.g. 12", "Example answer: 12": a form
        for number in _NUMBER.findall(stated):
            if number in seen and number not in known and self._specific(number):
                return f"the number {number}"
        return None

    @staticmethod
    def _name(proposal: ProposalContext, cases: str) -> str | None:
        lower = {word.lower() for word in _words(cases + " " + proposal.incumbent) if word[:1].islower()}
        names = {word for word in _MID_SENTENCE_CAPITAL.findall(cases)
                 if word.lower() not in lower | _STOP_WORDS | _DIRECTIVE_VERBS}
        incumbent = proposal.incumbent.lower()
        for word in _words(proposal.text):
            word = word.removesuffix("'s")
            if word in names and word.lower() not in incumbent:
                return f"the name {word!r}"
        return None

    def _phrase(self, proposal: ProposalContext) -> str | None:
        def grams(text: str) -> list[tuple[str, ...]]:
            words = _lower_words(text)
            return [tuple(words[i:i + self.ngram]) for i in range(len(words) - self.ngram + 1)]

        known = set(grams(proposal.incumbent))
        seen = {gram for case in proposal.cases for gram in grams(case)}
        copied = next((gram for gram in grams(proposal.text) if gram in seen and gram not in known), None)
        return None if copied is None else f"the words {' '.join(copied)!r}"

    def describe(self) -> dict[str, Any]:
        return {"type": "CopiesTrajectory", "ngram": self.ngram, "min_number": self.min_number}
