"""Failure detectors for evolved instructions: small, swappable, each naming a category.

A detector looks at one :class:`EvolutionCase` (the parent instruction, the evolved
one, and the response LM's answer when it needs one) and returns a :class:`Failure` or
``None``. The evolution failure rate of a method is the share of dev cases for which
any detector reports a failure.

The texts come from models and seed files, so every pattern here matches in time linear
in its input (each part can match one way: atomic groups and possessive quantifiers of
the ``regex`` package, bounded repetition), and a case holds at most
:data:`~autoevol_dspy.text.MAX_CHECKED_CHARS` characters of each text.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

import dspy
import regex
from dspy.utils.exceptions import AdapterParseError
from pydantic import BaseModel

from autoevol_dspy.lm.context import adapter_context, use_lm
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.text import bounded, clip

__all__ = [
    "AnsweredInstead",
    "CopiedExample",
    "EchoesMethod",
    "EvolInstructRules",
    "EvolutionCase",
    "Failure",
    "FailureDetector",
    "LLMJudge",
    "LostKeyContent",
    "NearCopy",
    "PaperResponseRules",
    "Repetition",
    "default_detectors",
]


class Failure(BaseModel):
    """Why one case failed: a category to count and a reason to read."""

    category: str
    reason: str
    detector: str


@dataclass(frozen=True)
class EvolutionCase:
    """What the detectors judge: one instruction, its evolution, and the answer to it.

    ``examples``: the outputs of the worked examples (DSPy demos) the evolving LM was shown,
    which an evolution of another instruction must not copy. ``method``: the evolving method
    that made the evolution, whose words an evolution must not merely repeat ('' when unknown).
    Each text is :func:`~autoevol_dspy.text.bounded`: a megabyte of a model's loop is judged
    by its two ends, never read whole.
    """

    instruction: str
    evolved: str
    response: str | None = None
    examples: tuple[str, ...] = ()
    method: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "instruction", bounded(self.instruction))
        object.__setattr__(self, "evolved", bounded(self.evolved))
        if self.response is not None:
            object.__setattr__(self, "response", bounded(self.response))
        object.__setattr__(self, "examples", tuple(bounded(str(text)) for text in self.examples))
        object.__setattr__(self, "method", bounded(self.method))


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


_TOKENS = regex.compile(r"[a-z0-9']+")
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
    "evolved_instruction",  # the output fields of the evolving step, copied from the adapter's template
    "added_requirement",
)


def _normalized(text: str) -> str:
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


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


_IMPERATIVES = frozenset(  # verbs that open an instruction; nouns such as "report" or "study" are left out
    """act adapt add adjust amend analyse analyze answer apply argue arrange assess assign assume begin brainstorm
    build calculate categorize change check choose cite clarify classify combine come compare compile complete
    compose compute condense consider construct continue convert convince correct count craft create critique
    debug decide define demonstrate derive describe design determine develop devise diagnose discuss divide do
    draft draw edit elaborate embrace emphasize enhance ensure enumerate envision estimate evaluate examine
    expand explain explore express extend extract figure fill find finish fix format formulate generate give go
    guess help highlight identify illustrate imagine implement improve include incorporate indicate infer insert
    interpret introduce investigate justify keep list make mention merge modify name offer optimize organize
    outline paraphrase perform persuade pick picture plan polish predict prepare present pretend prioritize
    produce propose prove provide rank read recommend refactor refine reflect reformat reformulate remove rename
    rephrase replace reply respond restate restructure retell return review revise rewrite rework say select
    share shorten show simplify simulate sketch solve sort specify split state submit substitute suggest
    summarise summarize suppose tabulate take tell think transform translate try update use validate verify
    visualize weigh work write""".split()
)
_QUESTION_WORDS = frozenset(
    "how what which why who whom whose is are can could does do did should would will".split()
)
_REQUEST_PHRASES = regex.compile(
    r"\b(?:please|can you|could you|would you|i want you|i need|help me|your (?:task|job|goal)|"
    r"you are (?:given|asked|to)|you (?:should|must|have to)|wonder(?:s|ing)? (?:what|how|which|whether|if)|"
    r"wants? to know|would like to know)\b",
    regex.IGNORECASE,
)
_SENTENCE_BREAK = regex.compile(r"(?<=[.!?:;])\s+|\n+")
_CLAUSE_LEAD = regex.compile(  # a bullet, "and"/"then", quotes or brackets before a clause's first word
    r"^(?:[-*•#>]+|\(?[0-9a-z]{1,2}[.)])?\s*(?:and |then |also |now )*[\"'*(\[]*", regex.IGNORECASE
)
_STUB = regex.compile(r"^[ \t]*+def \w++[ \t]*+\(", regex.MULTILINE)
_CLAUSE_WORDS = regex.compile(r"[\w']+")


def _asks(text: str) -> bool:
    """Whether ``text`` has the form of a request: a question, an imperative clause, a request phrase or a code stub."""
    if "?" in text or _REQUEST_PHRASES.search(text) or _STUB.search(text):
        return True
    for sentence in _SENTENCE_BREAK.split(text):
        for position, clause in enumerate(sentence.split(", ")):
            words = _CLAUSE_WORDS.findall(_CLAUSE_LEAD.sub("", clause.strip()).lower())
            if not words:
                continue
            question = words[0] in _QUESTION_WORDS and (position == 0 or words[0] in ("how", "what"))
            if words[0] in _IMPERATIVES or question:  # "which"/"is" after a comma start relative clauses
                return True
    return False


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


def _kept_addition(parent: str, evolved: str) -> str | None:
    """What the evolved text adds after its parent (whitespace aside); ``None`` when it does not keep the parent."""
    flat_parent, flat = " ".join(parent.split()), " ".join(evolved.split())
    return flat[len(flat_parent):].strip() if flat_parent and flat.startswith(flat_parent) else None


def _appended(parent: str, evolved: str) -> str:
    """What follows the parent in the evolved text (whitespace aside), or what follows its last question; else ''."""
    added = _kept_addition(parent, evolved)
    if added is not None:
        return added
    flat = " ".join(evolved.split())
    return flat[flat.rindex("?") + 1:].strip() if "?" in flat else ""


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


_LETTER_WORDS = regex.compile(r"[a-z]+(?:'[a-z]+)?")
_LOWER_WORDS = regex.compile(r"[a-z]+")
_HYPHENATED_WORDS = regex.compile(r"[\w-]+")
_INITIAL_AT_END = regex.compile(r"\b[A-Z]\.$")
_POSSESSIVE = regex.compile(r"'s$")


def _letter_words(text: str) -> list[str]:
    return _LETTER_WORDS.findall(text.lower())


def _words_of_its_own(parent: str, text: str, *, known: frozenset[str] = frozenset()) -> list[str]:
    """The content words of ``text``, once each, whose stems are neither the parent's nor in ``known``."""
    seen = {_stem(word) for word in _letter_words(parent)} | known
    return [word for word in dict.fromkeys(_letter_words(text)) if word not in _STOP_WORDS and _stem(word) not in seen]


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


