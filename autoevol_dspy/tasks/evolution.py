"""The instruction-data task of the paper: evolve, answer, judge with failure detectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dspy

from autoevol_dspy.data.splits import as_examples
from autoevol_dspy.errors import ConfigurationError, at_least
from autoevol_dspy.evolution.detectors import FailureDetector
from autoevol_dspy.evolution.method import EvolInstruct
from autoevol_dspy.evolution.unit import Evolver
from autoevol_dspy.tasks.base import CaseResult, apply_instructions, lm_name, lm_sampling
from autoevol_dspy.text import clip

__all__ = ["EvolutionTask"]

_ANALYSIS_GUIDANCE = """\
The instructions are an evolving method: a prompt that tells a rewriter how to turn an \
instruction into a more complex one. Each case shows an instruction (stage 0) and what \
the method made of it (stage 1 onwards); every stage must be strictly more complex than \
the one before while staying answerable. Look for these problems: complexity did not \
increase; the rewriter answered or solved the instruction instead of rewriting it; the \
new instruction is unsolvable, contradictory or unrealistic; key information from the \
original was lost; irrelevant complexity was added; the new instruction is unclear."""

_REWRITE_GUIDANCE = """\
The instructions are an evolving method for rewriting instructions into more complex \
ones. Keep its step-by-step structure and its rule that the rewriter outputs only the \
final rewritten instruction."""


# For an addition that says the request's own question again: ask about a variation of it instead (the best of
# seven edits tried on benchmarks/evol_pilot.py's search seeds with a throwaway harness, embedded model: MT-Bench
# second turns 34 -> 41 of 80 passed, GSM8K no better; held out it is no better either: RESULTS.md, quality).
_ASK_A_VARIATION = "Ask what changes if one number or condition of the request changes."

_EDIT_HINTS = {
    "answered_instead": "Never answer, solve or explain the instruction: output only the new instruction, which "
                        "still asks for the same thing.",
    "lost_key_content": "Keep every number, name and quoted text of the original instruction in the new one.",
    "near_copy": "Make a real change: add one new requirement or constraint that makes the instruction harder.",
    "unchanged": "Make a real change: add one new requirement or constraint that makes the instruction harder.",
    "no_information_gain": "Make a real change: add one new requirement or constraint that makes the instruction "
                           "harder.",
    "repeats_itself": _ASK_A_VARIATION,
    "asks_nothing_new": _ASK_A_VARIATION,
    "copied_template": "Output only the new instruction itself, with no headings, markers or template words.",
    "unparseable_evolution": "Output the whole new instruction and nothing before or after it.",
    "loss_of_key_information": "Keep the new instruction complete and self-contained: everything needed to answer it "
                               "must be in it.",
    "insufficient_qualification": "Keep the new instruction complete and self-contained: everything needed to answer "
                                  "it must be in it.",
    "stagnant_complexity": "Make sure the new instruction asks for something concrete to do.",
    "short_apology": "Keep the new instruction realistic and answerable.",
    "empty_response": "Keep the new instruction realistic and answerable.",
}


class EvolutionTask:
    """Evolve each seed with the method for ``rounds`` rounds, answering and judging every round.

    ``lm`` evolves (default: the run's LM), ``response_lm`` answers (default: ``lm``);
    ``respond=False`` skips the answers (and the detectors judge the instruction alone).
    """

    analysis_guidance = _ANALYSIS_GUIDANCE
    rewrite_guidance = _REWRITE_GUIDANCE
    #: One general edit of the method per failure category, for the edit library (proposal sources).
    edit_hints = _EDIT_HINTS

    def __init__(
        self,
        *,
        lm: dspy.LM | None = None,
        response_lm: dspy.LM | None = None,
        detectors: Sequence[FailureDetector] | None = None,
        rounds: int = 1,
        respond: bool = True,
        input_field: str = "instruction",
        adapter: dspy.Adapter | None = None,
    ) -> None:
        self.rounds = at_least("rounds", rounds)
        self.input_field = input_field
        self.evolver = Evolver(detectors=detectors, respond=respond, lm=lm, response_lm=response_lm, adapter=adapter)

    @property
    def detectors(self) -> list[FailureDetector]:
        return self.evolver.detectors

    def describe(self) -> dict[str, Any]:
        return {"type": "EvolutionTask", "rounds": self.rounds, "input_field": self.input_field,
                **self.evolver.describe(), "lm": lm_name(self.evolver.lm),
                "response_lm": lm_name(self.evolver.response_lm), "lm_sampling": lm_sampling(self.evolver.lm),
                "response_sampling": lm_sampling(self.evolver.response_lm)}

    def examples(self, items: Sequence[Any], *, name: str) -> list[dspy.Example]:
        return as_examples(items, input_field=self.input_field, name=name)

    def check(self, student: dspy.Module, *, default_lm: dspy.LM | None) -> None:
        if not callable(getattr(student, "evolve_once", None)):
            raise ConfigurationError(
                f"an EvolutionTask optimizes an EvolInstruct method, got a {type(student).__name__}; "
                "pass metric= (or task=ProgramTask(...)) to compile any other program"
            )
        if self.evolver.lm is None and default_lm is None:
            raise ConfigurationError("no LM to evolve with: pass lm= to AutoEvolInstruct or to the "
                                     "EvolutionTask, or call dspy.configure(lm=...)")

    def program_for(self, student: dspy.Module, instructions: dict[str, str]) -> dspy.Module:
        return apply_instructions(student, instructions)

    def run_case(self, program: EvolInstruct, example: dspy.Example, index: int) -> CaseResult:
        instruction = str(example[self.input_field])
        context = example.get("context") or None
        rounds = self.evolver.evolve_chain(program, instruction, rounds=self.rounds, context=context)
        stages = [instruction] + [r.evolved for r in rounds if r.evolved is not None]
        replies = [r.reply for r in rounds]
        responses = [r.response for r in rounds if r.response is not None]
        view = [("seed" if i == 0 else f"round {i}", str(text)) for i, text in enumerate(stages)]
        view += [("response", str(responses[-1]))] if responses else []
        view += [("reply", str(replies[-1]))] if len(replies) >= len(stages) and replies[-1] else []
        return CaseResult(index=index, inputs={self.input_field: instruction}, failure=rounds[-1].failure,
                          outputs={"stages": stages, "replies": replies, "responses": responses}, view=view)

    def format_trajectory(self, results: list[CaseResult]) -> str:
        blocks = []
        for number, result in enumerate(results, start=1):
            lines = [f"Case {number}"]
            stages = result.outputs.get("stages") or [result.inputs.get(self.input_field, "")]
            lines += [f"  Stage {stage}: {clip(text, 600)}" for stage, text in enumerate(stages)]
            replies = result.outputs.get("replies") or []
            if len(stages) <= len(replies) and replies and replies[-1]:
                lines.append(f"  Rewriter's reply (no evolved instruction in it): {clip(replies[-1], 400)}")
            responses = result.outputs.get("responses") or []
            if responses:
                lines.append(f"  Answer to the last stage: {clip(responses[-1], 300)}")
            if result.failure is not None:
                lines.append(f"  Detected problem: {result.failure.category} ({result.failure.reason})")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def validate_candidate(self, predictor: str, text: str) -> str | None:
        if len(text.split()) < 8:
            return "the proposed method is too short to be a method"
        return None
