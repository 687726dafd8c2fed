"""An evolution that repeats its parent or itself: the parent twice, a span twice in a row, a loop."""

from __future__ import annotations

from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure
from autoevol_dspy.evolution.detectors.words import _TOKENS, _joined


def _word_list(text: str) -> list[str]:
    """Lower-case words and numbers, without digits inside words ("top-2" -> "top"): a loop of counted items repeats."""
    return [word for word in _TOKENS.findall(text.lower()) if not word[0].isdigit()]


def _occurrences(text: str, part: str) -> int:
    """How often ``part`` (space-delimited, see :func:`_joined`) occurs in ``text``, neighbours sharing a space."""
    count, start = 0, text.find(part)
    while start >= 0:
        count += 1
        start = text.find(part, start + len(part) - 1)
    return count


def _run_of_char(text: str, length: int) -> str | None:
    """A character other than a space written ``length`` times in a row, if any (plain code: linear)."""
    run, previous = 0, ""
    for char in text:
        run = run + 1 if char == previous else 1
        previous = char
        if run >= length and not char.isspace():
            return char
    return None


def _tandem(words: list[str], *, min_period: int, max_period: int, copies: int) -> list[str] | None:
    """A span of ``min_period``..``max_period`` words said ``copies`` times in a row, if any.

    For each period p, a run of p * (copies - 1) positions where ``words[i] == words[i + p]``
    is such a span: O(len(words) * max_period) steps, no backtracking.
    """
    for period in range(min_period, min(max_period, len(words) // copies) + 1):
        run = 0
        for i in range(len(words) - period):
            run = run + 1 if words[i] == words[i + period] else 0
            if run >= period * (copies - 1):
                start = i - run + 1
                return words[start:start + period]
    return None


class Repetition:
    """Flags an evolution that repeats its parent or itself: the parent twice, a span said twice in a row, a loop.

    A small model often pads its output by saying the instruction again ("Ich verstehe nur
    Bahnhof Ich verstehe nur Bahnhof"), by saying its last sentence again, or by looping
    until it runs out of tokens ("The top-2. The top-1. The top-3. ..."). Numbers are left out
    when words are compared, so a loop that counts still repeats; a repetition the parent
    itself holds is allowed.
    """

    name = "repetition"
    needs_response = False

    def __init__(self, *, min_span_words: int = 3, max_span_words: int = 80, loop_copies: int = 4,
                 char_run: int = 30) -> None:
        self.min_span_words = min_span_words
        self.max_span_words = max_span_words
        self.loop_copies = loop_copies
        self.char_run = char_run

    def describe(self) -> dict:
        return {"type": self.name, "min_span_words": self.min_span_words, "max_span_words": self.max_span_words,
                "loop_copies": self.loop_copies, "char_run": self.char_run}

    def detect(self, case: EvolutionCase) -> Failure | None:
        parent_words, evolved_words = _word_list(case.instruction), _word_list(case.evolved)
        parent, evolved = _joined(parent_words), _joined(evolved_words)
        if len(parent_words) >= self.min_span_words and _occurrences(evolved, parent) >= 2:
            return self._fail("it says the whole parent instruction twice")
        for min_period, copies in ((self.min_span_words, 2), (1, self.loop_copies)):
            span = _tandem(evolved_words, min_period=min_period, max_period=self.max_span_words, copies=copies)
            if span is not None and _joined(span * copies) not in parent:
                shown = " ".join(span)
                return self._fail(f"it says {shown[:80]!r} {copies} times in a row" if copies > 2
                                  else f"it says {shown[:80]!r} twice in a row")
        char = _run_of_char(case.evolved, self.char_run)
        if char is not None and _run_of_char(case.instruction, self.char_run) != char:
            return self._fail(f"it writes {char!r} {self.char_run} or more times in a row")
        return None

    def _fail(self, reason: str) -> Failure:
        return Failure(category="repeats_itself", reason=reason, detector=self.name)
