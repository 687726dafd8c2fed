"""The evolving method as a DSPy module: its signature instructions are the method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dspy
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.errors import ConfigurationError, at_least
from autoevol_dspy.evolution.parsing import (
    final_instruction,
    parse_rewritten_instruction,
)
from autoevol_dspy.evolution.signatures import EvolveInstruction, ExtendInstruction
from autoevol_dspy.lm.health import watched_reply

__all__ = ["CONTEXT_HEADING", "EXTEND_DEMOS", "INITIAL_EXTEND_METHOD", "INITIAL_METHOD", "EvolInstruct", "EvolutionStep", "Style"]

Style = Literal["rewrite", "extend"]

#: How an instruction's context is shown to the evol and response LMs.
CONTEXT_HEADING = "The instruction refers to this input:"

_PLAN = "the ways to make this instruction more complex and the plan that applies several"

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


#: The initial method of the ``extend`` style: the same steps, for a model that writes only the addition.
INITIAL_EXTEND_METHOD = """\
You make instructions more complex by adding to them. Do not answer, solve or explain the \
instruction: write only what is added to it.

Step 1: Think of ways to make this particular instruction more complex, such as adding a \
constraint, asking for reasoning in several steps, making a general concept concrete, or \
widening the scope, in the same language.
Step 2: Choose the one that fits this instruction best.
Step 3: Write it as one or two sentences, about 10 to 20 words, that can be appended to \
the instruction and that a capable assistant could still answer."""

#: Worked examples that show a small model the reply the ``extend`` style expects (one math,
#: one writing, one coding request); saved with the program like any DSPy demos.
EXTEND_DEMOS: tuple[dict[str, str], ...] = (
    {"instruction": "Tom has 3 apples and buys 5 more. How many apples does he have?",
     "added_requirement": "Then he gives 2 to his sister; how many are left? Show each step."},
    {"instruction": "Write a short poem about the sea.",
     "added_requirement": "Use exactly three stanzas and end with a question."},
    {"instruction": "Write a Python function that reverses a string.",
     "added_requirement": "Do not use slicing, and explain its time complexity."},
)


@dataclass(frozen=True)
class EvolutionStep:
    """One round of evolution: the evolved instruction (``None`` when the reply held none) and the raw reply."""

    evolved: str | None
    reply: str
    parse_error: str | None = None


class EvolInstruct(dspy.Module):
    """Evolve an instruction with an evolving method, for one or more rounds.

    The method is the signature instructions of ``self.evolve``, so DSPy optimizers,
    ``save()`` and ``load()`` treat it as the program's parameter. ``style="rewrite"`` (the
    paper's) has the LM write the whole evolved instruction; ``style="extend"`` has it write
    only an addition, appended to the instruction, which small models manage far more often
    (it starts with :data:`EXTEND_DEMOS` as worked examples). ``plan=True`` adds a working
    field before the output, for models that do better planning first.
    """

    def __init__(self, method: str | None = None, *, rounds: int = 1, style: Style = "rewrite",
                 plan: bool = False) -> None:
        super().__init__()
        at_least("rounds", rounds)
        if style not in ("rewrite", "extend"):
            raise ConfigurationError(f"style must be 'rewrite' or 'extend', got {style!r}")
        self.rounds = rounds
        self.style = style
        signature = EvolveInstruction if style == "rewrite" else ExtendInstruction
        if plan:
            signature = signature.prepend("plan", dspy.OutputField(desc=_PLAN), type_=str)
        default = INITIAL_METHOD if style == "rewrite" else INITIAL_EXTEND_METHOD
        self.evolve = dspy.Predict(signature.with_instructions(method or default))
        if style == "extend":
            self.evolve.demos = [dspy.Example(**demo) for demo in EXTEND_DEMOS]

    @property
    def method(self) -> str:
        """The evolving method's text."""
        return self.evolve.signature.instructions

    @method.setter
    def method(self, text: str) -> None:
        self.evolve.signature = self.evolve.signature.with_instructions(text)

    @property
    def example_outputs(self) -> tuple[str, ...]:
        """What the worked examples (DSPy demos) of the evolving step wrote: an evolution must not copy them."""
        field = "added_requirement" if self.style == "extend" else "evolved_instruction"
        return tuple(str(demo.get(field)) for demo in self.evolve.demos if demo.get(field))

    def evolve_once(self, instruction: str, context: str | None = None) -> EvolutionStep:
        """Evolve ``instruction`` by one round; a reply that does not parse is kept for the marker fallback.

        ``context`` is material the instruction refers to (an Alpaca ``input``): the LM sees it,
        the evolved instruction still refers to it and does not include it.
        """
        shown = instruction if not context else f"{instruction}\n\n{CONTEXT_HEADING}\n{context}"
        try:
            with watched_reply(self.evolve.lm):
                prediction = self.evolve(instruction=shown)
        except AdapterParseError as exc:
            reply = str(exc.lm_response or "")
            # Free text that did not parse counts only through a known marker (the paper's format).
            evolved = parse_rewritten_instruction(reply, seed=instruction) if self.style == "rewrite" else None
            return EvolutionStep(evolved=evolved, reply=reply,
                                 parse_error=str(exc).splitlines()[0] if str(exc) else "parse error")
        if self.style == "extend":
            addition = " ".join(str(prediction.added_requirement or "").split())
            return EvolutionStep(evolved=f"{instruction.rstrip()} {addition}" if addition else None, reply=addition)
        text = "" if prediction.evolved_instruction is None else str(prediction.evolved_instruction)
        return EvolutionStep(evolved=final_instruction(text, seed=instruction), reply=text)

    def forward(self, instruction: str, context: str | None = None) -> dspy.Prediction:
        """Return ``evolved_instruction`` (``None`` if a round failed), every ``stages`` text and raw ``replies``."""
        stages, replies = [instruction], []
        for _ in range(self.rounds):
            step = self.evolve_once(stages[-1], context)
            replies.append(step.reply)
            if step.evolved is None:
                return dspy.Prediction(evolved_instruction=None, stages=stages, replies=replies)
            stages.append(step.evolved)
        return dspy.Prediction(evolved_instruction=stages[-1], stages=stages, replies=replies)
