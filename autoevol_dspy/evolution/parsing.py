"""Lenient parsing of an evolving method's reply into the final rewritten instruction.

Optimized methods rename their steps, so the parser tries the known final markers,
then their common renamings, then the content of the last step; a reply with none of
them is a failed evolution (``None``).
"""

from __future__ import annotations

import re

__all__ = ["FINAL_MARKERS", "parse_rewritten_instruction"]

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


def _after_last(pattern: re.Pattern[str], reply: str) -> str | None:
    matches = list(pattern.finditer(reply))
    if not matches:
        return None
    text = _clean(reply[matches[-1].end():])
    return text or None


def parse_rewritten_instruction(reply: str | None) -> str | None:
    """Return the final rewritten instruction in ``reply``, or ``None`` if there is none.

    Tries, in order: each known final marker (last occurrence wins), then the text of the
    last ``Step N`` section. Matching is case-insensitive and tolerates ``#``, ``**`` and
    ``:`` decorations around the marker.
    """
    if not reply or not reply.strip():
        return None
    for name in FINAL_MARKERS:
        words = r"[ \t]+".join(re.escape(word) for word in name.split())
        pattern = re.compile(_HEADING.format(name=words), re.IGNORECASE)
        found = _after_last(pattern, reply)
        if found:
            return found
    return _after_last(_STEP_HEADING, reply)
