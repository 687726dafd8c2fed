"""A proposal that is no instructions at all: a placeholder, a question, an answer, or narration."""

from __future__ import annotations

import re
from typing import Any

import regex

from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection, _positive
from autoevol_dspy.search.strategies.proposal_guard.words import _NUMBER, _QUOTED, _SENTENCE_END, _STOP_WORDS, _lower_words
from autoevol_dspy.text import clip


_DIRECTIVE_VERBS = frozenset(
    """answer write give reply respond return output read judge classify label decide choose pick select use ignore
    treat list plan review rewrite restate state solve compute calculate work explain describe identify keep add make
    include avoid do don't never always provide format report think consider check ensure follow begin start end
    summarize summarise translate extract count find determine convert show put carry apply remove fix improve be
    note focus base weigh tell mark cite quote copy express present evaluate assess analyse analyze rate score look
    take stay prefer print generate create produce compose draft turn transform please only imagine assume verify
    double-check separate round simplify name mention refer skip drop leave respect match determine reason sort sum
    render route infer detect estimate rank rephrase paraphrase categorize categorise assign tag group interpret
    distinguish recognize recognise compare examine inspect flag highlight resolve define clarify shorten expand
    edit correct proofread locate search retrieve trace figure break walk say""".split()
)
_DIRECTIVE_PHRASES = re.compile(
    r"\b(you|your|must|should|shall|need to|needs to|make sure|do not|don't|never|always|"
    r"(task|job|goal|role) is)\b", re.IGNORECASE)
_SEGMENT = re.compile(r"[.!?;:\n]+|,\s+|\bthen\b", re.IGNORECASE)
_LEADER = regex.compile(r"^[\s\-*#>\d.)(\[\]]*+(?:step\s*+\d++\s*+)?+[\s\-*#>\d.)(:\[\]]*+",  # possessive: linear
                        regex.IGNORECASE)
_SLOT = re.compile(r"\{\s*[A-Za-z_]+\s*\}|\[\[?\s*#+[^\]\n]{0,80}\]\]?")  # a slot is short: bounded, linear
_PLACEHOLDER = re.compile(
    r"\b(improved|new|updated|rewritten|better|revised|current)[ _](instruction|prompt|version)s?\b|lorem ipsum|"
    r"\[insert|<insert|\btodo\b|instructions? here", re.IGNORECASE)
_ANSWER = re.compile(
    r"\b(the )?(correct |final |right |short )?answer (is|was|would be|will be|=)\s*[:\-]?\s*[$€£]?-?\d|"
    r"\d\s*[x×*/+\-]\s*\d[\d.,]*\s*=\s*[$€£]?-?\d", re.IGNORECASE)
_RESULT = re.compile(r"\b(is|are|was|were|equals|=)\s+(about |approximately |exactly )?[$€£]?(-?\d[\d.,/]*)",
                     re.IGNORECASE)


def _field_name(text: str) -> bool:
    """Whether ``text`` is one snake_case name with only punctuation around it ("improved_instructions."); plain
    code, linear on any input."""
    start, end = 0, len(text)
    while start < end and not (text[start].isalnum() or text[start] == "_"):
        start += 1
    while end > start and not (text[end - 1].isalnum() or text[end - 1] == "_"):
        end -= 1
    parts = text[start:end].split("_")
    return len(parts) >= 2 and all(part.isascii() and part.isalpha() and part.islower() for part in parts)


def _only_ellipsis(text: str) -> bool:
    """Whether ``text`` is "..." or "…" with only punctuation around it (plain code: linear on any input)."""
    stripped = text.strip()
    return (("..." in stripped or "…" in stripped)
            and not any(ch.isalnum() or ch == "_" for ch in stripped))


def _sentences(text: str) -> list[str]:
    return [part.strip() for part in _SENTENCE_END.split(" ".join(text.split())) if part.strip()]


#: Words that open a clause before its verb: "otherwise say neutral", "first read the review".
_OPENERS = frozenset("otherwise else also instead finally first next then now again".split())
#: Words that open a verb's object: "Condense the document", "Formulate a short search".
_OBJECT_OPENERS = frozenset("the a an this that these those each every all its it them your their".split())
#: Words that open a clause but are no verb, though an object opener may follow ("After the meal").
_NO_VERBS = _STOP_WORDS | frozenset("""after before during without within under between through across among against
    around behind beyond since until unless while because although though once whether via per like near""".split())


