"""A step's m candidates: each sample drafted by one of the run's proposal sources, then checked.

Samples are dealt to the sources in turn (:mod:`.strategies.proposal_source`); a source
with nothing new hands its sample to the next. A rule to append is checked on its own, then
the whole text goes through the proposal guard and the task's own check. When the guard
refuses every sample of a step, the step asks again, telling the LM sources why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.lm.errors import LMOutageError, is_lm_error
from autoevol_dspy.lm.health import STREAK, Unparsed, active_health, unparsed_replies
from autoevol_dspy.parallel import run_parallel
from autoevol_dspy.search.demos import SHIPPED_AMEND_DEMOS
from autoevol_dspy.search.lm_sources import LMAmend, LMRewrite, OptimizerSettings
from autoevol_dspy.search.signatures import AmendInstructions
from autoevol_dspy.search.strategies.edit_library import EditLibrary
from autoevol_dspy.search.strategies.feedback_rules import FeedbackRules
from autoevol_dspy.search.strategies.proposal_guard import (
    CopiesTrajectory,
    NotAnInstruction,
    ProposalContext,
    ProposalGuard,
    Rejection,
    RepeatsItself,
    retry_feedback,
)
from autoevol_dspy.search.strategies.proposal_source import Draft, ProposalRequest, ProposalSource
from autoevol_dspy.tasks.base import OptimizationTask
from autoevol_dspy.text import clip, short_error

__all__ = ["NO_HISTORY", "InstructionProposer", "Proposal", "ProposalStyle", "default_sources", "paper_sources",
           "small_model_sources"]

#: How candidates are proposed: the optimizer LM rewrites the whole instructions (the paper), appends one
#: rule (``amend``), or ``mixed``: :func:`small_model_sources`, what a small optimizer LM can drive.
ProposalStyle = Literal["rewrite", "amend", "mixed"]

#: What the rewrite sees in its first step.
NO_HISTORY = "none yet: this is the first rewrite of these instructions"

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^```[a-zA-Z]*\n(.*?)\n```$", re.DOTALL)


def paper_sources() -> list[ProposalSource]:
    """The paper's move alone: the optimizer LM analyses the trajectory and rewrites the instructions."""
    return [LMRewrite()]


def small_model_sources() -> list[ProposalSource]:
    """For a small optimizer LM (the embedded 135M, laptop models): two general edits from the signature, a rule
    from the metric's feedback, and one rule written by the LM from grouped failures with worked examples.

    The general edits come first: they won every step the head-to-head benchmark's tasks accepted, and a
    budget that evaluates fewer candidates than m evaluates the first samples' (``benchmarks/head_to_head.py``).
    """
    return [EditLibrary(), EditLibrary(), FeedbackRules(), LMAmend(analyse=False, demos=True)]


def default_sources(optimizer_lm: object | None, style: ProposalStyle | None = None) -> list[ProposalSource]:
    """The sources for ``style`` when given; else by the optimizer LM: an in-process model (``local/...``,
    a small CPU model) gets :func:`small_model_sources`, any other LM the paper's rewrite."""
    if style == "rewrite":
        return paper_sources()
    if style == "amend":
        return [LMAmend()]
    if style == "mixed":
        return small_model_sources()
    if style is not None:
        raise ConfigurationError(f"proposal style must be 'rewrite', 'amend' or 'mixed', got {style!r}")
    model = str(getattr(optimizer_lm, "model", "") or "")
    return small_model_sources() if model.startswith("local/") else paper_sources()


