"""Typed, serializable records of a run: trials, steps, and the final result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from autoevol_dspy.files import atomic_write_text
from autoevol_dspy.lm.usage import UsageReport
from autoevol_dspy.search.holdout import HoldoutComparison
from autoevol_dspy.tasks.base import CaseResult
from autoevol_dspy.text import clip

__all__ = ["PLANNED_FIELDS", "CandidatePlan", "PlannedTrial", "RunResult", "RunSummary", "SourceSummary", "StepOutcome",
           "StepPlan", "TrialRecord", "TrialSpec", "by_source"]

#: Version of the records and study layout; a study written with another version is refused on resume.
SCHEMA_VERSION = 2

TrialKind = Literal["baseline", "candidate", "incumbent"]
TrialStatus = Literal["complete", "pruned", "failed"]


class PlannedTrial(BaseModel):
    """What a trial evaluates, known before its evaluation runs."""

    step: int
    kind: TrialKind
    candidate_key: str
    instructions: dict[str, str]
    predictor: str | None = None
    samples: list[int] = Field(default_factory=list)
    parent_trial: int | None = None
    feedback: str | None = None
    source: str | None = Field(None, description="the proposal source that drafted a candidate (see proposal_source)")


#: The :class:`TrialRecord` fields known before an evaluation runs (the rest are its outcome).
PLANNED_FIELDS = frozenset(PlannedTrial.model_fields)


class TrialSpec(PlannedTrial):
    """One evaluation put in a shared study's work queue: the planned trial, plus what the early stop needs."""

    label: str = ""
    position: int = Field(0, description="place in the step's plan (ties go to the first)")
    incumbent_failures: float | None = Field(None, description="what a candidate must beat to be accepted")

    def planned(self) -> dict[str, Any]:
        """The :class:`TrialRecord` fields known before the evaluation."""
        return self.model_dump(include=PLANNED_FIELDS)

    @property
    def key(self) -> tuple[int, str]:
        return self.step, self.candidate_key


class TrialRecord(PlannedTrial):
    """One evaluated set of instructions: the unit that Optuna stores as a trial."""

    number: int | None = None
    status: TrialStatus
    failure_rate: float | None = None
    failures: float = Field(0, description="failed cases (the sum of case losses for a scored metric)")
    evaluated: int = 0
    dev_size: int = 0
    failures_by_category: dict[str, int] = Field(default_factory=dict)
    losses: dict[int, float] = Field(default_factory=dict, description="the loss of every dev case that had one")
    examples: list[CaseResult] = Field(default_factory=list, description="a few failed and passed cases, as evidence")
    error: str | None = None
    usage: UsageReport = Field(default_factory=UsageReport)
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in ("complete", "pruned")


class CandidatePlan(BaseModel):
    """One distinct candidate proposed in a step, with the analysis that led to it."""

    key: str
    instructions: dict[str, str]
    feedback: str
    samples: list[int]
    source: str = ""


class StepPlan(BaseModel):
    """What a step decided before evaluating anything; persisted so a resume replays it exactly."""

    step: int
    predictor: str
    incumbent_trial: int
    batch_indices: list[int]
    trajectory_failures: int
    trajectory_size: int
    candidates: list[CandidatePlan]
    discarded: list[str] = Field(default_factory=list)
    discarded_texts: list[str] = Field(default_factory=list, description="the refused proposals' texts (clipped), "
                                                                         "in the order of discarded")
    drafted_by_source: dict[str, int] = Field(default_factory=dict, description="samples drafted, by source")
    refused_by_source: dict[str, int] = Field(default_factory=dict, description="samples refused, by source")
    usage: UsageReport = Field(default_factory=UsageReport)


class StepOutcome(BaseModel):
    """How a step ended: which trial won and whether it replaced the incumbent."""

    step: int
    incumbent_before: int
    incumbent_after: int
    best_candidate_trial: int | None
    accepted: bool
    incumbent_failure_rate: float
    steps_without_improvement: int
    seconds: float = 0.0
    cut_short: bool = Field(default=False, description=(
        "the run stopped mid-step (a call or time limit) and the candidates it finished decided the step; the "
        "study keeps the step open, so a rerun with a higher limit finishes it and decides it again"))


@dataclass(frozen=True)
class RunSummary:
    """Where a run stands, read from its study (``RunTracker.summary``): the one account that the loop's
    :class:`RunResult` and the report both show.

    ``best`` is the incumbent after the last decided step (the baseline before any);
    ``holdout`` compares the baseline and ``best`` once both were measured on the held-out cases.
    """

    trials: list[TrialRecord]
    plans: list[StepPlan]
    outcomes: list[StepOutcome]
    baseline: TrialRecord | None
    best: TrialRecord | None
    usage: UsageReport
    holdout: HoldoutComparison | None

    @property
    def failure_rate_by_step(self) -> list[float]:
        """The incumbent's dev failure rate: the baseline's, then after each decided step."""
        if self.baseline is None or self.baseline.failure_rate is None:
            return []
        return [self.baseline.failure_rate] + [o.incumbent_failure_rate for o in self.outcomes]


class SourceSummary(BaseModel):
    """What one proposal source did in a run: drafts, refusals, candidates, acceptances, mean dev gain."""

    source: str
    drafted: int = 0
    refused: int = 0
    candidates: int = 0
    accepted: int = 0
    mean_dev_gain: float | None = Field(None, description="mean (parent's minus candidate's) dev failure rate "
                                                          "over its completed candidates")


