"""One evolution, judged: evolve an instruction round after round, answer each round, run the detectors.

The optimizer's evaluation and whole-dataset evolution both use :class:`Evolver`, so the
failure rate a method is selected on and the failure labels of the data it makes are
the same judgement. A failed round ends the chain; LM errors propagate (an outage is
not a failure of the method).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.evolution.detectors import (
    EvolutionCase,
    Failure,
    FailureDetector,
    default_detectors,
)
from autoevol_dspy.evolution.method import EvolInstruct
from autoevol_dspy.evolution.signatures import RespondToInstruction
from autoevol_dspy.lm.context import adapter_context, use_lm
from autoevol_dspy.lm.errors import is_context_overflow
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.text import short_error
from autoevol_dspy.timelimit import TimeLimitExceeded, call_with_time_limit

__all__ = ["DEFAULT_CHECK_TIME_LIMIT", "Evolver", "RoundResult"]

logger = logging.getLogger(__name__)

#: Seconds one detector may take on one case: minutes beyond any built-in rule (milliseconds) and
#: beyond an LLM judge's call on a busy local model.
DEFAULT_CHECK_TIME_LIMIT = 120.0


@dataclass(frozen=True)
class RoundResult:
    """One round: what was evolved, into what, the raw reply, the answer to it, and its failure if any."""

    parent: str
    evolved: str | None
    reply: str
    response: str | None
    failure: Failure | None


class Evolver:
    """Evolves and judges with one set of LMs, detectors and one meaning of ``respond``.

    ``respond``: the response LM answers every evolved instruction, and the detectors that
    need an answer judge it; without it those detectors judge the instruction alone.
    ``lm`` evolves (default: the configured LM); ``response_lm`` answers (default: ``lm``).
    ``adapter``: the DSPy adapter of these calls (default: JSON with constrained decoding for
    in-process models, the configured adapter otherwise).
    ``check_time_limit``: seconds one detector may take on one case (``None``: no limit); a
    detector that runs past it (a user's own, an LLM judge) fails the case as
    ``check_timeout`` with its reason, and the run goes on.
    """

    def __init__(
        self,
        *,
        detectors: Sequence[FailureDetector] | None = None,
        respond: bool = True,
        lm: dspy.LM | None = None,
        response_lm: dspy.LM | None = None,
        adapter: dspy.Adapter | None = None,
        check_time_limit: float | None = DEFAULT_CHECK_TIME_LIMIT,
    ) -> None:
        self.detectors = list(default_detectors() if detectors is None else detectors)
        self.check_time_limit = check_time_limit
        self.respond = respond
        self.lm = lm
        self.response_lm = response_lm
        self.adapter = adapter
        self._answer = dspy.Predict(RespondToInstruction)

    def describe(self) -> dict[str, Any]:
        """The settings that decide the judgement (no secrets), for resume checks and row metadata."""
        return {"detectors": [d.describe() if callable(getattr(d, "describe", None))
                              else {"type": getattr(d, "name", type(d).__name__)} for d in self.detectors],
                "respond": self.respond}

    def evolve_round(self, program: EvolInstruct, parent: str, context: str | None = None) -> RoundResult:
        """Evolve ``parent`` once with ``program``'s method and judge the result (``context``: its input)."""
        try:
            with lm_role("evolution"), use_lm(self.lm), adapter_context(self.adapter):
                step = program.evolve_once(parent, context)
        except Exception as exc:
            if not is_context_overflow(exc):
                raise
            failure = Failure(category="context_overflow", reason=short_error(exc), detector="evolution")
            return RoundResult(parent, None, "", None, failure)
        if step.evolved is None:
            reason = (f"the reply did not parse: {step.parse_error}" if step.parse_error
                      else "the reply held no evolved instruction")
            failure = Failure(category="unparseable_evolution", reason=reason, detector="evolution")
            return RoundResult(parent, None, step.reply, None, failure)
        examples = program.example_outputs if isinstance(program, EvolInstruct) else ()
        method = program.method if isinstance(program, EvolInstruct) else ""
        case = EvolutionCase(instruction=parent, evolved=step.evolved, examples=examples, method=method)
        failure = self._detect(case, after_response=False)
        response = None
        if failure is None and self.respond:
            try:
                response = self._respond_to(step.evolved if not context else f"{step.evolved}\n\n{context}")
            except Exception as exc:
                if not is_context_overflow(exc):
                    raise
                failure = Failure(category="context_overflow", reason=f"the answer did not fit: {short_error(exc)}",
                                  detector="response")
                return RoundResult(parent, step.evolved, step.reply, None, failure)
            case = EvolutionCase(instruction=parent, evolved=step.evolved, response=response, examples=examples,
                                 method=method)
            failure = self._detect(case, after_response=True)
        return RoundResult(parent, step.evolved, step.reply, response, failure)

    def evolve_chain(
        self,
        program: EvolInstruct,
        instruction: str,
        *,
        rounds: int,
        context: str | None = None,
        on_round: Callable[[int, RoundResult], None] | None = None,
        first_round: int = 1,
    ) -> list[RoundResult]:
        """Rounds ``first_round``..``rounds``, each evolving the last; stops at the first failed round."""
        results: list[RoundResult] = []
        parent = instruction
        for number in range(first_round, rounds + 1):
            result = self.evolve_round(program, parent, context)
            results.append(result)
            if on_round is not None:
                on_round(number, result)
            if result.failure is not None:
                break
            parent = result.evolved
        return results

    def _respond_to(self, instruction: str) -> str:
        """The response LM's answer; an answer that does not parse counts as empty."""
        try:
            with lm_role("response"), use_lm(self.response_lm or self.lm), adapter_context(self.adapter), \
                    watched_reply():
                return str(self._answer(instruction=instruction).response or "")
        except AdapterParseError as exc:
            logger.debug("a response did not parse: %s", short_error(exc))
            return ""

    def _detect(self, case: EvolutionCase, *, after_response: bool) -> Failure | None:
        """The first failure a detector finds: all of them before the answer, the answer's judges after it."""
        for detector in self.detectors:
            if after_response and not detector.needs_response:
                continue
            try:
                failure = call_with_time_limit(detector.detect, case, seconds=self.check_time_limit)
            except TimeLimitExceeded as exc:
                name = getattr(detector, "name", type(detector).__name__)
                return Failure(category="check_timeout", reason=f"the {name} check {exc}", detector=name)
            if failure is not None:
                return failure
        return None
