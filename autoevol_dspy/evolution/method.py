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
from autoevol_dspy.lm.context import is_local_lm
from autoevol_dspy.lm.health import watched_reply

__all__ = ["CONTEXT_HEADING", "EXTEND_DEMOS", "INITIAL_EXTEND_METHOD", "INITIAL_METHOD", "EvolInstruct", "EvolutionStep",
           "Style", "default_style"]

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


#: The initial method of the ``extend`` style, for a small model that writes only the addition. Short and
#: direct: on the embedded 135M model it answered fewer seeds than the four steps of the paper's shape
#: (benchmarks/evol_pilot.py, search seeds of GSM8K and MT-Bench; benchmarks/RESULTS.md).
INITIAL_EXTEND_METHOD = """\
You add one new requirement to a user's request, to make the request harder. Write only the \
added sentence: an instruction to the assistant, such as a constraint, an extra step, a format, \
or a related case to handle as well. Never answer, solve or explain the request, never state \
facts or results, and do not repeat the request."""

#: Worked examples of the ``extend`` style, written for this project from everyday domains (a balcony
#: plant, a ferry timetable, a note to a neighbour, a SQL query, stale bread). Not attached by default:
#: a 135M model pastes one of them under any instruction (measured: see benchmarks/RESULTS.md), which
#: the ``copied_example`` detector fails. Attach them for a model that follows examples::
#:
#:     program.evolve.demos = [dspy.Example(**demo) for demo in EXTEND_DEMOS]
EXTEND_DEMOS: tuple[dict[str, str], ...] = (
    {"instruction": "How often should I water a potted basil plant on a sunny balcony?",
     "added_requirement": "Give separate advice for summer and winter, and explain how to tell from the soil "
                          "when it needs water."},
    {"instruction": "A ferry leaves the harbour at 9:40 and docks on the island at 11:25. How long is the crossing?",
     "added_requirement": "Also find when it docks if it leaves 35 minutes late, and show each step."},
    {"instruction": "Write a note to my neighbour asking them to feed my cat while I am away.",
     "added_requirement": "Keep it under 80 words, name the days I am away, and end with a friendly question."},
    {"instruction": "Write a SQL query that lists the customers who placed no orders.",
     "added_requirement": "Use a LEFT JOIN instead of a subquery, and sort the result by the customer's last name."},
    {"instruction": "Why does bread go stale?",
     "added_requirement": "Explain it to a ten-year-old, and say whether the fridge slows it down or speeds it up."},
)


def default_style(lm: object | None = None) -> Style:
    """The evolving step that suits ``lm`` (default: the configured LM).

    ``"extend"`` for a model that runs in-process (``make_lm("local...")``: the embedded 135M
    model or a GGUF file on a laptop), which cannot rewrite a whole instruction without
    answering it; ``"rewrite"``, the paper's step, for any other LM (a server or an API).
    """
    lm = dspy.settings.lm if lm is None else lm
    return "extend" if is_local_lm(lm) else "rewrite"


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
    only an addition, appended to the instruction, which small models manage more often.
    :meth:`for_lm` picks the style for an LM (:func:`default_style`). ``plan=True`` adds a
    working field before the output, for models that do better planning first.
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

    @classmethod
    def for_lm(cls, lm: object | None = None, method: str | None = None, **kwargs: object) -> EvolInstruct:
        """An ``EvolInstruct`` in the style that suits ``lm`` (default: the configured LM): see :func:`default_style`."""
        return cls(method, style=default_style(lm), **kwargs)  # type: ignore[arg-type]

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
