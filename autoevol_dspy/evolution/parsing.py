"""Lenient parsing of a free-text reply into the final rewritten instruction (the paper's marker format).

The evolved instruction normally arrives in its own typed field; this parser is the
fallback for methods written in the paper's format (``#Finally Rewritten Instruction#``)
and for models that put their whole working into the field. It tries the known final
markers, then their common renamings, then the content of the last step; a reply with
none of them is a failed evolution (``None``). A marker that is part of the seed's own
text (echoed by the model) never counts, so a seed cannot choose its own evolution.
"""

from __future__ import annotations

import functools
import re

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
_HEADING = r"(?:^|\n)[ \t]*(?:Step[ \t]*\d+[ \t]*)?(?:#+|\*\*|__)?[ \t]*(?:{name})[ \t]*(?:#+|\*\*|__)?[ \t]*:?[ \t]*"
_STEP_HEADING = re.compile(
    r"(?:^|\n)[ \t]*(?:#+|\*\*)?[ \t]*Step[ \t]*\d+[ \t]*(?:#[^#\n]*#|\*\*[^*\n]*\*\*|[^:\n]*)?"
    r"[ \t]*(?:#+|\*\*)?[ \t]*:?[ \t]*",
    re.IGNORECASE,
)
_TEMPLATE_LEFTOVERS = re.compile(r"^[\s#*:>\-]+|[\s#*]+$")


def _clean(text: str) -> str:
    text = _TEMPLATE_LEFTOVERS.sub("", text.strip())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _echoes_seed(reply: str, match: re.Match[str], seed: str | None) -> bool:
    """Whether the marker line at ``match`` is a copy of a line of the seed (the model echoing it)."""
    if not seed:
        return False
    start = match.start() + (1 if reply[match.start()] == "\n" else 0)
    end = reply.find("\n", match.end())
    line = " ".join(reply[start:end if end >= 0 else len(reply)].split())
    return bool(line) and line in " ".join(seed.split())


def _after_last(pattern: re.Pattern[str], reply: str, seed: str | None) -> str | None:
    matches = [m for m in pattern.finditer(reply) if not _echoes_seed(reply, m, seed)]
    if not matches:
        return None
    text = _clean(reply[matches[-1].end():])
    return text or None


def parse_rewritten_instruction(reply: str | None, *, seed: str | None = None) -> str | None:
    """Return the final rewritten instruction in ``reply``, or ``None`` if there is none.

    Tries, in order: each known final marker (last occurrence wins), then the text of the
    last ``Step N`` section. Matching is case-insensitive and tolerates ``#``, ``**`` and
    ``:`` decorations around the marker. With ``seed``, markers on lines copied from the
    seed are ignored.
    """
    if not reply or not reply.strip():
        return None
    for pattern in _final_patterns():
        found = _after_last(pattern, reply, seed)
        if found:
            return found
    return _after_last(_STEP_HEADING, reply, seed)


@functools.cache
def _final_patterns() -> tuple[re.Pattern[str], ...]:
    """One compiled heading pattern per final marker, built once (every evolution reply is parsed)."""
    return tuple(re.compile(_HEADING.format(name=r"[ \t]+".join(re.escape(word) for word in name.split())),
                            re.IGNORECASE) for name in FINAL_MARKERS)


def final_instruction(text: str | None, *, seed: str | None = None) -> str | None:
    """The evolved instruction in a typed field: the text after a final marker if it has one, else all of it."""
    if not text or not text.strip():
        return None
    return parse_rewritten_instruction(text, seed=seed) or _clean(text) or None
