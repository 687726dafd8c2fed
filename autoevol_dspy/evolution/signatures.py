"""DSPy signatures of the evol LM and the response LM.

The evolving method *is* the instructions of :class:`EvolveInstruction`; the evolved
instruction is its own output field, so a JSON adapter with constrained decoding (or any
adapter with a capable model) always yields one, and the method's words stay free text.
"""

from __future__ import annotations

import dspy

__all__ = ["EvolveInstruction", "PlannedEvolveInstruction", "RespondToInstruction"]


class EvolveInstruction(dspy.Signature):
    """Rewrite the instruction into a more complex version (replaced by the evolving method)."""

    instruction: str = dspy.InputField(desc="the instruction to rewrite")
    evolved_instruction: str = dspy.OutputField(
        desc="the final rewritten instruction only: a request a user would send, not an answer to it"
    )


#: The same step with a working field first, for models that do better when they plan before writing.
PlannedEvolveInstruction = EvolveInstruction.prepend(
    "plan",
    dspy.OutputField(desc="the ways to make this instruction more complex and the plan that applies several"),
    type_=str,
)


class RespondToInstruction(dspy.Signature):
    """Answer the instruction as a helpful assistant would."""

    instruction: str = dspy.InputField()
    response: str = dspy.OutputField(desc="the answer to the instruction")