def _is_directive(segment: str) -> bool:
    """Whether the clause starts with a verb that tells the model to act: a directive verb (after an adverb or
    an opener: "Carefully read ...", "otherwise say ..."), or any other word followed by its object ("Condense
    the document")."""
    words = _lower_words(_LEADER.sub("", segment))
    while len(words) > 1 and words[0] not in _DIRECTIVE_VERBS and (words[0] in _OPENERS or words[0].endswith("ly")):
        words = words[1:]
    if not words:
        return False
    if words[0] in _DIRECTIVE_VERBS:
        return True
    return (len(words) > 1 and words[1] in _OBJECT_OPENERS and words[0] not in _NO_VERBS and words[0].isalpha()
            and not _past_tense(words[0]))


#: Verbs whose base form ends in "ed": an imperative may open with them ("Embed the link").
_BASE_ED = frozenset("embed proceed feed need heed exceed succeed speed shed bleed breed seed weed wed shred".split())
#: Past forms that report an edit instead of asking for one ("Made the task harder", "Wrote a new rule").
_PAST_FORMS = frozenset("made wrote rewrote gave took kept put set found".split())


def _past_tense(word: str) -> bool:
    """Whether ``word`` reads as a past form ("Added a new requirement"): narration about an edit, no order."""
    return word in _PAST_FORMS or (word.endswith("ed") and word not in _BASE_ED)


class NotAnInstruction:
    """Refuses a text that is not instructions at all: a placeholder, a question, an answer, or plain narration.

    Instructions tell a model what to do: some clause starts with a directive verb, or the
    text speaks to the model ("you", "must", "never", "your task is").
    """

    def __init__(self, *, max_placeholder_words: int = 8) -> None:
        self.max_placeholder_words = int(_positive("max_placeholder_words", max_placeholder_words))

    def check(self, proposal: ProposalContext) -> Rejection | None:
        text, incumbent = proposal.text, proposal.incumbent
        problem = (self._placeholder(text, incumbent) or self._question(text)
                   or self._answer(text, incumbent, "\n".join(proposal.cases)))
        if problem is None and not self._directive(text):
            problem = ("not_instructions", "it tells the model nothing to do: no clause is an instruction")
        if problem is None:
            return None
        return Rejection(category=problem[0], reason=problem[1], check="NotAnInstruction")

    def _placeholder(self, text: str, incumbent: str) -> tuple[str, str] | None:
        slots = [slot for slot in _SLOT.findall(text) if slot not in incumbent]
        if slots:
            return "placeholder", f"it holds the template slot {slots[0]!r}"
        found = _PLACEHOLDER.search(text)
        if found and len(text.split()) <= self.max_placeholder_words:
            return "placeholder", f"it is a placeholder ({found.group(0)!r}), not instructions"
        if _only_ellipsis(text):
            return "placeholder", "it is an ellipsis, not instructions"
        if not any(ch.isalpha() for ch in text) and not _NUMBER.fullmatch(text.strip(" $€£.")):
            return "placeholder", "it holds only symbols, not instructions"
        if _field_name(text):
            return "placeholder", "it is a field name, not instructions"
        return None

    @staticmethod
    def _question(text: str) -> tuple[str, str] | None:
        sentences = _sentences(text)
        questions = [s for s in sentences if s.endswith("?")]
        if questions and not any(_is_directive(s) for s in sentences if not s.endswith("?")):
            return "question", f"it asks a question ({clip(questions[0], 80)!r}) instead of giving instructions"
        return None

    @staticmethod
    def _answer(text: str, incumbent: str, cases: str) -> tuple[str, str] | None:
        if _NUMBER.fullmatch(text.strip(" $€£.")):
            return "answer", "it is a bare number, an answer rather than instructions"
        for sentence in _sentences(_QUOTED.sub("", text)):  # a quoted counter-example is no answer
            if _is_directive(sentence) or _DIRECTIVE_PHRASES.search(sentence):
                continue
            result = _RESULT.search(sentence)
            case_value = result is not None and result.group(3) in cases and result.group(3) not in incumbent
            if _ANSWER.search(sentence) or case_value:
                return "answer", f"it states a result ({clip(sentence, 80)!r}) instead of giving instructions"
        return None

    @staticmethod
    def _directive(text: str) -> bool:
        if _DIRECTIVE_PHRASES.search(text):
            return True
        return any(_is_directive(segment) for segment in _SEGMENT.split(text))

    def describe(self) -> dict[str, Any]:
        return {"type": "NotAnInstruction", "max_placeholder_words": self.max_placeholder_words}
