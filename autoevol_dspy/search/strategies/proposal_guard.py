"""Validity checks for proposed instructions, run before a proposal becomes a candidate.

A weak optimizer LM often returns text no person would ship as instructions: the answer
to one training case, a copied question, the name of the output field, or a text about
something else. Evaluating such a candidate costs a dev-set pass and, on a small noisy
dev set, it can even win. Each :class:`ProposalCheck` spots one kind of garbage from the
texts alone (:class:`JudgeCheck` asks an LM, off by default); :class:`ProposalGuard` runs
them in order, cheapest first, and returns the first :class:`Rejection`.
"""

from __future__ import annotations

import enum
import re
import typing
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import dspy
import regex
from dspy.utils.exceptions import AdapterParseError
from pydantic import BaseModel

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.lm.context import use_lm
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.text import bounded, clip
from autoevol_dspy.timelimit import TimeLimitExceeded, call_with_time_limit

__all__ = [
    "CopiesTrajectory",
    "DropsTask",
    "JudgeCheck",
    "JudgeInstructions",
    "LengthOutOfRange",
    "NamesPromptFormat",
    "NotAnInstruction",
    "ProposalCheck",
    "ProposalContext",
    "ProposalGuard",
    "Rejection",
    "RepeatsItself",
    "RestatesInstructions",
    "default_checks",
    "retry_feedback",
    "signature_terms",
]

_WORD = re.compile(r"[A-Za-z][A-Za-z'_-]*|\d+(?:[.,/:]\d+)*")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,/:]\d+)*(?![\w])")
_NUMBER_PART = re.compile(r"[.,/:]")
# A capitalized word inside a sentence, as names stand in the cases ("How many did Natalia sell?").
_MID_SENTENCE_CAPITAL = re.compile(r"(?<=[a-z0-9,;] )[A-Z][a-z][A-Za-z-]+")
# A format shown by example: "e.g. 12 or 3.5", or a line of its own, "Example answer: 18".
_EXAMPLE = re.compile(r"\b(e\.g\.|for example|for instance|such as)[^.;:)\n]*|^example\b[^:\n]{0,40}:[^\n]*",
                      re.IGNORECASE | re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?])(?<!e\.g\.)(?<!i\.e\.)\s+")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|(?<!\w)'[^']*'(?!\w)")
