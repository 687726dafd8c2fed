"""An evolution that drops its parent's numbers, quoted text, names, identifiers or request."""

from __future__ import annotations

import string
from decimal import Decimal

import regex

from autoevol_dspy.evolution.detectors.answered import _DOCSTRING
from autoevol_dspy.evolution.detectors.base import EvolutionCase, Failure
from autoevol_dspy.evolution.detectors.requests import _asks

_LOWER_WORDS = regex.compile(r"[a-z]+")
_HYPHENATED_WORDS = regex.compile(r"[\w-]+")
_INITIAL_AT_END = regex.compile(r"\b[A-Z]\.$")
_POSSESSIVE = regex.compile(r"'s$")
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
