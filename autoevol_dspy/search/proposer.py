"""The optimizer LM's two moves: analyse a trajectory, then rewrite the instructions.

Each of the m samples gets its own ``rollout_id`` at a temperature above zero, so the
samples really differ (the official script sampled at temperature 0 and got m copies)
and a resumed run replays the same samples from DSPy's cache.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dspy

from autoevol_dspy.lm.context import adapter_context, use_lm
from autoevol_dspy.lm.errors import LMOutageError, is_lm_error
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.parallel import run_parallel
from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.search.signatures import AmendInstructions, AnalyseTrajectory, RewriteInstructions
from autoevol_dspy.search.strategies.proposal_guard import (
    CopiesTrajectory,
    NotAnInstruction,
    ProposalContext,
    ProposalGuard,
    Rejection,
    RepeatsItself,
    retry_feedback,
)
from autoevol_dspy.tasks.base import OptimizationTask
from autoevol_dspy.text import clip, short_error

__all__ = ["NO_HISTORY", "InstructionProposer", "Proposal", "ProposalStyle"]

#: How the optimizer LM proposes: rewrite the whole instructions (the paper), or append one rule
#: (``amend``: what a small optimizer LM can manage; the instructions grow a rule per accepted step).
ProposalStyle = Literal["rewrite", "amend"]

#: What the rewrite sees in its first step.
NO_HISTORY = "none yet: this is the first rewrite of these instructions"

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^```[a-zA-Z]*\n(.*?)\n```$", re.DOTALL)


@dataclass(frozen=True)
class Proposal:
    """One analyse-then-rewrite sample: new instructions, or why there are none."""

    sample: int
    feedback: str
    instructions: str | None
    rejected: str | None = None
    text: str | None = None
    rejection: Rejection | None = None


def _rollout_id(seed: int, step: int, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}:{step}:{sample}".encode()).hexdigest()
    return int(digest[:8], 16)


def clean_proposal(text: str | None) -> str:
    """Strip code fences and surrounding quotes the optimizer LM may wrap its answer in."""
    text = (text or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


class InstructionProposer:
    """Produces m candidate instruction texts for one predictor from one trajectory."""

    def __init__(
        self, *, task: OptimizationTask, lm: dspy.LM | None, temperature: float | None, seed: int,
        guard: ProposalGuard | None = None, style: ProposalStyle = "rewrite",
    ) -> None:
        if style not in ("rewrite", "amend"):
            raise ConfigurationError(f"proposal style must be 'rewrite' or 'amend', got {style!r}")
        self.style = style
        self.task = task
        self.guard = guard if guard is not None else ProposalGuard()
        self.lm = lm
        self.temperature = temperature
        self.seed = seed
        self.analyse = dspy.Predict(
            AnalyseTrajectory.with_instructions(f"{AnalyseTrajectory.instructions}\n\n{task.analysis_guidance}")
        )
        self.rewrite = dspy.Predict(
            RewriteInstructions.with_instructions(f"{RewriteInstructions.instructions}\n\n{task.rewrite_guidance}")
        )
        self.amend = dspy.Predict(AmendInstructions)

    def _config(self, step: int, sample: int) -> dict:
        config: dict = {"rollout_id": _rollout_id(self.seed, step, sample)}
        if self.temperature is not None:
            config["temperature"] = self.temperature
        return config

    def _sample(self, step: int, predictor: str, current: str, trajectory: str, sample: int,
                history: str, seen: _Seen) -> Proposal:
        config = self._config(step, sample)
        feedback = ""
        try:
            with use_lm(self.lm), adapter_context(None):
                with lm_role("analysis"):
                    feedback = self.analyse(current_instructions=current, trajectory=trajectory, config=config).feedback
                with lm_role("rewrite"):
                    raw = self._propose_text(current, feedback, history, config)
        except Exception as exc:  # noqa: BLE001 - one unusable sample must not sink the step
            if is_lm_error(exc):  # an outage: the step is retried by the next run, never saved without its samples
                raise LMOutageError(short_error(exc)) from exc
            return Proposal(sample=sample, feedback=feedback or "", instructions=None, rejected=short_error(exc))
        text = clean_proposal(raw)
        if not text:
            return Proposal(sample=sample, feedback=feedback, instructions=None, rejected="the rewrite was empty")
        if self.style == "amend":
            rejection = _RULE_GUARD.check(ProposalContext(text=text, incumbent=current, trajectory=trajectory,
                                                          cases=seen.cases, feedback=feedback)) or _echo(text)
            if rejection is not None:
                return Proposal(sample=sample, feedback=feedback, instructions=None, text=text, rejection=rejection,
                                rejected=f"{rejection.category}: {rejection.reason}")
            text = f"{current.rstrip()}\n{text}"
        if text.strip() == current.strip():
            return Proposal(sample=sample, feedback=feedback, instructions=None, rejected="the rewrite changed nothing")
        try:
            rejection = self.guard.check(ProposalContext(text=text, incumbent=current, trajectory=trajectory,
                                                         cases=seen.cases, feedback=feedback,
                                                         output_fields=seen.output_fields))
        except Exception as exc:
            if is_lm_error(exc):  # a judge check's LM failed
                raise LMOutageError(short_error(exc)) from exc
            raise
        problem = self.task.validate_candidate(predictor, text) if rejection is None else None
        if problem:
            rejection = Rejection(category="unusable_for_task", reason=problem, check=type(self.task).__name__)
        if rejection is not None:
            return Proposal(sample=sample, feedback=feedback, instructions=None, text=text, rejection=rejection,
                            rejected=f"{rejection.category}: {rejection.reason}")
        return Proposal(sample=sample, feedback=feedback, instructions=text)

    def _propose_text(self, current: str, feedback: str, history: str, config: dict) -> str:
        """The optimizer LM's proposal: the whole rewritten instructions, or one rule to append (amend)."""
        if self.style == "amend":
            return self.amend(current_instructions=current, feedback=feedback, earlier_attempts=history,
                              config=config).new_rule
        return self.rewrite(current_instructions=current, feedback=feedback, earlier_attempts=history,
                            config=config).improved_instructions

    def propose(
        self, *, step: int, predictor: str, current: str, trajectory: str, num_candidates: int, num_threads: int,
        history: str = NO_HISTORY, cases: Sequence[str] = (), output_fields: Sequence[str] = (),
    ) -> list[Proposal]:
        """m independent samples, in sample order; rejected ones say why.

        When the guard refuses every sample, the step asks again (``guard.retries`` more
        rounds, new samples), telling the optimizer LM why the last ones were refused.
        """
        seen = _Seen(cases=tuple(cases), output_fields=tuple(output_fields))
        proposals: list[Proposal] = []
        note = ""
        for attempt in range(self.guard.retries + 1):
            first = attempt * num_candidates

            def one(sample: int, note: str = note) -> Proposal:
                return self._sample(step, predictor, current, trajectory, sample, history + note, seen)

            results = dict(run_parallel(one, range(first, first + num_candidates), num_threads=num_threads))
            batch = [results[i] for i in range(num_candidates)]  # run_parallel yields positions
            proposals += batch
            if any(p.instructions is not None for p in batch):
                break
            refused = [p for p in batch if p.rejection is not None]
            if not refused:
                break  # nothing the guard refused: asking again would not help
            if attempt == self.guard.retries:
                logger.info("step %d: every sample was refused, after %d retr%s; the step has no candidate", step,
                            attempt, "y" if attempt == 1 else "ies")
                break
            note = "\n\nRewrites of this step that were refused; do not repeat their mistakes:\n" + "\n".join(
                f"- {clip(p.text or '', 200)} -> {retry_feedback(p.rejection)}" for p in refused)
            logger.info("step %d: every sample was refused; asking again (%d of %d)", step, attempt + 1,
                        self.guard.retries)
        for proposal in proposals:
            if proposal.rejected:
                logger.debug("step %d: candidate sample %d discarded: %s", step, proposal.sample, proposal.rejected)
        return proposals


