"""Lenient parsing of a free-text reply into the final rewritten instruction (the paper's marker format).

The evolved instruction normally arrives in its own typed field; this parser is the
fallback for methods written in the paper's format (``#Finally Rewritten Instruction#``)
and for models that put their whole working into the field. It tries the known final
markers, then their common renamings, then the content of the last step; a reply with
none of them is a failed evolution (``None``). A marker that is part of the seed's own
text (echoed by the model) never counts, so a seed cannot choose its own evolution.

Every part of a heading pattern matches one way (possessive quantifiers of the ``regex``
package), so a reply of a million spaces and hashes is parsed in linear time.
"""

from __future__ import annotations

import regex

__all__ = ["FINAL_MARKERS", "final_instruction", "parse_rewritten_instruction"]

#: Final markers used by the paper's methods and the usual renamings, most specific first.
FINAL_MARKERS: tuple[str, ...] = (
    "Finally Rewritten Instruction",
    "Final Rewritten Instruction",
    "Final Instruction",
    "Rewritten Instruction",
    "Evolved Instruction",
    "New Instruction",
    "Final Version",
    "Final Answer",
)

# A heading such as "#Finally Rewritten Instruction#:", "**Final Rewritten Instruction**",
# "### Rewritten Instruction:" or "Final Rewritten Instruction:" at the start of a line.
_HEADING = (r"(?:^|\n)[ \t]*+(?:Step[ \t]*+\d++[ \t]*+)?+(?:#++|\*\*|__)?+[ \t]*+(?:{name})"
            r"[ \t]*+(?:#++|\*\*|__)?+[ \t]*+:?+[ \t]*+")
_STEP_HEADING = regex.compile(
    r"(?:^|\n)[ \t]*+(?:#++|\*\*)?+[ \t]*+Step[ \t]*+\d++[ \t]*+(?:#[^#\n]*+#|\*\*[^*\n]*+\*\*|[^:\n]*+)?+"
    r"[ \t]*+(?:#++|\*\*)?+[ \t]*+:?+[ \t]*+",
    regex.IGNORECASE,
)
#: One compiled heading pattern per final marker (every evolution reply is parsed).
_FINAL_PATTERNS: tuple[regex.Pattern[str], ...] = tuple(
    regex.compile(_HEADING.format(name=r"[ \t]++".join(regex.escape(word) for word in name.split())), regex.IGNORECASE)
    for name in FINAL_MARKERS
)
_LEADING_LEFTOVERS = "#*:>-"  # template decoration left before the instruction (besides whitespace)
_TRAILING_LEFTOVERS = "#*"


def _strip_leftovers(text: str) -> str:
    """``text`` without the whitespace and template decoration around it (plain code: linear on any input)."""
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or text[start] in _LEADING_LEFTOVERS):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _TRAILING_LEFTOVERS):
        end -= 1
    return text[start:end]


def _clean(text: str) -> str:
    text = _strip_leftovers(text.strip())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _echoes_seed(reply: str, match: regex.Match[str], flat_seed: str) -> bool:
    """Whether the marker line at ``match`` is a copy of a line of the seed (``flat_seed``: its words, one space apart)."""
    if not flat_seed:
        return False
    start = match.start() + (1 if reply[match.start()] == "\n" else 0)
    end = reply.find("\n", match.end())
    line = reply[start:end if end >= 0 else len(reply)]
    if len(line.strip()) > len(flat_seed):
        return False
    line = " ".join(line.split())
    return bool(line) and line in flat_seed


def _after_last(pattern: regex.Pattern[str], reply: str, seed: str | None) -> str | None:
    """The text after the last heading that is not the seed's own (the seed is flattened once)."""
    flat_seed = " ".join(seed.split()) if seed else ""
    for match in reversed(list(pattern.finditer(reply))):
        if not _echoes_seed(reply, match, flat_seed):
            return _clean(reply[match.end():]) or None
    return None


def parse_rewritten_instruction(reply: str | None, *, seed: str | None = None) -> str | None:
    """Return the final rewritten instruction in ``reply``, or ``None`` if there is none.

    Tries, in order: each known final marker (last occurrence wins), then the text of the
    last ``Step N`` section. Matching is case-insensitive and tolerates ``#``, ``**`` and
    ``:`` decorations around the marker. With ``seed``, markers on lines copied from the
    seed are ignored.
    """
    if not reply or not reply.strip():
        return None
    for pattern in _FINAL_PATTERNS:
        found = _after_last(pattern, reply, seed)
        if found:
            return found
    return _after_last(_STEP_HEADING, reply, seed)


def final_instruction(text: str | None, *, seed: str | None = None) -> str | None:
    """The evolved instruction in a typed field: the text after a final marker if it has one, else all of it."""
    if not text or not text.strip():
        return None
    return parse_rewritten_instruction(text, seed=seed) or _clean(text) or None