@dataclass(frozen=True)
class Proposal:
    """One sample: new instructions and the source that drafted them, or why there are none."""

    sample: int
    feedback: str
    instructions: str | None
    rejected: str | None = None
    text: str | None = None
    rejection: Rejection | None = None
    source: str = ""


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
    """Produces m candidate instruction texts for one predictor from one trajectory, through its sources."""

    def __init__(
        self, *, task: OptimizationTask, lm: object | None, temperature: float | None, seed: int,
        guard: ProposalGuard | None = None, sources: Sequence[ProposalSource] | None = None,
        style: ProposalStyle | None = None, default_for: object | None = None,
    ) -> None:
        """``default_for``: the LM that will really run as optimizer (``lm`` may be ``None``: the configured
        one), which picks the default sources when neither ``sources`` nor ``style`` is given."""
        if sources is not None and style is not None:
            raise ConfigurationError("pass either proposal sources or a proposal style, not both")
        self.sources = list(sources) if sources is not None else default_sources(default_for or lm, style)
        if not self.sources:
            raise ConfigurationError("proposal sources: give at least one")
        for source in self.sources:
            if not isinstance(source, ProposalSource):
                raise ConfigurationError(f"{source!r} is not a ProposalSource (needs name, uses_lm, draft(), "
                                         "describe())")
        settings = OptimizerSettings(lm=lm, temperature=temperature, seed=seed,
                                     analysis_guidance=task.analysis_guidance, rewrite_guidance=task.rewrite_guidance)
        for source in self.sources:
            bind = getattr(source, "bind", None)
            if callable(bind):
                bind(settings)
        self.task = task
        self.guard = guard if guard is not None else ProposalGuard()

    def describe(self) -> list[dict]:
        """The sources, in the order samples are dealt to them (part of the run's identity)."""
        return [source.describe() for source in self.sources]

    def _source_for(self, sample: int) -> ProposalSource:
        """The source a sample is dealt to: the sources in turn."""
        return self.sources[sample % len(self.sources)]

    def _draft(self, request: ProposalRequest, sample: int, note: str) -> tuple[ProposalSource, Draft | None]:
        """The draft of the sample's source, or of the next source that has one."""
        for offset in range(len(self.sources)):
            source = self._source_for(sample + offset)
            draft = source.draft(request, sample=sample, note=note)
            if draft is not None:
                return source, draft
        return self._source_for(sample), None

    def _sample(self, request: ProposalRequest, sample: int, note: str, seen: _Seen) -> Proposal:
        current, source_name, feedback = request.current, self._source_for(sample).name, ""
        try:
            source, draft = self._draft(request, sample, note)
            source_name = source.name
        except Exception as exc:  # noqa: BLE001 - one unusable sample must not sink the step
            if is_lm_error(exc):  # an outage: the step is retried by the next run, never saved without its samples
                raise LMOutageError(short_error(exc)) from exc
            return Proposal(sample=sample, feedback="", instructions=None, rejected=short_error(exc),
                            source=source_name)
        if draft is None:
            return Proposal(sample=sample, feedback="", instructions=None, source=source_name,
                            rejected="no source had a new candidate")
        feedback = draft.feedback
        text = clean_proposal(draft.text)
        if not text:
            return Proposal(sample=sample, feedback=feedback, instructions=None, rejected="the rewrite was empty",
                            source=source_name)
        if draft.rule:
            rejection = _RULE_GUARD.check(ProposalContext(text=text, incumbent=current, trajectory=request.trajectory,
                                                          cases=seen.cases, feedback=feedback)) or _echo(text)
            if rejection is not None:
                return Proposal(sample=sample, feedback=feedback, instructions=None, text=text, rejection=rejection,
                                rejected=f"{rejection.category}: {rejection.reason}", source=source_name)
            text = request.appended(text)
        if text.strip() == current.strip():
            return Proposal(sample=sample, feedback=feedback, instructions=None, rejected="the rewrite changed nothing",
                            source=source_name)
        try:
            rejection = self.guard.check(ProposalContext(text=text, incumbent=current, trajectory=request.trajectory,
                                                         cases=seen.cases, feedback=feedback,
                                                         output_fields=seen.output_fields,
                                                         output_terms=seen.output_terms))
        except Exception as exc:
            if is_lm_error(exc):  # a judge check's LM failed
                raise LMOutageError(short_error(exc)) from exc
            raise
        problem = self.task.validate_candidate(request.predictor, text) if rejection is None else None
        if problem:
            rejection = Rejection(category="unusable_for_task", reason=problem, check=type(self.task).__name__)
        if rejection is not None:
            return Proposal(sample=sample, feedback=feedback, instructions=None, text=text, rejection=rejection,
                            rejected=f"{rejection.category}: {rejection.reason}", source=source_name)
        return Proposal(sample=sample, feedback=feedback, instructions=text, source=source_name)

    def propose(
        self, *, request: ProposalRequest, num_candidates: int, num_threads: int, cases: Sequence[str] = (),
        output_fields: Sequence[str] = (), output_terms: Mapping[str, tuple[str, ...]] | None = None,
    ) -> list[Proposal]:
        """m independent samples, in sample order; rejected ones say why.

        When the guard refuses every sample, the step asks again (``guard.retries`` more
        rounds, new samples), telling the LM sources why the last ones were refused.
        """
        seen = _Seen(cases=tuple(cases), output_fields=tuple(output_fields), output_terms=dict(output_terms or {}))
        proposals: list[Proposal] = []
        note = ""

        def sample_round(attempt: int, note: str) -> list[Proposal]:
            first = attempt * num_candidates

            def one(sample: int) -> Proposal:
                return self._sample(request, sample, note, seen)

            samples = range(first, first + num_candidates)
            # Sources that need no LM draft first, one after another in sample order, so which sample gets which
            # edit never depends on the threads; only the LM drafts run in parallel.
            results = {s: one(s) for s in samples if not self._source_for(s).uses_lm}
            online = [s for s in samples if s not in results]
            results.update((online[i], p) for i, p in run_parallel(one, online, num_threads=num_threads))
            return [results[s] for s in samples]

        with unparsed_replies() as unparsed:
            attempt = 0
            for attempt in range(self.guard.retries + 1):
                batch = sample_round(attempt, note)
                proposals += batch
                if any(p.instructions is not None for p in batch):
                    break
                refused = [p for p in batch if p.rejection is not None]
                if not refused:
                    break  # nothing the guard refused: asking again would not help
                if attempt == self.guard.retries:
                    logger.info("step %d: every sample was refused, after %d retr%s; the step has no candidate",
                                request.step, attempt, "y" if attempt == 1 else "ies")
                    break
                note = "\n\nRewrites of this step that were refused; do not repeat their mistakes:\n" + "\n".join(
                    f"- {clip(p.text or '', 200)} -> {retry_feedback(p.rejection)}" for p in refused)
                logger.info("step %d: every sample was refused; asking again (%d of %d)", request.step, attempt + 1,
                            self.guard.retries)
            _settle_unparsed(proposals, unparsed, lambda extra: sample_round(attempt + extra, ""))
        for proposal in proposals:
            if proposal.rejected:
                logger.debug("step %d: candidate sample %d (%s) discarded: %s", request.step, proposal.sample,
                             proposal.source, proposal.rejected)
        return proposals


