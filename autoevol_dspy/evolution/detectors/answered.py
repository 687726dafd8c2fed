"""An evolution that answers, solves or explains its parent instead of asking for more."""

from __future__ import annotations

import regex

from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure
from autoevol_dspy.evolution.detectors.requests import _SENTENCE_BREAK, _STUB, _asks
from autoevol_dspy.evolution.detectors.words import _appended
from autoevol_dspy.text import bounded, clip


# Each part of an equation is atomic and the chain has at most 12 operators, so the search is linear:
# "240 files / 12 hours / 240 files / ..." (a small model's loop, no "=") once took minutes.
_NUMBER = r"(?>\$?\d[\d.,]*%?(?:\s?/?[a-z]{2,})?)"
_OPERATOR = r"(?>\s*[-+*/x×÷]\s*\(?\s*)"
_EQUATION = regex.compile(  # "2 * 36 = 72", "$30 + 20% = $36", "(1/2) * (1 + 1) = 1": arithmetic with its result
    rf"(?<![\w.,$])(?:{_NUMBER}|\([^()=]*+\))(?>{_OPERATOR}{_NUMBER}\)?){{1,12}}"
    r"\s*+=\s*+\$?-?(?:\d[\d.,]*\d|\d|true\b|false\b)",
    regex.IGNORECASE,
)
_ANSWER_MARKERS = regex.compile(
    r"\b(?:the (?:final |correct )?answer is|the (?:final )?result is|the solution is|answer\s*:|solution\s*:)|####",
    regex.IGNORECASE,
)
_EXPLAINING = regex.compile(
    r"\b(?:let me|let's (?:calculate|solve|find|compute|break|start|think|work|see)|"
    r"here (?:is|are) (?:the|my) (?:answer|solution|explanation|result|rewritten|final)|"
    r"i (?:will|would|'ll|can) (?:explain|calculate|solve|answer|rewrite|compute)|to solve this|first, we|"
    r"we (?:can|need to|will) (?:calculate|find|solve|compute|understand))\b",
    regex.IGNORECASE,
)


# A bare result after the request: "15", "$2.30", "10.5 miles", "150 kilometers per hour." (one number, few words).
_BARE_ANSWER = regex.compile(r"[$€£]?+-?+\d[\d.,/]*+%?+(?:[ \t]++[A-Za-z]++){0,3}+[ \t]*+\.?+")
# A value stated as a result: "... is 1/6", "... equals 10080 minutes" (not "is 6-sided", not a fact given as
# context, "there are 7 days in a week"); possessive: linear.
_STATED_RESULT = regex.compile(r"(?<!\bthere[ \t])\b(?:is|was|equals|makes)[ \t]++(?:about[ \t]++|approximately[ \t]++|"
                               r"exactly[ \t]++)?+[$€£]?+(-?+\d[\d.,/]*+%?+)(?![\w-])", regex.IGNORECASE)
_DOCSTRING = regex.compile(r'"""([\s\S]*?)"""|\'\'\'([\s\S]*?)\'\'\'')
_LISTED = regex.compile(r"^[ \t]*+(?:[a-z0-9][.)]|[-*•])\s", regex.MULTILINE)  # options listed after a question
_LETTERS = regex.compile(r"[A-Za-z]+")


def _question_after(parent: str, evolved: str) -> bool:
    """Whether ``evolved`` is ``parent`` with one question appended on its last line (the extend style on a code
    stub: the docstring's closing quotes, then "What should it return for an empty list?"), which would otherwise
    read as an indented line of code."""
    stem = parent.rstrip()
    added = evolved[len(stem):].strip() if stem and evolved.startswith(stem) else ""
    return bool(added) and "\n" not in added and added[:1].isalpha() and added.endswith("?")


def _code_lines(text: str) -> int:
    """Indented code statements outside docstrings: a stub has none of its own, a solution has some."""
    code = _DOCSTRING.sub("", text)
    lines = (line for line in code.splitlines() if line[:1].isspace())
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


class AnsweredInstead:
    """Flags an 'instruction' that answers, solves or explains its parent: the commonest slip of a small rewriter."""

    name = "answered_instead"
    needs_response = False

    def __init__(self, *, min_trailing_words: int = 20) -> None:
        self.min_trailing_words = min_trailing_words

    def describe(self) -> dict:
        return {"type": self.name, "min_trailing_words": self.min_trailing_words}

    def detect(self, case: EvolutionCase) -> Failure | None:
        parent, evolved = case.instruction, case.evolved
        stating = [sentence for sentence in _SENTENCE_BREAK.split(evolved) if not _asks(sentence)]
        for pattern, what in ((_ANSWER_MARKERS, "announces an answer"), (_EQUATION, "works out an equation"),
                              (_EXPLAINING, "explains in the first person")):
            found = [m.group(0) for text in stating for m in pattern.finditer(text)]
            found = [text for text in found if text.lower() not in parent.lower()]
            if found:
                return self._fail(f"it {what} ({found[0].strip()!r}) instead of asking")
        if "?" in evolved and not _STUB.search(evolved):  # in code, text after a "?" is docstring and examples
            trailing = evolved[evolved.rindex("?") + 1 :]
            listed = _LISTED.search(trailing)  # options after a question are fine
            long = len(_LETTERS.findall(trailing)) >= self.min_trailing_words
            if long and not listed and not _asks(trailing):
                return self._fail("it asks the question, then goes on to state an answer")
        tail = _appended(parent, evolved)
        if tail and _BARE_ANSWER.fullmatch(tail) and tail not in parent:
            return self._fail(f"it ends with a bare result ({tail[:40]!r}) instead of asking for more")
        if tail and _asks(parent) and not _asks(tail):
            stated = _STATED_RESULT.search(bounded(tail, 2_000))
            if stated and stated.group(1).rstrip(".,") not in parent:
                return self._fail(f"it states a result after the request ({clip(tail, 60)!r}) instead of asking")
        if (_STUB.search(evolved) and _code_lines(evolved) > _code_lines(parent)
                and not _question_after(parent, evolved)):
            return self._fail("it writes the code body instead of asking for it")
        if _asks(parent) and not _asks(evolved):
            return self._fail("it states things and asks for nothing: no question, imperative or request")
        return None

    def _fail(self, reason: str) -> Failure:
        return Failure(category="answered_instead", reason=reason, detector=self.name)
