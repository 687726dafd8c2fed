"""A proposal that says the same again: a loop, or the current instructions restated as an addition."""

from __future__ import annotations

from collections import Counter
from typing import Any

from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection, _positive
from autoevol_dspy.search.strategies.proposal_guard.words import _NUMBER, _NUMBER_PART, _content, _lower_words
from autoevol_dspy.text import clip


class RepeatsItself:
    """Refuses a degenerate loop: one phrase repeated until it fills much of the text, as small models do, or
    said ``loop_repeats`` times however long the text around it ("Step 3: Add a new requirement ... Step 9: Add a
    new requirement ..."), or one number run on and on ("1.1.2.1.1.1.2.2.2..."): more than ``max_number_parts``
    parts in one number."""

    def __init__(self, *, ngram: int = 4, min_repeats: int = 4, min_share: float = 0.25,
                 max_number_parts: int = 12, loop_repeats: int = 10) -> None:
        self.ngram = int(_positive("ngram", ngram))
        self.min_repeats = int(_positive("min_repeats", min_repeats))
        self.min_share = _positive("min_share", min_share)
        self.max_number_parts = int(_positive("max_number_parts", max_number_parts))
        self.loop_repeats = int(_positive("loop_repeats", loop_repeats))

    def check(self, proposal: ProposalContext) -> Rejection | None:
        run_on = next((number for number in _NUMBER.findall(proposal.text)
                       if len(_NUMBER_PART.split(number)) > self.max_number_parts), None)
        if run_on is not None:
            return Rejection(category="repetition", check="RepeatsItself",
                             reason=f"it runs one number on and on ({clip(run_on, 40)})")
        words = [word for word in _lower_words(proposal.text) if not word[0].isdigit()]  # "1. x 2. x" loops too
        grams = Counter(tuple(words[i:i + self.ngram]) for i in range(len(words) - self.ngram + 1))
        if not grams:
            return None
        gram, times = grams.most_common(1)[0]
        fills = times >= self.min_repeats and times * self.ngram >= self.min_share * len(words)
        if fills or times >= self.loop_repeats:
            return Rejection(category="repetition", check="RepeatsItself",
                             reason=f"it repeats {' '.join(gram)!r} {times} times")
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "RepeatsItself", "ngram": self.ngram, "min_repeats": self.min_repeats,
                "min_share": self.min_share, "max_number_parts": self.max_number_parts,
                "loop_repeats": self.loop_repeats}


class RestatesInstructions:
    """Refuses the current instructions with an addition that only says them again ("A new rule has been
    implemented: <the instructions>", "Remember: answer the question.").

    The addition must bring at least ``min_new_share`` of its content words (and numbers) from outside the
    current instructions. A rewrite that does not keep the current text whole is left to the other checks.
    """

    def __init__(self, *, min_new_share: float = 0.25) -> None:
        self.min_new_share = _positive("min_new_share", min_new_share)

    def check(self, proposal: ProposalContext) -> Rejection | None:
        text, incumbent = " ".join(proposal.text.split()), " ".join(proposal.incumbent.split())
        start = text.lower().find(incumbent.lower()) if incumbent else -1
        if start < 0:
            return None
        added = _content(text[:start] + " " + text[start + len(incumbent):])
        if not added:
            return None
        new = added - _content(incumbent)
        if len(new) < self.min_new_share * len(added):
            return Rejection(category="restates", check="RestatesInstructions",
                             reason=f"what it adds says the current instructions again ({len(new)} of its "
                                    f"{len(added)} content words are new)")
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "RestatesInstructions", "min_new_share": self.min_new_share}
