"""DSPy signatures of the optimizer LM: analyse a trajectory, rewrite the instructions."""

from __future__ import annotations

import dspy

__all__ = ["AmendInstructions", "AnalyseTrajectory", "RewriteInstructions"]


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
    earlier_attempts: str = dspy.InputField(
        desc="earlier rewrites in this run and how they did on the dev set: build on what helped, "
        "do not repeat what failed"
    )
    improved_instructions: str = dspy.OutputField(
        desc="the complete improved instructions, and nothing else: no answer, no example case, no comment"
    )


class AmendInstructions(dspy.Signature):
    """Write one new rule to add at the end of the instructions, so that the problems in the feedback stop.

    The rule must be general: it applies to every case, never mentions a specific case,
    number or name, and is an instruction, not an answer or a question.
    """

    current_instructions: str = dspy.InputField(desc="the current instructions")
    feedback: str = dspy.InputField(desc="the problems found when these instructions were used")
    earlier_attempts: str = dspy.InputField(
        desc="earlier changes in this run and how they did on the dev set: do not repeat what failed"
    )
    new_rule: str = dspy.OutputField(desc="one general rule, one or two sentences, addressed to whoever follows "
                                          "the instructions")
