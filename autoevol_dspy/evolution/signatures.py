"""DSPy signatures of the evol LM and the response LM.

The evolving method *is* the instructions of :class:`EvolveInstruction`.
"""

from __future__ import annotations

import dspy

__all__ = ["EvolveInstruction", "RespondToInstruction"]


class EvolveInstruction(dspy.Signature):
    """Rewrite the instruction into a more complex version (replaced by the evolving method)."""

    instruction: str = dspy.InputField(desc="the instruction to rewrite")
    rewrite: str = dspy.OutputField(
        desc="your work through each step of the method, ending with the final rewritten instruction"
    )


class RespondToInstruction(dspy.Signature):
    """Answer the instruction as a helpful assistant would."""

    instruction: str = dspy.InputField()
    response: str = dspy.OutputField(desc="the answer to the instruction")
