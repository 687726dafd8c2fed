"""The evolving method as a DSPy module: its signature instructions are the method."""

from __future__ import annotations

from dataclasses import dataclass

import dspy
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.evolution.parsing import final_instruction
from autoevol_dspy.evolution.signatures import (
    EvolveInstruction,
    PlannedEvolveInstruction,
)

__all__ = ["INITIAL_METHOD", "EvolInstruct", "EvolutionStep"]

#: The project's wording of the paper's domain-free initial evolving method e0 (typed: the final
#: instruction goes in the ``evolved_instruction`` field, so no marker is needed).
INITIAL_METHOD = """\
You are an Instruction Rewriter. Rewrite the given instruction into a more complex version \
that a capable assistant could still answer. Do not answer, solve or explain the instruction: \
your output is a new instruction.

Step 1: List ways to make this particular instruction more complex, such as adding a \
constraint, asking for reasoning in several steps, making a general concept concrete, or \
widening the scope. Never make it more complex by changing its language.
Step 2: Choose several of these ways and plan how to apply them to this instruction.
Step 3: Carry out the plan. Add only about 10 to 20 words to the original, and keep all of \
its key information: its numbers, names and quoted text.
Step 4: Review the rewritten instruction, fix anything unreasonable, unclear or \
unanswerable, and give only the final rewritten instruction in `evolved_instruction`."""


@dataclass(frozen=True)
class EvolutionStep:
    """One round of evolution: the evolved instruction (``None`` when the reply held none) and the raw reply."""

    evolved: str | None
    reply: str
    parse_error: str | None = None


class EvolInstruct(dspy.Module):
    """Evolve an instruction with an evolving method, for one or more rounds.

    The method is the signature instructions of ``self.evolve``, so DSPy optimizers,
    ``save()`` and ``load()`` treat it as the program's parameter. ``plan=True`` adds a
    working field before the evolved instruction, for models that do better planning first.
    """

    def __init__(self, method: str | None = None, *, rounds: int = 1, plan: bool = False) -> None:
        super().__init__()
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}")
        self.rounds = rounds
        signature = PlannedEvolveInstruction if plan else EvolveInstruction
        self.evolve = dspy.Predict(signature.with_instructions(method or INITIAL_METHOD))

    @property
    def method(self) -> str:
        """The evolving method's text."""
        return self.evolve.signature.instructions

    @method.setter
    def method(self, text: str) -> None:
        self.evolve.signature = self.evolve.signature.with_instructions(text)

    def evolve_once(self, instruction: str) -> EvolutionStep:
        """Evolve ``instruction`` by one round; a reply that does not parse is kept for the marker fallback."""
        try:
            text = self.evolve(instruction=instruction).evolved_instruction
        except AdapterParseError as exc:
            reply = str(exc.lm_response or "")
            return EvolutionStep(evolved=final_instruction(reply, seed=instruction) if reply.strip() else None,
                                 reply=reply, parse_error=str(exc).splitlines()[0] if str(exc) else "parse error")
        text = "" if text is None else str(text)
        return EvolutionStep(evolved=final_instruction(text, seed=instruction), reply=text)

    def forward(self, instruction: str) -> dspy.Prediction:
        """Return ``evolved_instruction`` (``None`` if a round failed), every ``stages`` text and raw ``replies``."""
        stages, replies = [instruction], []
        for _ in range(self.rounds):
            step = self.evolve_once(stages[-1])
            replies.append(step.reply)
            if step.evolved is None:
                return dspy.Prediction(evolved_instruction=None, stages=stages, replies=replies)
            stages.append(step.evolved)
        return dspy.Prediction(evolved_instruction=stages[-1], stages=stages, replies=replies)