def _settle_unparsed(proposals: list[Proposal], unparsed: list[Unparsed],
                     sample_round: Callable[[int], list[Proposal]]) -> None:
    """A step left without a candidate because replies did not parse is no result until the optimizer LM has
    shown that it parses: ask again (a few rounds at most) until it does, or until it is in doubt (then no
    plan is saved, as for an outage; see :mod:`autoevol_dspy.lm.health`)."""
    health = active_health()
    extra = 0
    while health is not None and unparsed and all(p.instructions is None for p in proposals) \
            and not health.confirmed(unparsed):
        doubt = health.doubt()
        if doubt is not None:
            raise LMOutageError(doubt)
        if extra == STREAK:
            return
        extra += 1
        proposals += sample_round(extra)


#: The checks a rule to append must pass on its own (the whole amended text is checked too).
_RULE_GUARD = ProposalGuard(checks=[RepeatsItself(), NotAnInstruction(), CopiesTrajectory()])
#: The amend prompt's own words, normalized: a "rule" that repeats them is an echo, not a rule.
_PROMPT_WORDS = " ".join(" ".join([AmendInstructions.instructions, *(
    str((f.json_schema_extra or {}).get("desc", "")) for f in AmendInstructions.fields.values())]).lower().split())
#: The fixed words of the guard's retry message (its category and reason vary): small models copy it as a "rule".
_RETRY_WORDS = " ".join(re.findall(r"[a-z]+", retry_feedback(Rejection(category="", reason="", check="")).lower()))


#: The amend prompt's own field names with an underscore ("new_rule"): a rule about them describes the
#: optimizer's reply format ("Your JSON object should have a `new_rule` field ..."), not the task.
_OWN_FIELDS = frozenset(name for name in AmendInstructions.fields if "_" in name)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: The rules of the shipped worked examples, as letters: a rule that copies one belongs to another task.
_DEMO_RULES = tuple(" ".join(re.findall(r"[a-z]+", rule.lower())) for _, _, rule in SHIPPED_AMEND_DEMOS)


def _echo(rule: str, span: int = 8, retry_span: int = 5) -> Rejection | None:
    """Refuse a rule that repeats the optimizer's own instructions, the guard's retry message or a worked
    example's rule (small models do) instead of adding one."""
    words = rule.lower().split()
    letters = re.findall(r"[a-z]+", rule.lower())
    echoes = any(" ".join(words[i:i + span]) in _PROMPT_WORDS for i in range(max(0, len(words) - span + 1))) or \
        any(" ".join(letters[i:i + retry_span]) in _RETRY_WORDS for i in range(max(0, len(letters) - retry_span + 1)))
    if echoes:
        return Rejection(category="echoes_prompt", check="InstructionProposer",
                         reason="it repeats the optimizer's own instructions instead of adding a rule")
    if _OWN_FIELDS.intersection(_IDENTIFIER.findall(rule[:10_000])):
        return Rejection(category="echoes_prompt", check="InstructionProposer",
                         reason="it describes the optimizer's own reply format, not the task")
    copied = any(" ".join(letters[i:i + span]) in demo for demo in _DEMO_RULES
                 for i in range(max(0, len(letters) - span + 1))) if len(letters) >= span else \
        " ".join(letters) in _DEMO_RULES
    if copied:
        return Rejection(category="echoes_prompt", check="InstructionProposer",
                         reason="it copies the rule of a worked example (another task) instead of writing one")
    return None


@dataclass(frozen=True)
class _Seen:
    """What the optimizer saw besides the trajectory text: the cases' texts and the predictor's output fields
    (with the other words that name them)."""

    cases: tuple[str, ...]
    output_fields: tuple[str, ...]
    output_terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
