"""One execution of the search loop against a study: baseline, then steps until a stopper says stop.

A step: sample a mini-batch, run the incumbent on it (the trajectory), let the optimizer
LM propose m rewrites (the plan, saved before any evaluation), evaluate each distinct
candidate on the dev set as a live trial, and let the acceptance criterion decide (the
outcome, saved last). A rerun replays saved plans and finished trials and continues.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.evaluation import EvaluationInterrupted, evaluate, raise_for, run_cases
from autoevol_dspy.search.events import (
    BASELINE_LABEL,
    EvaluationEnded,
    EvaluationStarted,
    EventBus,
    HoldoutChecked,
    RunEnded,
    RunStarted,
    StepDecided,
    StepPlanned,
)
from autoevol_dspy.search.evaluators import Evaluator
from autoevol_dspy.search.holdout import (
    HoldoutMeasure,
    compare_on_holdout,
    measure,
)
from autoevol_dspy.search.memory import earlier_attempts
from autoevol_dspy.search.proposer import NO_HISTORY, InstructionProposer
from autoevol_dspy.search.records import (
    CandidatePlan,
    RunResult,
    StepOutcome,
    StepPlan,
    TrialRecord,
    TrialSpec,
)
from autoevol_dspy.search.strategies import (
    AcceptanceCriterion,
    BatchSampler,
    EvaluationPolicy,
    PredictorChoice,
    SearchState,
    Stopper,
)
from autoevol_dspy.search.strategies.proposal_guard import signature_terms
from autoevol_dspy.search.strategies.proposal_source import ProposalRequest, fields_of, normalized
from autoevol_dspy.search.tracking import RunTracker, candidate_key
from autoevol_dspy.tasks.base import CaseResult, OptimizationTask
from autoevol_dspy.text import clip

__all__ = ["SearchConfig", "SearchRun"]

logger = logging.getLogger("autoevol_dspy.search")

#: How much of a refused proposal's text a plan keeps, for the report.
DISCARDED_TEXT_CHARS = 600


@dataclass(frozen=True)
class SearchConfig:
    """Everything the loop needs to know about how to search, fixed for the run."""

    num_candidates: int
    num_threads: int
    seed: int
    batch_sampler: BatchSampler
    evaluation: EvaluationPolicy
    acceptance: AcceptanceCriterion
    stopper: Stopper
    predictor_choice: PredictorChoice


class SearchRun:
    """The loop's state for one process: the study, the data, the usage so far."""

    def __init__(
        self,
        *,
        config: SearchConfig,
        task: OptimizationTask,
        proposer: InstructionProposer,
        tracker: RunTracker,
        events: EventBus,
        meter: UsageMeter,
        student: dspy.Module,
        initial: dict[str, str],
        trainset: list[dspy.Example],
        devset: list[dspy.Example],
        evaluator: Evaluator,
        holdout: list[dspy.Example] = (),
    ) -> None:
        self.config = config
        self.evaluator = evaluator
        self.task = task
        self.proposer = proposer
        self.tracker = tracker
        self.events = events
        self.meter = meter
        self.student = student
        self.initial = initial
        self.predictors = list(initial)
        self.output_terms = {name: signature_terms(p.signature) for name, p in student.named_predictors()}
        self.fields = {name: fields_of(p.signature) for name, p in student.named_predictors()}
        self.refused_texts: set[str] = set()  # drafts the guard refused in this process, never drafted again
        self.trainset = trainset
        self.devset = devset
        self.holdout = list(holdout)
        self.prior_calls = tracker.recorded_calls()
        self._steps_done = 0
        self._without = 0
        self._measuring_baseline = False

    # Stopping ---------------------------------------------------------------------------------

    def state(self) -> SearchState:
        return SearchState(steps_done=self._steps_done, steps_without_improvement=self._without,
                           num_predictors=len(self.predictors),
                           lm_calls=self.prior_calls + self.meter.calls + self.evaluator.remote_calls)

    def stop_reason(self) -> str | None:
        """Why the run must stop now; before the baseline is measured no step counts as done (not even 0)."""
        state = self.state()
        if self._measuring_baseline:
            state = SearchState(steps_done=-1, steps_without_improvement=0, num_predictors=state.num_predictors,
                                lm_calls=state.lm_calls)
        return self.config.stopper.stop_reason(state)

    # Evaluating -------------------------------------------------------------------------------

    def evaluate_trial(self, spec: TrialSpec) -> TrialRecord:
        """One trial on the whole dev set (reused when this run finished it); outages and interruptions raise."""
        return self.evaluator.evaluate([spec], interrupt=self.stop_reason)[0]

    # The loop ---------------------------------------------------------------------------------

    def baseline(self) -> TrialRecord:
        spec = TrialSpec(step=0, kind="baseline", candidate_key=candidate_key(self.initial),
                         instructions=self.initial, label=BASELINE_LABEL)
        self._measuring_baseline = True
        try:
            return self.evaluate_trial(spec)
        except EvaluationInterrupted as stop:
            raise AutoEvolError(f"the run stopped ({stop.reason}) before the initial instructions were evaluated "
                                "on the dev set; raise the limit and rerun to continue") from None
        finally:
            self._measuring_baseline = False

    def baseline_and_first_plan(self) -> tuple[TrialRecord, StepPlan | None]:
        """The baseline; a driver whose workers evaluate it plans step 1 meanwhile (that plan needs only the
        initial instructions), so the workers wait for one of the two, not for both in turn."""
        if not self._plans_during_baseline():
            return self.baseline(), None
        planned: dict[str, Any] = {}
        predictor = self.config.predictor_choice.choose(step=1, predictors=self.predictors)

        def plan() -> None:
            try:  # no candidate trial exists yet, so the rewrite's memory is empty
                planned["plan"] = self._plan(1, self.initial, predictor=predictor, incumbent_trial=-1,
                                             history=NO_HISTORY)
            except BaseException as exc:  # noqa: BLE001 - raised in the driver's thread below
                planned["error"] = exc

        thread = threading.Thread(target=contextvars.copy_context().run, args=(plan,), name="autoevol-first-plan",
                                  daemon=True)
        thread.start()
        try:
            incumbent = self.baseline()
        finally:
            thread.join()
        if "error" in planned:
            raise planned["error"]
        return incumbent, planned["plan"].model_copy(update={"incumbent_trial": incumbent.number})

    def _plans_during_baseline(self) -> bool:
        """Whether to plan step 1 while the baseline is evaluated: only a driver that evaluates nothing (its
        LM calls stay within ``num_threads``), only when step 1 is still to plan and follows the baseline
        whatever the baseline's LM calls (a call budget is checked after the baseline, as in one process)."""
        if self.evaluator.evaluates_here:
            return False
        if self.tracker.find_trial(step=0, candidate_key=candidate_key(self.initial)) is not None:
            return False
        if self.tracker.plan(1) is not None or self.tracker.outcome(1) is not None:
            return False
        now = self.state()
        return all(self.config.stopper.stop_reason(SearchState(
            steps_done=0, steps_without_improvement=0, num_predictors=now.num_predictors, lm_calls=calls)) is None
            for calls in (now.lm_calls, sys.maxsize))

    def make_plan(self, step: int, incumbent: TrialRecord) -> StepPlan:
        accepted = frozenset(o.incumbent_after for o in self.tracker.outcomes() if o.accepted)
        predictor = self.config.predictor_choice.choose(step=step, predictors=self.predictors)
        history = earlier_attempts(self.tracker.trials(), predictor=predictor, incumbent=incumbent, accepted=accepted)
        return self._plan(step, incumbent.instructions, predictor=predictor, incumbent_trial=incumbent.number,
                          history=history)

    def _plan(self, step: int, current: dict[str, str], *, predictor: str, incumbent_trial: int,
              history: str) -> StepPlan:
        """Run ``current`` on the step's mini-batch (the trajectory) and let the optimizer LM propose rewrites."""
        before = self.meter.report()
        batch_indices = self.config.batch_sampler.sample(step=step, train_size=len(self.trainset), seed=self.config.seed)
        logger.info("step %d: running the incumbent on %d training examples (the trajectory), then asking the "
                    "optimizer LM for %d rewrite(s) of %r", step, len(batch_indices), self.config.num_candidates,
                    predictor)
        program = self.task.program_for(self.student, current)
        results = run_cases(self.task, program, [(i, self.trainset[i]) for i in batch_indices],
                            num_threads=self.config.num_threads)
        inputs, outputs = self.fields.get(predictor, ((), ()))
        trials = self.tracker.trials()  # read once: what was tried, what was accepted, what passed
        request = ProposalRequest(
            step=step, predictor=predictor, current=current[predictor], trajectory=self.task.format_trajectory(results),
            failures=tuple((r.failure.category, r.feedback or r.failure.reason) for r in results if r.failure),
            inputs=inputs, outputs=outputs, history=history, tried=self._tried(predictor, trials),
            edit_hints=dict(getattr(self.task, "edit_hints", {}) or {}),
            accepted_rules=self._accepted_rules(predictor, trials), passed_outputs=self._passed_outputs(results, trials),
        )
        proposals = self.proposer.propose(
            request=request, num_candidates=self.config.num_candidates, num_threads=self.config.num_threads,
            cases=_case_texts(results), output_fields=tuple(field.name for field in outputs),
            output_terms=self.output_terms.get(predictor, {}),
        )
        candidates: dict[str, CandidatePlan] = {}
        discarded, discarded_texts = [], []
        drafted: Counter[str] = Counter(p.source for p in proposals if p.text or p.instructions)
        refused: Counter[str] = Counter(p.source for p in proposals if p.rejection is not None)
        for proposal in proposals:
            if proposal.rejection is not None and proposal.text:
                self.refused_texts.add(normalized(proposal.text))
            if proposal.instructions is None:
                discarded.append(f"sample {proposal.sample} ({proposal.source}): {proposal.rejected}")
                discarded_texts.append(clip(proposal.text or "", DISCARDED_TEXT_CHARS))
                continue
            instructions = {**current, predictor: proposal.instructions}
            key = candidate_key(instructions)
            if not self.config.evaluation.deduplicate:
                key = f"{key}-s{proposal.sample}"
            if key in candidates:
                candidates[key].samples.append(proposal.sample)
            else:
                candidates[key] = CandidatePlan(key=key, instructions=instructions, feedback=proposal.feedback,
                                                samples=[proposal.sample], source=proposal.source)
        return StepPlan(
            step=step, predictor=predictor, incumbent_trial=incumbent_trial, batch_indices=batch_indices,
            trajectory_failures=sum(1 for r in results if r.failure is not None), trajectory_size=len(results),
            candidates=list(candidates.values()), discarded=discarded, discarded_texts=discarded_texts,
            drafted_by_source=dict(drafted),
            refused_by_source=dict(refused), usage=self.meter.report() - before,
        )

    def _tried(self, predictor: str, trials: list[TrialRecord]) -> frozenset[str]:
        """Texts of ``predictor`` this run evaluated or refused: a source never drafts them again."""
        evaluated = {normalized(t.instructions.get(predictor, "")) for t in trials}
        return frozenset(evaluated | self.refused_texts)

    @staticmethod
    def _passed_outputs(trajectory: list[CaseResult], trials: list[TrialRecord]) -> tuple[dict[str, str], ...]:
        """Outputs of the cases the metric accepted: the trajectory's, then the evidence the dev evaluations kept."""
        kept = [case for trial in trials for case in trial.examples]
        passed = [case.outputs for case in [*trajectory, *kept] if case.failure is None and case.case_loss == 0]
        unique = {repr(sorted(outputs.items())): outputs for outputs in passed}
        return tuple({name: str(value) for name, value in outputs.items()} for outputs in unique.values())

    def _accepted_rules(self, predictor: str, trials: list[TrialRecord]) -> tuple[tuple[str, str, str], ...]:
        """(before, feedback, rule) for each accepted step that appended a rule to ``predictor``."""
        by_number = {t.number: t for t in trials}
        rules = []
        for outcome in self.tracker.outcomes():
            after, before = by_number.get(outcome.incumbent_after), by_number.get(outcome.incumbent_before)
            if not outcome.accepted or after is None or before is None:
                continue
            old, new = before.instructions.get(predictor, ""), after.instructions.get(predictor, "")
            if new.startswith(old.rstrip()) and new.strip() != old.strip():
                rules.append((old, after.feedback or "", new[len(old.rstrip()):].strip()))
        return tuple(rules)

    def remeasure(self, step: int, incumbent: TrialRecord) -> TrialRecord:
        """Paper protocol: evaluate the incumbent again on the whole dev set (its own trial)."""
        return self.evaluate_trial(TrialSpec(step=step, kind="incumbent", candidate_key=f"{incumbent.candidate_key}-incumbent",
                                             instructions=incumbent.instructions, parent_trial=incumbent.number,
                                             label=f"step {step} incumbent"))

    def run_step(self, step: int, incumbent: TrialRecord, *, planned: StepPlan | None = None) -> StepOutcome:
        """One step; ``planned``: its plan, made already (and not yet saved), else it is made here."""
        started = time.perf_counter()
        plan = self.tracker.plan(step)
        resumed = plan is not None
        if plan is None:
            plan = planned or self.make_plan(step, incumbent)
            self.tracker.save_plan(plan)
        self.events.emit(StepPlanned(plan=plan, resumed=resumed))
        if self.config.evaluation.reevaluate_incumbent:
            incumbent = self.remeasure(step, incumbent)
        trials = self.evaluate_candidates(step, plan, incumbent)
        return self.decide(step, incumbent, trials, started=started)

    def decide(self, step: int, incumbent: TrialRecord, trials: Sequence[TrialRecord | None], *, started: float,
               cut_short: bool = False) -> StepOutcome:
        """The step's outcome: its best finished candidate replaces the incumbent if the acceptance rule says so."""
        finished = [t for t in trials if t is not None and t.status == "complete"]
        best = min(finished, key=lambda t: (t.failures, finished.index(t)), default=None)
        accepted = best is not None and self.config.acceptance.accepts(
            candidate=best.losses, incumbent=incumbent.losses, dev_size=len(self.devset))
        winner = best if accepted else incumbent
        return StepOutcome(
            step=step, incumbent_before=incumbent.number, incumbent_after=winner.number,
            best_candidate_trial=best.number if best is not None else None, accepted=accepted,
            incumbent_failure_rate=winner.failure_rate,
            steps_without_improvement=0 if accepted else self._without + 1,
            seconds=round(time.perf_counter() - started, 3), cut_short=cut_short,
        )

    def decide_cut_step(self, step: int, incumbent: TrialRecord, *, started: float) -> TrialRecord:
        """The run stopped inside ``step``: the candidates it finished decide it, as far as they go (what a
        limit bought is not thrown away). Saved apart from decided steps: a rerun with a higher limit finishes
        the step. Returns the incumbent the run ends with."""
        remeasured = self.tracker.find_trial(step=step, candidate_key=f"{incumbent.candidate_key}-incumbent")
        if remeasured is not None and remeasured.status == "complete":
            incumbent = remeasured  # the paper's protocol compares a step's candidates with its own re-measure
        finished = [t for t in self.tracker.trials() if t.step == step and t.kind == "candidate"
                    and t.parent_trial == incumbent.number]
        if not any(t.status == "complete" for t in finished):
            return incumbent
        outcome = self.decide(step, incumbent, finished, started=started, cut_short=True)
        self.tracker.save_cut_outcome(outcome)
        self.events.emit(StepDecided(outcome=outcome, resumed=False))
        return self.tracker.trial(outcome.incumbent_after)

    def evaluate_candidates(self, step: int, plan: StepPlan, incumbent: TrialRecord) -> list[TrialRecord]:
        """Every candidate of the plan as a trial (finished ones are reused), side by side; each one stops
        early once it cannot be accepted or a finished rival of its step beats it (see :mod:`.evaluators`)."""
        specs = [TrialSpec(step=step, kind="candidate", candidate_key=c.key, instructions=c.instructions,
                           predictor=plan.predictor, samples=c.samples, parent_trial=incumbent.number,
                           feedback=c.feedback, source=c.source or None,
                           label=f"step {step} candidate {i + 1}/{len(plan.candidates)}",
                           position=i, incumbent_failures=incumbent.failures)
                 for i, c in enumerate(plan.candidates)]
        return self.evaluator.evaluate(specs, interrupt=self.stop_reason)

    def execute(self) -> RunResult:
        self.events.emit(RunStarted(study_name=self.tracker.study.study_name, train_size=len(self.trainset),
                                    dev_size=len(self.devset), holdout_size=len(self.holdout),
                                    resumed_trials=len(self.tracker.trials())))
        incumbent, first_plan = self.baseline_and_first_plan()
        stop_reason = None
        step = 0
        while stop_reason is None:
            stop_reason = self.stop_reason()
            if stop_reason is not None:
                break
            step += 1
            outcome = self.tracker.outcome(step)
            resumed = outcome is not None
            if outcome is None:
                started = time.perf_counter()
                try:
                    outcome = self.run_step(step, incumbent, planned=first_plan if step == 1 else None)
                except EvaluationInterrupted as stop:
                    stop_reason = stop.reason
                    incumbent = self.decide_cut_step(step, incumbent, started=started)
                    break
                self.tracker.save_outcome(outcome)
            self.events.emit(StepDecided(outcome=outcome, resumed=resumed))
            incumbent = self.tracker.trial(outcome.incumbent_after)
            self._steps_done, self._without = step, outcome.steps_without_improvement
        if self.holdout:
            self.check_holdout(incumbent)
        result = self.summarize(stop_reason)
        self.events.emit(RunEnded(result=result))
        return result

    # The held-out check -----------------------------------------------------------------------

    def measure_holdout(self, instructions: dict[str, str], label: str) -> HoldoutMeasure:
        """These instructions on the held-out cases, measured once per run (a rerun reads it back)."""
        key = candidate_key(instructions)
        found = self.tracker.holdout(key)
        if found is not None:
            return found
        program = self.task.program_for(self.student, instructions)
        self.events.emit(EvaluationStarted(label=label, size=len(self.holdout), trial_number=None, program=program,
                                           cases=self.holdout))
        evaluation = evaluate(self.task, program, self.holdout,
                              num_threads=self.config.num_threads, meter=self.meter, events=self.events, label=label)
        self.events.emit(EvaluationEnded(label=label, failures=evaluation.failures, size=evaluation.size))
        raise_for([evaluation])
        result = measure(key, dict(evaluation.losses), evaluation.size, evaluation.usage, dict(evaluation.by_category))
        self.tracker.save_holdout(result)
        return result

    def check_holdout(self, incumbent: TrialRecord) -> None:
        initial = self.measure_holdout(self.initial, "held-out check: initial instructions")
        best = initial
        if incumbent.instructions != self.initial:
            best = self.measure_holdout(incumbent.instructions, "held-out check: best instructions")
        self.events.emit(HoldoutChecked(comparison=compare_on_holdout(initial, best)))

    def summarize(self, stop_reason: str) -> RunResult:
        return RunResult.of(self.tracker.summary(through_step=self._steps_done),
                            study_name=self.tracker.study.study_name, stop_reason=stop_reason,
                            train_size=len(self.trainset), dev_size=len(self.devset), holdout_size=len(self.holdout),
                            cached_calls=self.meter.cached)


def _case_texts(results: list[CaseResult]) -> list[str]:
    """The texts the optimizer saw in the trajectory's cases (inputs and outputs), for the proposal guard."""
    texts = []
    for result in results:
        for value in [*result.inputs.values(), *result.outputs.values()]:
            texts += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return [text for text in texts if text and text != "None"]
