"""Which columns of an instruction file hold the instruction, its context and its response.

Hygiene reads any instruction file the package reads: seeds (``instruction`` and Alpaca's
``input``), evolved rows (``evolved_instruction``, ``context``, ``response``), TRL's
conversational ``messages`` and its ``prompt``/``completion`` pairs, and common question sets.
The instruction column is the one named, else the first of :data:`INSTRUCTION_COLUMNS` the
file has; the context and response columns are the first of theirs (none when absent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoevol_dspy.data.io import is_missing
from autoevol_dspy.errors import DataError

__all__ = ["CONTEXT_COLUMNS", "INSTRUCTION_COLUMNS", "RESPONSE_COLUMNS", "RowTexts", "TextColumns"]

#: Where an instruction is looked for, in order (``messages``: TRL's conversational format).
INSTRUCTION_COLUMNS = ("evolved_instruction", "instruction", "prompt", "messages", "question", "problem", "query",
                       "text")
#: The material an instruction refers to (Alpaca's ``input``).
CONTEXT_COLUMNS = ("context", "input")
#: The answer to an instruction.
RESPONSE_COLUMNS = ("response", "output", "completion", "answer", "solution")


@dataclass(frozen=True)
class RowTexts:
    """The texts of one row that hygiene compares."""

    instruction: str
    context: str
    response: str

    def prompt(self) -> str:
        """The instruction and its context: what duplicates are judged on."""
        return f"{self.instruction}\n{self.context}" if self.context else self.instruction

    def all(self) -> tuple[str, ...]:
        """Every text checked for benchmark leaks, each on its own (an n-gram never spans two)."""
        return tuple(text for text in (self.instruction, self.context, self.response) if text)


@dataclass(frozen=True)
class TextColumns:
    """The instruction, context and response columns of a file (the last two may be absent)."""

    instruction: str
    context: str | None = None
    response: str | None = None

    @classmethod
    def infer(cls, columns: Sequence[str], *, column: str | None = None, label: str) -> "TextColumns":
        """The columns of a file with these column names; ``column`` names the instruction's.

        A file of plain strings (no columns) is a list of instructions; one with none of the
        known instruction columns is refused, naming the columns it has."""
        if not columns:
            return cls(instruction=column or "instruction")
        if column is not None:
            if column not in columns:
                raise DataError(f"{label} has no column {column!r}; it has: {', '.join(map(str, columns))}")
            instruction = column
        else:
            instruction = next((name for name in INSTRUCTION_COLUMNS if name in columns), "")
            if not instruction:
                raise DataError(f"{label} has none of the instruction columns {', '.join(INSTRUCTION_COLUMNS)}; "
                                f"name one with --column (it has: {', '.join(map(str, columns))})")
        if instruction == "messages":
            return cls(instruction=instruction)
        others = [name for name in columns if name != instruction]
        return cls(instruction=instruction, context=next((n for n in CONTEXT_COLUMNS if n in others), None),
                   response=next((n for n in RESPONSE_COLUMNS if n in others), None))

    def describe(self) -> str:
        parts = [f"instruction {self.instruction!r}"]
        if self.context:
            parts.append(f"context {self.context!r}")
        if self.response:
            parts.append(f"response {self.response!r}")
        return ", ".join(parts)

    def texts(self, row: Any) -> RowTexts:
        """The row's texts ('' where a cell is empty or not text); a plain string is an instruction."""
        if not isinstance(row, dict):
            return RowTexts(_text(row), "", "")
        if self.instruction == "messages":
            return _conversation(row.get("messages"))
        return RowTexts(_text(row.get(self.instruction)), _text(row.get(self.context) if self.context else None),
                        _text(row.get(self.response) if self.response else None))


def _text(value: Any) -> str:
    """A cell as text: strings as they are, numbers written out, lists of strings joined by lines."""
    if is_missing(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "\n".join(item for item in value if isinstance(item, str))
    return ""


def _conversation(messages: Any) -> RowTexts:
    """A conversation's user turns as the instruction and the other turns as the response."""
    user, other = [], []
    for message in messages if isinstance(messages, (list, tuple)) else ():
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            (user if message.get("role") == "user" else other).append(message["content"])
    return RowTexts("\n".join(user), "", "\n".join(other))
