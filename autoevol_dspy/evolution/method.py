"""The evolving method as a DSPy module: its signature instructions are the method."""

from __future__ import annotations

import dspy

from autoevol_dspy.evolution.parsing import parse_rewritten_instruction
from autoevol_dspy.evolution.signatures import EvolveInstruction

__all__ = ["INITIAL_METHOD", "EvolInstruct"]

#: The project's wording of the paper's domain-free initial evolving method e0.
INITIAL_METHOD = """\
You are an Instruction Rewriter. Your job is to rewrite the given instruction into a \
more complex version that a capable assistant could still answer. Do not answer the \
instruction. Work through these steps:

Step 1 #Methods List#: List ways to make this particular instruction more complex, \
such as adding a constraint, asking for reasoning in several steps, making a general \
concept concrete, or widening the scope. Never make it more complex by changing its \
language.
Step 2 #Plan#: Choose several of the methods from the list and plan how to apply them \
to this instruction.
Step 3 #Rewritten Instruction#: Carry out the plan. The rewritten instruction may add \
only about 10 to 20 words to the original and must keep all of its key information.
Step 4 #Finally Rewritten Instruction#: Review the rewritten instruction, fix anything \
unreasonable, unclear or unanswerable, and write only the final rewritten instruction \
after this marker, with no explanation."""


class EvolInstruct(dspy.Module):
    """Evolve an instruction with an evolving method, for one or more rounds.

    The method is the signature instructions of ``self.evolve``, so DSPy optimizers,
    ``save()`` and ``load()`` treat it as the program's parameter.
    """

    def __init__(self, method: str | None = None, *, rounds: int = 1) -> None:
        super().__init__()
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}")
        self.rounds = rounds
        self.evolve = dspy.Predict(EvolveInstruction.with_instructions(method or INITIAL_METHOD))

    @property
    def method(self) -> str:
        """The evolving method's text."""
        return self.evolve.signature.instructions

    @method.setter
    def method(self, text: str) -> None:
        self.evolve.signature = self.evolve.signature.with_instructions(text)

    def forward(self, instruction: str) -> dspy.Prediction:
        """Return ``evolved_instruction`` (``None`` if a round failed), every ``stages`` text and raw ``replies``."""
        stages = [instruction]
        replies: list[str] = []
        current = instruction
        for _ in range(self.rounds):
            reply = self.evolve(instruction=current).rewrite
            replies.append(reply)
            evolved = parse_rewritten_instruction(reply)
            if evolved is None:
                return dspy.Prediction(evolved_instruction=None, stages=stages, replies=replies)
            stages.append(evolved)
            current = evolved
        return dspy.Prediction(evolved_instruction=current, stages=stages, replies=replies)
