"""Words as the detectors compare them: tokens, stop words, stems, and what an evolution adds to its parent."""

from __future__ import annotations

import string

import regex


_TOKENS = regex.compile(r"[a-z0-9']+")
_STOP_WORDS = frozenset(
    """a an the and or but if then else of to in on at by for with from as is are was were be been being
    it its this that these those i you he she we they me him her us them my your our their not no yes
    do does did done so such can could will would shall should may might must have has had there here
    what which who whom whose when where why how all any each few more most other some than too very
    just also only own same ok okay""".split()
)


def _normalized(text: str) -> str:
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


def _stem(word: str) -> str:
    """A word without an -ing, -ed or -s ending: "added" and "adds" meet "add"."""
    for ending in ("ing", "ed", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[:-len(ending)]
    return word


_LETTER_WORDS = regex.compile(r"[a-z]+(?:'[a-z]+)?")


def _letter_words(text: str) -> list[str]:
    return _LETTER_WORDS.findall(text.lower())


def _words_of_its_own(parent: str, text: str, *, known: frozenset[str] = frozenset()) -> list[str]:
    """The content words of ``text``, once each, whose stems are neither the parent's nor in ``known``."""
    seen = {_stem(word) for word in _letter_words(parent)} | known
    return [word for word in dict.fromkeys(_letter_words(text)) if word not in _STOP_WORDS and _stem(word) not in seen]


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


def _joined(words: list[str]) -> str:
    return " " + " ".join(words) + " "
