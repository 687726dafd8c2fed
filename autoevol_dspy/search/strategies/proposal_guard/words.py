"""Words as the checks compare them: tokens, numbers, stop words, stems, and the mention of a name."""

from __future__ import annotations

import re


_WORD = re.compile(r"[A-Za-z][A-Za-z'_-]*|\d+(?:[.,/:]\d+)*")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,/:]\d+)*(?![\w])")
_NUMBER_PART = re.compile(r"[.,/:]")
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


def _content(text: str) -> set[str]:
    """The content words' stems of ``text`` and its numbers: what a text says, apart from its glue."""
    return _key_stems(text) | set(_NUMBER.findall(text))


def _mentions(text: str, name: str) -> bool:
    spaced = name.replace("_", " ")
    pattern = rf"(?<![A-Za-z0-9_])({re.escape(name)}|{re.escape(spaced)})(?![A-Za-z0-9_])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _key_stems(text: str) -> set[str]:
    words = [word.removesuffix("'s") for word in _lower_words(text)]  # the article's topic: "article"
    return {_stem(word) for word in words if word.isalpha() and len(word) > 2 and word not in _STOP_WORDS}