_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
_NUMBER_WORDS["dozen"] = "12"
_KEY_NUMBER_WORDS = set(_NUMBER_WORDS) - {"zero", "one", "dozen"}  # too often not a quantity ("no one", "a dozen of")
_DIGITS = regex.compile(r"(?<![A-Za-z_\d])(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])\.\d+")
_QUOTED = regex.compile(r"\"([^\"\n]+)\"|“([^”\n]+)”|(?<![A-Za-z])'([^'\n]+)'(?![A-Za-z])|`([^`\n]+)`")
_CAPITALISED = regex.compile(r"(?<![\w'])[A-Z][\w-]*")
_OPENERS = set(".!?:;*()[\"'“")  # a capitalised word right after one of these opens a sentence, a bullet or a quote
_TITLES = ("Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Prof.")
_DEFINED = regex.compile(r"^[ \t]*+def (\w++)[ \t]*+\(", regex.MULTILINE)
_IDENTIFIER = regex.compile(r"\b[A-Za-z]\w*_\w+\b")


def _numbers(text: str, words: set[str]) -> set[str]:
    """Numbers as canonical strings, so that 1,000 / 1000 / 1000.00 and 'three' / 3 compare equal."""
    found = set()
    for match in _DIGITS.finditer(text):
        found.add(format(Decimal(match.group(0).replace(",", "")).normalize(), "f"))
    found.update(_NUMBER_WORDS[w] for w in _LOWER_WORDS.findall(text.lower()) if w in words)
    return found


