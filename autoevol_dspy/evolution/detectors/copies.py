"""An evolution that copies instead of adding: its parent, a worked example, the method, the request's own words."""

from __future__ import annotations

import difflib

from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure
from autoevol_dspy.evolution.detectors.words import (_STOP_WORDS, _TOKENS, _joined, _kept_addition, _letter_words,
                                                     _normalized, _stem, _words_of_its_own)
from autoevol_dspy.text import clip


_LONG_TEXT_WORDS = 400


class NearCopy:
    """Flags an evolution that repeats its parent almost word for word: a trivial edit adds no complexity."""

    name = "near_copy"
    needs_response = False

    def __init__(self, *, min_similarity: float = 0.9, max_new_words: int = 2) -> None:
        self.min_similarity = min_similarity
        self.max_new_words = max_new_words

    def describe(self) -> dict:
        return {"type": self.name, "min_similarity": self.min_similarity, "max_new_words": self.max_new_words}

    def detect(self, case: EvolutionCase) -> Failure | None:
        if _normalized(case.evolved) == _normalized(case.instruction):
            reason = "the evolved instruction is the same as its parent"
            return Failure(category="unchanged", reason=reason, detector=self.name)
        parent, evolved = _letter_words(case.instruction), _letter_words(case.evolved)
        new = sorted(set(evolved) - set(parent) - _STOP_WORDS)
        if len(new) > self.max_new_words:  # cheap, and it spares the alignment below
            return None
        # Aligning two long repetitive texts word by word is slow (a small model's loop took minutes):
        # past _LONG_TEXT_WORDS words difflib may skip words that make up over 1% of the text.
        long = len(parent) + len(evolved) > _LONG_TEXT_WORDS
        similarity = difflib.SequenceMatcher(None, parent, evolved, autojunk=long).ratio()
        if similarity >= self.min_similarity:
            return Failure(
                category="near_copy",
                reason=f"{similarity:.0%} of its words follow the parent and it adds {len(new)} new word(s) {new}",
                detector=self.name,
            )
        return None


class CopiedExample:
    """Flags an evolution that copies a worked example's output (a DSPy demo of the evolving step) into another instruction.

    A small model shown a few worked examples often pastes one of them, whatever the
    instruction ("Use a LEFT JOIN ..." under a word problem): the text passes every other
    rule, yet it is not an evolution of *this* instruction. A run of ``span_words`` words of
    an example's output (all of it when shorter, and at least ``min_words``) that the
    evolved text holds and the parent does not is a copy.
    """

    name = "copied_example"
    needs_response = False

    def __init__(self, *, span_words: int = 8, min_words: int = 4) -> None:
        self.span_words = span_words
        self.min_words = min_words

    def describe(self) -> dict:
        return {"type": self.name, "span_words": self.span_words, "min_words": self.min_words}

    def detect(self, case: EvolutionCase) -> Failure | None:
        if not case.examples:
            return None
        parent, evolved = _joined(_TOKENS.findall(case.instruction.lower())), _joined(_TOKENS.findall(case.evolved.lower()))
        for example in case.examples:
            words = _TOKENS.findall(example.lower())
            if len(words) < self.min_words:
                continue
            size = min(self.span_words, len(words))
            for start in range(len(words) - size + 1):
                span = _joined(words[start:start + size])
                if span in evolved and span not in parent:
                    return Failure(category="copied_example", detector=self.name,
                                   reason=f"it copies the worked example {clip(example, 80)!r}")
        return None


#: Words of the evolving step's prompt around the method (the JSON adapter's template), echoed as often as the method.
_PROMPT_WORDS = frozenset({"json", "schema", "object", "field", "value"})


class EchoesMethod:
    """Flags an evolution whose new words are all the evolving method's own ("Added requirement to the request",
    "How to make a request harder, such as a constraint or a format?"): it talks about rewriting, not about
    this instruction, and a small model writes it often. At least ``share`` of the words the evolution adds (content
    words its parent does not hold), and at least ``min_words`` of them, come from the method or the prompt's
    template. A real addition brings a word of its own ("Also handle an empty list" beside a method that names
    "a related case to handle"); a short generic one ("Explain each step.") is left alone.
    """

    name = "echoes_method"
    needs_response = False

    def __init__(self, *, share: float = 1.0, min_words: int = 3) -> None:
        self.share = share
        self.min_words = min_words

    def describe(self) -> dict:
        return {"type": self.name, "share": self.share, "min_words": self.min_words}

    def detect(self, case: EvolutionCase) -> Failure | None:
        if not case.method:
            return None
        new = _words_of_its_own(case.instruction, case.evolved)
        if len(new) < self.min_words:
            return None
        method = {_stem(word) for word in _letter_words(case.method)} | _PROMPT_WORDS
        echoed = [word for word in new if _stem(word) in method]
        if len(echoed) < self.share * len(new):
            return None
        return Failure(category="echoes_method", detector=self.name,
                       reason=f"{len(echoed)} of the {len(new)} words it adds come from the evolving method "
                              f"({', '.join(echoed[:6])}): it is about rewriting, not about this instruction")


#: Words about the request itself, not about its subject: an addition made only of them asks for nothing new.
_ABOUT_THE_REQUEST = frozenset(_stem(word) for word in """answer question request problem task solution result
    instruction query prompt thing something anything everything ask help mean""".split())


class AsksNothingNew:
    """Flags an addition that brings no word of its own: each of its words is the request's own or about the
    request itself. It says the request's question again ("...how many bananas does she need to buy?" ->
    "How many bananas does Vivian need to buy?") or asks about the request in general ("What is the answer to
    this question?"); the 135M model writes both often, and both passed the other rules (benchmarks/RESULTS.md).
    Only an evolution that keeps its parent word for word and appends to it is judged (the ``extend`` style);
    one word of its own ("Can you answer in French?", "What should it return for an empty list?") is enough
    to pass.
    """

    name = "asks_nothing_new"
    needs_response = False

    def describe(self) -> dict:
        return {"type": self.name}

    def detect(self, case: EvolutionCase) -> Failure | None:
        added = _kept_addition(case.instruction, case.evolved)
        if not added or not _letter_words(added) or _words_of_its_own(case.instruction, added,
                                                                       known=_ABOUT_THE_REQUEST):
            return None
        return Failure(category="asks_nothing_new", detector=self.name,
                       reason=f"every word it adds ({clip(added, 80)!r}) is the request's own or about the "
                              "request itself: it asks for nothing new")