#: The checks a rule to append must pass on its own (the whole amended text is checked too).
_RULE_GUARD = ProposalGuard(checks=[RepeatsItself(), NotAnInstruction(), CopiesTrajectory()])
#: The amend prompt's own words, normalized: a "rule" that repeats them is an echo, not a rule.
_PROMPT_WORDS = " ".join(" ".join([AmendInstructions.instructions, *(
    str((f.json_schema_extra or {}).get("desc", "")) for f in AmendInstructions.fields.values())]).lower().split())
#: The fixed words of the guard's retry message (its category and reason vary): small models copy it as a "rule".
_RETRY_WORDS = " ".join(re.findall(r"[a-z]+", retry_feedback(Rejection(category="", reason="", check="")).lower()))


def _echo(rule: str, span: int = 8, retry_span: int = 5) -> Rejection | None:
    """Refuse a rule that repeats the optimizer's own instructions or the guard's retry message (small
    models do) instead of adding one."""
    words = rule.lower().split()
    letters = re.findall(r"[a-z]+", rule.lower())
    echoes = any(" ".join(words[i:i + span]) in _PROMPT_WORDS for i in range(max(0, len(words) - span + 1))) or \
        any(" ".join(letters[i:i + retry_span]) in _RETRY_WORDS for i in range(max(0, len(letters) - retry_span + 1)))
    if echoes:
        return Rejection(category="echoes_prompt", check="InstructionProposer",
                         reason="it repeats the optimizer's own instructions instead of adding a rule")
    return None


@dataclass(frozen=True)
class _Seen:
    """What the optimizer saw besides the trajectory text: the cases' texts and the predictor's output fields."""

    cases: tuple[str, ...]
    output_fields: tuple[str, ...]
