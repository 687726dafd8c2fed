"""DSPy signatures of the evol LM and the response LM.

The evolving method *is* the instructions of :class:`EvolveInstruction`; the evolved
instruction is its own output field, so a JSON adapter with constrained decoding (or any
adapter with a capable model) always yields one, and the method's words stay free text.
:class:`ExtendInstruction` is the narrower step for small models: it writes only what is
added, a question to the assistant, and the evolved instruction is the original followed by it.
"""

from __future__ import annotations

from typing import Any

import dspy
from pydantic_core import core_schema

__all__ = ["ADDED_QUESTION_PATTERN", "AddedQuestion", "EvolveInstruction", "ExtendInstruction", "RespondToInstruction"]

#: The form of an addition in the JSON schema: one question to the assistant. Constrained decoding (the JSON
#: adapter on an in-process model) then writes only a question, and a 135M model stops answering the request
#: it was asked to extend (benchmarks/evol_pilot.py, benchmarks/RESULTS.md).
ADDED_QUESTION_PATTERN = (r"^(What|How|Why|Which|Who|When|Where|Can you|Could you|Would you) "
                          r"[A-Za-z0-9 ,'$%./-]{5,150}[?]$")


class AddedQuestion(str):
    """Text whose JSON schema asks for :data:`ADDED_QUESTION_PATTERN`; any text validates, so a reply written
    without constrained decoding (another adapter, a remote LM) is still read and left to the detectors."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(cls, core_schema.str_schema())

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: Any) -> dict[str, Any]:
        return {**handler(schema), "pattern": ADDED_QUESTION_PATTERN}


class EvolveInstruction(dspy.Signature):
    """Rewrite the instruction into a more complex version (replaced by the evolving method)."""

    instruction: str = dspy.InputField(desc="the instruction to rewrite")
    evolved_instruction: str = dspy.OutputField(
        desc="the final rewritten instruction only: a request a user would send, not an answer to it"
    )


class ExtendInstruction(dspy.Signature):
    """Make the instruction harder by adding to it (replaced by the evolving method)."""

    instruction: str = dspy.InputField(desc="the request to make harder")
    added_requirement: AddedQuestion = dspy.OutputField(
        desc="one question appended to the request that asks the assistant for something more; never an answer"
    )


class RespondToInstruction(dspy.Signature):
    """Answer the instruction as a helpful assistant would."""

    instruction: str = dspy.InputField()
    response: str = dspy.OutputField(desc="the answer to the instruction")
