"""Proposal sources that ask the optimizer LM: the paper's analyse-then-rewrite, and adding one rule.

Each sample gets its own ``rollout_id`` at a temperature above zero, so the m samples
really differ (the official script sampled at temperature 0 and got m copies) and a
resumed run replays the same samples from DSPy's cache. ``demos=True`` gives the rule
writer a few worked examples (:mod:`.demos`, from tasks unlike any user's, plus the rules
this run already accepted): a small model follows examples far better than prose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import dspy

from autoevol_dspy.lm.context import adapter_context, use_lm
from autoevol_dspy.lm.health import watched_reply
from autoevol_dspy.lm.usage import lm_role
from autoevol_dspy.search.demos import amend_demos
from autoevol_dspy.search.signatures import AmendInstructions, AnalyseTrajectory, RewriteInstructions
from autoevol_dspy.search.strategies.proposal_source import Draft, ProposalRequest

__all__ = ["LMAmend", "LMRewrite", "OptimizerSettings", "grouped_failures"]


@dataclass(frozen=True)
class OptimizerSettings:
    """How the LM sources call the optimizer LM, and the task's words for the analysis and the rewrite."""

    lm: dspy.LM | None
    temperature: float | None
    seed: int
    analysis_guidance: str = ""
    rewrite_guidance: str = ""


def _rollout_id(seed: int, step: int, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}:{step}:{sample}".encode()).hexdigest()
    return int(digest[:8], 16)


def grouped_failures(request: ProposalRequest, limit: int = 6) -> str:
    """The trajectory's failures grouped by reason, commonest first: feedback without an analysis call."""
    counts: dict[str, int] = {}
    for category, reason in request.failures:
        key = f"{category}: {reason}" if reason else category
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "every case of the trajectory passed"
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
    return "\n".join(f"- {count} case(s): {text}" for text, count in ranked)


class _LMSource:
    """What both LM sources share: the settings, the analysis, the per-sample call config."""

    uses_lm = True

    def __init__(self, *, analyse: bool = True) -> None:
        self.analyse = analyse
        self.settings = OptimizerSettings(lm=None, temperature=None, seed=0)

    def bind(self, settings: OptimizerSettings) -> None:
        """Called by the run before the first step: the optimizer LM and the task's guidance."""
        self.settings = settings

    def _config(self, step: int, sample: int) -> dict[str, Any]:
        config: dict[str, Any] = {"rollout_id": _rollout_id(self.settings.seed, step, sample)}
        if self.settings.temperature is not None:
            config["temperature"] = self.settings.temperature
        return config

    def _feedback(self, request: ProposalRequest, config: dict[str, Any]) -> str:
        if not self.analyse:
            return grouped_failures(request)
        guidance = self.settings.analysis_guidance
        analyse = dspy.Predict(AnalyseTrajectory.with_instructions(
            f"{AnalyseTrajectory.instructions}\n\n{guidance}" if guidance else AnalyseTrajectory.instructions))
        with lm_role("analysis"), watched_reply():
            return analyse(current_instructions=request.current, trajectory=request.trajectory,
                           config=config).feedback

    def describe(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "analyse": self.analyse}


class LMRewrite(_LMSource):
    """The paper's move: the optimizer LM analyses the trajectory, then rewrites the whole instructions."""

    name = "lm_rewrite"

    def draft(self, request: ProposalRequest, *, sample: int, note: str = "") -> Draft | None:
        config = self._config(request.step, sample)
        guidance = self.settings.rewrite_guidance
        rewrite = dspy.Predict(RewriteInstructions.with_instructions(
            f"{RewriteInstructions.instructions}\n\n{guidance}" if guidance else RewriteInstructions.instructions))
        with use_lm(self.settings.lm), adapter_context(None):
            feedback = self._feedback(request, config)
            with lm_role("rewrite"), watched_reply():
                text = rewrite(current_instructions=request.current, feedback=feedback,
                               earlier_attempts=request.history + note, config=config).improved_instructions
        return Draft(text=text or "", feedback=feedback)


class LMAmend(_LMSource):
    """The optimizer LM writes one rule to append: what a small optimizer LM can manage.

    ``demos``: show it worked examples of feedback turned into a general rule (shipped with
    the package, from tasks unlike any user's) and the rules this run already accepted.
    ``analyse=False`` skips the analysis call and hands it the grouped failures instead.
    """

    name = "lm_amend"

    def __init__(self, *, analyse: bool = True, demos: bool = False) -> None:
        super().__init__(analyse=analyse)
        self.demos = demos

    def draft(self, request: ProposalRequest, *, sample: int, note: str = "") -> Draft | None:
        config = self._config(request.step, sample)
        amend = dspy.Predict(AmendInstructions)
        if self.demos:
            amend.demos = amend_demos(request.accepted_rules)
        with use_lm(self.settings.lm), adapter_context(None):
            feedback = self._feedback(request, config)
            with lm_role("rewrite"), watched_reply():
                rule = amend(current_instructions=request.current, feedback=feedback,
                             earlier_attempts=request.history + note, config=config).new_rule
        return Draft(text=rule or "", feedback=feedback, rule=True)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "demos": self.demos}