def by_source(plans: list[StepPlan], trials: list[TrialRecord], outcomes: list[StepOutcome]) -> list[SourceSummary]:
    """Per proposal source: how many samples it drafted, how many the guard refused, how many candidates
    it made and the steps accepted, and their mean dev gain over their parents."""
    rows: dict[str, SourceSummary] = {}

    def row(name: str) -> SourceSummary:
        return rows.setdefault(name, SourceSummary(source=name))

    for plan in plans:
        for name, count in plan.drafted_by_source.items():
            row(name).drafted += count
        for name, count in plan.refused_by_source.items():
            row(name).refused += count
    by_number = {t.number: t for t in trials}
    accepted = {o.incumbent_after for o in outcomes if o.accepted}
    gains: dict[str, list[float]] = {}
    for trial in trials:
        if trial.kind != "candidate" or not trial.source:
            continue
        row(trial.source).candidates += 1
        row(trial.source).accepted += trial.number in accepted
        parent = by_number.get(trial.parent_trial)
        if trial.status == "complete" and parent is not None and parent.failure_rate is not None:
            gains.setdefault(trial.source, []).append(parent.failure_rate - trial.failure_rate)
    for name, values in gains.items():
        rows[name].mean_dev_gain = round(sum(values) / len(values), 4)
    return sorted(rows.values(), key=lambda r: r.source)


class RunResult(BaseModel):
    """What ``AutoEvolInstruct.compile`` found, in a form that serializes to JSON."""

    schema_version: int = SCHEMA_VERSION
    study_name: str
    best_instructions: dict[str, str]
    best_trial: int
    initial_failure_rate: float
    best_failure_rate: float
    failure_rate_by_step: list[float]
    stop_reason: str
    steps: list[StepOutcome]
    plans: list[StepPlan]
    trials: list[TrialRecord]
    usage: UsageReport
    train_size: int
    dev_size: int
    holdout_size: int = 0
    holdout: HoldoutComparison | None = Field(None, description="initial vs best on the held-out cases")
    cached_calls: int = Field(0, description="LM calls of this process that DSPy's cache answered: not sent, "
                                             "not in usage")

    @classmethod
    def of(cls, summary: RunSummary, *, study_name: str, stop_reason: str, train_size: int, dev_size: int,
           holdout_size: int, cached_calls: int = 0) -> "RunResult":
        """The result of a run that ended, from its summary."""
        if summary.baseline is None or summary.best is None:
            raise ValueError("a run's result needs its baseline trial")
        return cls(
            study_name=study_name, best_instructions=summary.best.instructions, best_trial=summary.best.number,
            initial_failure_rate=summary.baseline.failure_rate, best_failure_rate=summary.best.failure_rate,
            failure_rate_by_step=summary.failure_rate_by_step, stop_reason=stop_reason, steps=summary.outcomes,
            plans=summary.plans, trials=summary.trials, usage=summary.usage, train_size=train_size,
            dev_size=dev_size, holdout_size=holdout_size, holdout=summary.holdout, cached_calls=cached_calls,
        )

    def describe_calls(self) -> str:
        """How many LM calls were sent, and how many DSPy's cache answered instead (a rerun may send none)."""
        sent = f"{self.usage.calls} LM calls sent"
        return f"{sent}, {self.cached_calls} answered from DSPy's cache" if self.cached_calls else sent

    @property
    def best_method(self) -> str:
        """The best instructions when there is a single predictor (the evolving method)."""
        if len(self.best_instructions) != 1:
            raise ValueError("best_method is defined for single-predictor programs; use best_instructions")
        return next(iter(self.best_instructions.values()))

    def by_source(self) -> list[SourceSummary]:
        """Per proposal source: drafts, refusals, candidates, acceptances and mean dev gain (:func:`by_source`)."""
        return by_source(self.plans, self.trials, self.steps)

    def describe(self, *, examples: int = 3) -> str:
        """A few lines for a person: dev rates, the held-out check, the winner's source, some evolutions."""
        lines = [
            f"dev failure rate:      {self.initial_failure_rate:.3f} -> {self.best_failure_rate:.3f}  "
            f"({self.dev_size} cases; best trial {self.best_trial}, stopped: {self.stop_reason}, "
            f"{self.describe_calls()})",
            (self.holdout.describe() if self.holdout is not None
             else "held-out check: none (holdout=0); the dev rate alone flatters the winner"),
        ]
        best = next((t for t in self.trials if t.number == self.best_trial), None)
        if best is not None and best.kind == "candidate":
            lines.append(f"best instructions: step {best.step}, drafted by {best.source or 'the optimizer LM'}")
        sources = self.by_source()
        if sources:
            lines.append("proposals by source: " + "; ".join(
                f"{r.source} {r.drafted} drafted, {r.refused} refused, {r.accepted} accepted" for r in sources))
        for case in [c for c in (best.examples if best else []) if len(c.view) > 1][:examples]:
            verdict = f"  [{case.failure.category}]" if case.failure else ""
            lines.append("\n".join(f"  {label + ':':<9} {clip(text, 160)}" for label, text in case.view) + verdict)
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "RunResult":
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

