"""DSPy signatures for the four kinds of LM call in Auto Evol-Instruct.

The evolving method *is* the instructions of :class:`EvolveInstruction`; the analysis
and rewrite signatures are what the optimizer LM answers.
"""

from __future__ import annotations

import dspy

__all__ = ["AnalyseTrajectory", "EvolveInstruction", "RespondToInstruction", "RewriteInstructions"]


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


class AnalyseTrajectory(dspy.Signature):
    """Analyse a trajectory produced with the current instructions and report what failed.

    Go through every case. For each one that failed, quote the case number, name the
    problem and explain why it happened, in a way that someone improving the
    instructions can act on. Also note briefly what worked, so it can be kept.
    """

    current_instructions: str = dspy.InputField(desc="the instructions that produced the trajectory")
    trajectory: str = dspy.InputField(desc="the cases, with the stages or runs they produced")
    feedback: str = dspy.OutputField(desc="the failed cases with the reason each failed, then what worked")


class RewriteInstructions(dspy.Signature):
    """Improve the instructions so they fix the problems in the feedback.

    Keep everything that already works; change only what the feedback calls for; keep
    the instructions general (never mention a specific case), about as long as they
    are now, and in the same overall format. Output the complete improved instructions
    and nothing else.
    """

    current_instructions: str = dspy.InputField(desc="the current instructions")
    feedback: str = dspy.InputField(desc="the problems found when these instructions were used")
    improved_instructions: str = dspy.OutputField(desc="the complete improved instructions")
