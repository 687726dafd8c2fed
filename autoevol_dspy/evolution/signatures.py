"""DSPy signatures of the evol LM and the response LM.

The evolving method *is* the instructions of :class:`EvolveInstruction`; the evolved
instruction is its own output field, so a JSON adapter with constrained decoding (or any
adapter with a capable model) always yields one, and the method's words stay free text.
:class:`ExtendInstruction` is the narrower step for small models: it writes only what is
added, and the evolved instruction is the original followed by that addition.
"""

from __future__ import annotations

import dspy

__all__ = ["EvolveInstruction", "ExtendInstruction", "RespondToInstruction"]


class EvolveInstruction(dspy.Signature):
    """Rewrite the instruction into a more complex version (replaced by the evolving method)."""

    instruction: str = dspy.InputField(desc="the instruction to rewrite")
    evolved_instruction: str = dspy.OutputField(
        desc="the final rewritten instruction only: a request a user would send, not an answer to it"
    )


class ExtendInstruction(dspy.Signature):
    """Make the instruction harder by adding to it (replaced by the evolving method)."""

    instruction: str = dspy.InputField(desc="the request to make harder")
    added_requirement: str = dspy.OutputField(
        desc="one sentence appended to the request that asks the assistant for something more; never an answer"
    )


class RespondToInstruction(dspy.Signature):
    """Answer the instruction as a helpful assistant would."""

    instruction: str = dspy.InputField()
    response: str = dspy.OutputField(desc="the answer to the instruction")