_STOP_WORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being it its
    this that these those i you he she we they me him her us them my your our their not no do does did so such can
    could will would shall should may might must have has had there here what which who whom whose when where why
    how all any each more most other some than too very just also only own same into out up about over one""".split()
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _lower_words(text: str) -> list[str]:
    return [word.lower() for word in _words(text)]


def _stem(word: str) -> str:
    """A crude stem, enough to match 'answers'/'answering' with 'answer' and 'rules' with 'rule'."""
    word = word.lower().strip("'_-")
    if len(word) > 5 and word.endswith("ies"):  # categories -> category
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True)
class ProposalContext:
    """What a check may look at: the proposal, the incumbent it would replace, and what the optimizer saw.

    ``output_terms`` gives, per output field, the other words that name it (its type's values
    and its description's words, see :func:`signature_terms`): a rewrite may say those instead
    of the field's name.
    """

    text: str
    incumbent: str
    trajectory: str = ""
    cases: tuple[str, ...] = ()
    feedback: str = ""
    output_fields: tuple[str, ...] = ()
    output_terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:  # every text bounded: a check never reads megabytes of a model's loop
        for name in ("text", "incumbent", "trajectory", "feedback"):
            object.__setattr__(self, name, bounded(str(getattr(self, name))))
        object.__setattr__(self, "cases", tuple(bounded(str(case)) for case in self.cases))
        object.__setattr__(self, "output_fields", tuple(str(name) for name in self.output_fields))
        object.__setattr__(self, "output_terms", {str(name): tuple(str(term) for term in terms)
                                                  for name, terms in dict(self.output_terms).items()})


class Rejection(BaseModel):
    """Why a proposal was refused: a category to count, a reason to read, the check that refused it."""

    category: str
    reason: str
    check: str


def retry_feedback(rejection: Rejection) -> str:
    """One line telling the optimizer LM why its last rewrite was refused, for its next try."""
    return (f"Your previous rewrite was refused ({rejection.category}): {rejection.reason}. Write general "
            "instructions for the same task, not an answer, a question or the details of a case.")


@runtime_checkable
class ProposalCheck(Protocol):
    """Refuses a proposal that is not usable instructions, or returns ``None``."""

    def check(self, proposal: ProposalContext) -> Rejection | None: ...

    def describe(self) -> dict[str, Any]: ...


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return value


class LengthOutOfRange:
    """Refuses a proposal far shorter or longer than the incumbent, unless the feedback asks for that.

    A short incumbent may grow by ``slack_words``: a strong optimizer LM turns "Answer the
    question." into a page of rules (GEPA's proposals run to hundreds of words).
    """

    _LONGER = re.compile(r"more (detail|specific|explicit|precise)|too (vague|short|brief)|elaborat|expand",
                         re.IGNORECASE)
    _SHORTER = re.compile(r"too (long|verbose|wordy)|shorter|more concise|be concise|simplif|brevity", re.IGNORECASE)

    def __init__(self, *, min_ratio: float = 0.2, max_ratio: float = 4.0, slack_words: int = 500) -> None:
        self.min_ratio = _positive("min_ratio", min_ratio)
        self.max_ratio = _positive("max_ratio", max_ratio)
        self.slack_words = int(_positive("slack_words", slack_words))
        if self.min_ratio >= self.max_ratio:
            raise ConfigurationError(f"min_ratio ({min_ratio}) must be below max_ratio ({max_ratio})")

    def check(self, proposal: ProposalContext) -> Rejection | None:
        size, base = len(proposal.text.split()), max(1, len(proposal.incumbent.split()))
        shortest = self.min_ratio * base
        longest = max(self.max_ratio * base, base + self.slack_words)
        if size < shortest and not self._SHORTER.search(proposal.feedback):
            return Rejection(category="length", check="LengthOutOfRange",
                             reason=f"it has {size} words where the current instructions have {base}")
        if size > longest and not self._LONGER.search(proposal.feedback):
            return Rejection(category="length", check="LengthOutOfRange",
                             reason=f"it has {size} words where the current instructions have {base}")
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "LengthOutOfRange", "min_ratio": self.min_ratio, "max_ratio": self.max_ratio,
                "slack_words": self.slack_words}


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


def _content(text: str) -> set[str]:
    """The content words' stems of ``text`` and its numbers: what a text says, apart from its glue."""
    return _key_stems(text) | set(_NUMBER.findall(text))


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


def _mentions(text: str, name: str) -> bool:
    spaced = name.replace("_", " ")
    pattern = rf"(?<![A-Za-z0-9_])({re.escape(name)}|{re.escape(spaced)})(?![A-Za-z0-9_])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _key_stems(text: str) -> set[str]:
    words = [word.removesuffix("'s") for word in _lower_words(text)]  # the article's topic: "article"
    return {_stem(word) for word in words if word.isalpha() and len(word) > 2 and word not in _STOP_WORDS}



def _type_words(annotation: Any) -> list[str]:
    """The words an output type spells out: a Literal's or an Enum's values, true/false/yes for a bool, "number"
    for a number, "list" for a list, also inside Optional."""
    if annotation is bool:
        return ["true", "false", "yes"]
    if annotation in (int, float):
        return ["number"]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    inner = [word for arg in typing.get_args(annotation) for word in _type_words(arg)]
    return ["list", *inner] if origin in (list, tuple, set, frozenset) else inner


def signature_terms(signature: type[dspy.Signature]) -> dict[str, tuple[str, ...]]:
    """Per output field, the words that name it besides its name: its type's words (values) and its description's.

    A sound rewrite may say "positive, negative or mixed" where the incumbent said `sentiment`.
    """
    terms = {}
    for name, info in signature.output_fields.items():
        desc = str((info.json_schema_extra or {}).get("desc", ""))
        words = [] if desc.startswith("${") else [word for word in _lower_words(desc) if word.isalpha()]
        found = [*_type_words(info.annotation), *words]
        terms[name] = tuple(dict.fromkeys(term for term in found if len(term) > 2 and term.lower() not in _STOP_WORDS))
    return terms


#: Names that mean only "the output": a field named so is named by any of them ("reply with the number").
_GENERIC_OUTPUTS = frozenset(_stem(word) for word in
                             "answer answers reply replies respond responds response responses result results "
                             "output outputs".split())
#: The optimizer's own material: a text about these, where the incumbent is not, is about rewriting instructions.
_OPTIMIZER_WORDS = frozenset(_stem(word) for word in "instruction instructions prompt prompts feedback".split())


def _names_field(proposal: ProposalContext, name: str, stems: set[str]) -> bool:
    """Whether the proposal names the output field: by its name, by a word its signature gives about it
    (:func:`signature_terms`), or, for a field named just "answer", "output" and the like, by any such word -
    unless the text is about instructions or feedback where the incumbent is not (the optimizer's own task)."""
    if _mentions(proposal.text, name) or _stem(name) in stems:
        return True
    for term in proposal.output_terms.get(name, ()):
        if (_stem(term) in stems) if term.isalpha() else _mentions(proposal.text, term):
            return True
    about_rewriting = bool((stems - _key_stems(proposal.incumbent)) & _OPTIMIZER_WORDS)
    return _stem(name) in _GENERIC_OUTPUTS and bool(stems & _GENERIC_OUTPUTS) and not about_rewriting


class DropsTask:
    """Refuses a proposal that no longer asks for the incumbent's task.

    It must keep at least ``min_share`` of the incumbent's content words (at least ``min_kept``
    of them). An output field the proposal names counts as one of them, also when it names it
    in other words: by its type's values or its description's words
    (``ProposalContext.output_terms``), "positive, negative or mixed" for `sentiment`.
    """

    def __init__(self, *, min_share: float = 0.2, min_kept: int = 1) -> None:
        self.min_share = _positive("min_share", min_share)
        self.min_kept = int(_positive("min_kept", min_kept))

    def check(self, proposal: ProposalContext) -> Rejection | None:
        stems = _key_stems(proposal.text)
        named = {_stem(name) for name in proposal.output_fields if _names_field(proposal, name, stems)}
        keys = _key_stems(proposal.incumbent)
        if not keys:
            return None
        kept = keys & stems | named
        keys |= named
        needed = min(len(keys), max(self.min_kept, self.min_share * len(keys)))
        if len(kept) < needed:
            lost = ", ".join(sorted(keys - kept)[:6])
            return Rejection(category="drops_task", check="DropsTask",
                             reason=f"it keeps {len(kept)} of the {len(keys)} task words of the current "
                                    f"instructions (lost: {lost})")
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "DropsTask", "min_share": self.min_share, "min_kept": self.min_kept}


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