def _prose(text: str) -> str:
    """The part of a parent whose content must survive: for code, its docstrings without the worked examples."""
    names = _DEFINED.findall(text)
    if not names:
        return text
    docs = " \n".join(a or b for a, b in _DOCSTRING.findall(text))
    kept, after_prompt = [], False
    for line in docs.splitlines():
        stripped = line.strip()
        is_example = (
            stripped.startswith((">>>", "#", "Input:", "Output:"))
            or after_prompt
            or any(_calls(name, stripped) for name in names)
        )
        after_prompt = stripped.startswith(">>>")
        if not is_example:
            kept.append(line)
    return "\n".join(kept)


def _calls(name: str, line: str) -> bool:
    """Whether ``line`` calls the function ``name`` (a worked example in a docstring)."""
    start = line.find(name)
    while start >= 0:
        end = start + len(name)
        before_ok = start == 0 or not (line[start - 1].isalnum() or line[start - 1] == "_")
        if before_ok and line[end:].lstrip(" \t").startswith("("):
            return True
        start = line.find(name, start + 1)
    return False


def _names(text: str) -> set[str]:
    """Capitalised words that do not open a sentence (names, places, acronyms), without a possessive 's."""
    found = set()
    for match in _CAPITALISED.finditer(text):
        before = text[max(0, match.start() - 40) : match.start()]
        tail = before.rstrip()
        opens = match.start() == 0 or not tail or "\n" in before[len(tail) :] or tail[-1] in _OPENERS
        abbreviated = tail.endswith(_TITLES) or _INITIAL_AT_END.search(tail)
        if opens and not abbreviated:
            continue
        word = _POSSESSIVE.sub("", match.group(0))
        if word != "I":
            found.add(word)
    return found


class LostKeyContent:
    """Flags an evolution that drops its parent's numbers, quoted text, names or identifiers, or its request itself."""

    name = "lost_key_content"
    needs_response = False

    def __init__(self, *, max_missing: int = 0, require_request: bool = True) -> None:
        self.max_missing = max_missing
        self.require_request = require_request

    def describe(self) -> dict:
        return {"type": self.name, "max_missing": self.max_missing, "require_request": self.require_request}

    def detect(self, case: EvolutionCase) -> Failure | None:
        missing = self.missing(case.instruction, case.evolved)
        if len(missing) > self.max_missing:
            shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
            return self._fail(f"it drops {len(missing)} key item(s) of the parent: {shown}")
        if self.require_request and _asks(case.instruction) and not _asks(case.evolved):
            return self._fail("it keeps some content but drops the request itself")
        return None

    def missing(self, parent: str, evolved: str) -> list[str]:
        """The parent's key items (numbers, quotes, names, identifiers) that the evolved text lacks."""
        prose, lowered = _prose(parent), " ".join(evolved.lower().split())
        words = set(_HYPHENATED_WORDS.findall(lowered))
        numbers = _numbers(evolved, set(_NUMBER_WORDS))
        missing = [n for n in sorted(_numbers(prose, _KEY_NUMBER_WORDS)) if n not in numbers]
        for quote in _QUOTED.findall(prose):
            text = " ".join(next(q for q in quote if q).lower().split()).strip(string.punctuation + " ")
            if text and text not in lowered:
                missing.append(repr(text))
        names = _names(prose) | set(_DEFINED.findall(parent)) | set(_IDENTIFIER.findall(prose))
        missing += sorted(name for name in names if name.lower() not in words)
        return missing

    def _fail(self, reason: str) -> Failure:
        return Failure(category="lost_key_content", reason=reason, detector=self.name)


def _word_list(text: str) -> list[str]:
    """Lower-case words and numbers, without digits inside words ("top-2" -> "top"): a loop of counted items repeats."""
    return [word for word in _TOKENS.findall(text.lower()) if not word[0].isdigit()]


def _joined(words: list[str]) -> str:
    return " " + " ".join(words) + " "


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


def _stem(word: str) -> str:
    """A word without an -ing, -ed or -s ending: "added" and "adds" meet "add"."""
    for ending in ("ing", "ed", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[:-len(ending)]
    return word


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


def default_detectors() -> list[FailureDetector]:
    """Cheap rules on the evolved text first (they spare a response call), then the paper's rules on the response.

    A case counts under the first rule that flags it, so the later rules (repetition, a copied
    worked example) count only what the earlier ones let through.
    """
    return [EvolInstructRules(), AnsweredInstead(), NearCopy(), LostKeyContent(), Repetition(), CopiedExample(),
            EchoesMethod(), AsksNothingNew(), PaperResponseRules()]
