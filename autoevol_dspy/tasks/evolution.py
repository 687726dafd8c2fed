"""The instruction-data task of the paper: evolve, answer, judge with failure detectors."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dspy
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.evolution.detectors import (
    EvolutionCase,
    Failure,
    FailureDetector,
    default_detectors,
)
from autoevol_dspy.evolution.parsing import parse_rewritten_instruction
from autoevol_dspy.evolution.signatures import RespondToInstruction
from autoevol_dspy.lm.context import use_lm
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.tasks.base import CaseResult
from autoevol_dspy.text import clip, short_error

__all__ = ["EvolutionTask"]

logger = logging.getLogger(__name__)

_ANALYSIS_GUIDANCE = """\
The instructions are an evolving method: a prompt that tells a rewriter how to turn an \
instruction into a more complex one. Each case shows an instruction (stage 0) and what \
the method made of it (stage 1 onwards); every stage must be strictly more complex than \
the one before while staying answerable. Look for these problems: complexity did not \
increase; the rewriter answered or solved the instruction instead of rewriting it; the \
new instruction is unsolvable, contradictory or unrealistic; key information from the \
original was lost; irrelevant complexity was added; the new instruction is unclear; the \
reply did not end with the final rewritten instruction after its final marker."""

_REWRITE_GUIDANCE = """\
The instructions are an evolving method for rewriting instructions into more complex \
ones. Keep its step-by-step structure, and keep the rule that the reply ends with the \
final rewritten instruction after the marker #Finally Rewritten Instruction#."""


class EvolutionTask:
    """Evolve one seed with the method, let the response LM answer, and run the detectors."""

    kind = "evolution"
    analysis_guidance = _ANALYSIS_GUIDANCE
    rewrite_guidance = _REWRITE_GUIDANCE

    def __init__(
        self,
        *,
        detectors: Sequence[FailureDetector] | None = None,
        evol_lm: dspy.LM | None = None,
        response_lm: dspy.LM | None = None,
        input_field: str = "instruction",
    ) -> None:
        self.detectors = list(default_detectors() if detectors is None else detectors)
        self.evol_lm = evol_lm
        self.response_lm = response_lm
        self.input_field = input_field
        self.respond = dspy.Predict(RespondToInstruction)

    def run_case(self, program: dspy.Module, example: dspy.Example, index: int) -> CaseResult:
        instruction = str(example[self.input_field])
        inputs = {self.input_field: instruction}
        try:
            with lm_role("evolution"), use_lm(self.evol_lm):
                prediction = program(instruction=instruction)
        except AdapterParseError as exc:
            return _failed(index, inputs, {}, "unparseable_evolution", f"the reply did not parse: {short_error(exc)}")
        stages = list(getattr(prediction, "stages", None) or [instruction])
        evolved = getattr(prediction, "evolved_instruction", None)
        if evolved is None and not hasattr(prediction, "stages"):
            evolved = parse_rewritten_instruction(getattr(prediction, "rewrite", None))
        outputs: dict = {"stages": stages}
        replies = getattr(prediction, "replies", None)
        if replies:
            outputs["reply"] = replies[-1]
        if not evolved:
            return _failed(index, inputs, outputs, "unparseable_evolution", "no final rewritten instruction found")
        case = EvolutionCase(instruction=stages[-2] if len(stages) > 1 else instruction, evolved=evolved)
        failure = self._detect(case)
        if failure is None and any(d.needs_response for d in self.detectors):
            try:
                with lm_role("response"), use_lm(self.response_lm):
                    response = self.respond(instruction=evolved).response
            except AdapterParseError as exc:
                response = ""
                logger.debug("response did not parse for case %d: %s", index, exc)
            outputs["response"] = response
            case = EvolutionCase(instruction=case.instruction, evolved=evolved, response=response)
            failure = self._detect(case, needs_response=True)
        return CaseResult(index=index, inputs=inputs, outputs=outputs, failure=failure)

    def _detect(self, case: EvolutionCase, *, needs_response: bool | None = None) -> Failure | None:
        for detector in self.detectors:
            if needs_response is not None and detector.needs_response != needs_response:
                continue
            failure = detector.detect(case)
            if failure is not None:
                return failure
        return None

    def format_trajectory(self, results: list[CaseResult]) -> str:
        blocks = []
        for number, result in enumerate(results, start=1):
            lines = [f"Case {number}"]
            for stage, text in enumerate(result.outputs.get("stages") or [result.inputs[self.input_field]]):
                lines.append(f"  Stage {stage}: {clip(text, 600)}")
            if len(result.outputs.get("stages") or []) < 2 and result.outputs.get("reply"):
                lines.append(f"  Rewriter's reply (no final instruction found): {clip(result.outputs['reply'], 400)}")
            if result.outputs.get("response"):
                lines.append(f"  Answer to the last stage: {clip(result.outputs['response'], 300)}")
            if result.failure is not None:
                lines.append(f"  Detected problem: {result.failure.category} ({result.failure.reason})")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def validate_candidate(self, predictor: str, text: str) -> str | None:
        if len(text.split()) < 8:
            return "the proposed method is too short to be a method"
        return None


def _failed(index: int, inputs: dict, outputs: dict, category: str, reason: str) -> CaseResult:
    failure = Failure(category=category, reason=reason, detector="evolution")
    return CaseResult(index=index, inputs=inputs, outputs=outputs, failure=failure)