#: Words of the prompt's own format, which the adapter sets: a small optimizer LM copies them from its prompt.
_FORMAT_WORDS = frozenset({"json", "schema"})


class NamesPromptFormat:
    """Refuses a proposal that brings up the prompt's format ("so I will give you a JSON object") where neither
    the incumbent nor the words of the output fields do: in DSPy the adapter sets the format, and instructions
    that ask for another one fight it. The 135M optimizer LM copies the word from its own JSON prompt."""

    def check(self, proposal: ProposalContext) -> Rejection | None:
        known = set(_lower_words(proposal.incumbent))
        known |= {word for name, terms in proposal.output_terms.items() for word in (*name.lower().split("_"),
                                                                                     *map(str.lower, terms))}
        known |= {word for name in proposal.output_fields for word in name.lower().split("_")}
        named = next((word for word in _lower_words(proposal.text) if word in _FORMAT_WORDS and word not in known),
                     None)
        if named is None:
            return None
        return Rejection(category="format_talk", check="NamesPromptFormat",
                         reason=f"it brings up the prompt's format ({named!r}), which the adapter sets, "
                                "instead of saying what to do")

    def describe(self) -> dict[str, Any]:
        return {"type": "NamesPromptFormat"}


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


def default_checks() -> list[ProposalCheck]:
    """The rule checks, cheapest first; no LM calls."""
    return [LengthOutOfRange(), RepeatsItself(), RestatesInstructions(), NotAnInstruction(), NamesPromptFormat(),
            DropsTask(), CopiesTrajectory()]


class ProposalGuard:
    """Runs its checks in order and returns the first rejection, or ``None`` for a usable proposal."""

    def __init__(self, *, checks: Sequence[ProposalCheck] | None = None, retries: int = 2,
                 check_time_limit: float | None = 120.0) -> None:
        """``retries``: how many more rounds of m samples a step asks for when every sample was refused.

        ``check_time_limit``: seconds one check may take on one proposal (``None``: no limit); a
        check that runs past it refuses the proposal as ``check_timeout``.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be a non-negative integer, got {retries!r}")
        if check_time_limit is not None:
            _positive("check_time_limit", check_time_limit)
        self.retries = retries
        self.check_time_limit = check_time_limit
        self.checks = list(default_checks() if checks is None else checks)
        for check in self.checks:
            if not isinstance(check, ProposalCheck):
                raise ConfigurationError(f"{check!r} is not a ProposalCheck (needs check() and describe())")

    def check(self, proposal: ProposalContext) -> Rejection | None:
        for rule in self.checks:
            try:  # a check that overruns (an LM judge, a user's own) refuses, and the step goes on
                rejection = call_with_time_limit(rule.check, proposal, seconds=self.check_time_limit)
            except TimeLimitExceeded as exc:
                rejection = Rejection(category="check_timeout", reason=f"the check {exc}", check=type(rule).__name__)
            if rejection is not None:
                return rejection
        return None

    def check_all(self, proposal: ProposalContext) -> list[Rejection]:
        """Every check's rejection, for measuring the rules one by one."""
        return [rejection for rule in self.checks if (rejection := rule.check(proposal)) is not None]

    def describe(self) -> dict[str, Any]:
        return {"type": "ProposalGuard", "retries": self.retries, "checks": [rule.describe() for rule in self.checks]}
