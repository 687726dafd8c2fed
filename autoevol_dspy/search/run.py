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
from dataclasses import dataclass
from typing import Any

import dspy

from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.evaluation import (
    Evaluation,
    EvaluationJob,
    LMOutageError,
    evaluate,
    evaluate_jobs,
    run_cases,
    trial_outcome,
)
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
    TrialFinished,
)
from autoevol_dspy.search.holdout import (
    HoldoutMeasure,
    compare_on_holdout,
    measure,
)
from autoevol_dspy.search.memory import earlier_attempts
from autoevol_dspy.search.proposer import NO_HISTORY, InstructionProposer
from autoevol_dspy.search.queue_driver import QueueDriver
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
from autoevol_dspy.search.tracking import LiveTrial, RunTracker, candidate_key
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


class _Interrupted(Exception):
    """A stopper ended the run in the middle of a step (the step is left for a resumed run)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        holdout: list[dspy.Example] = (),
        queue: QueueDriver | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.task = task
        self.proposer = proposer
        self.tracker = tracker
        self.events = events
        self.meter = meter
        self.student = student
        self.initial = initial
        self.predictors = list(initial)
        self.output_fields = {name: tuple(p.signature.output_fields) for name, p in student.named_predictors()}
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
        remote = self.queue.remote_calls if self.queue is not None else 0
        return SearchState(steps_done=self._steps_done, steps_without_improvement=self._without,
                           num_predictors=len(self.predictors), lm_calls=self.prior_calls + self.meter.calls + remote)

    def stop_reason(self) -> str | None:
        """Why the run must stop now; before the baseline is measured no step counts as done (not even 0)."""
        state = self.state()
        if self._measuring_baseline:
            state = SearchState(steps_done=-1, steps_without_improvement=0, num_predictors=state.num_predictors,
                                lm_calls=state.lm_calls)
        return self.config.stopper.stop_reason(state)

    # Evaluating -------------------------------------------------------------------------------

    def evaluate_trial(self, instructions: dict[str, str], *, label: str, **fields: Any) -> TrialRecord:
        """Evaluate ``instructions`` on the whole dev set as one live trial; outages and interruptions raise."""
        if self.queue is not None:
            return self.queue.evaluate([TrialSpec(label=label, instructions=instructions, **fields)])[0]
        live = self.tracker.start(instructions=instructions, **fields)
        program = self.task.program_for(self.student, instructions)
        self.events.emit(EvaluationStarted(label=label, size=len(self.devset), trial_number=live.number,
                                           program=program, cases=self.devset))
        evaluation = evaluate(self.task, program, self.devset,
                              num_threads=self.config.num_threads, meter=self.meter, events=self.events,
                              label=label, interrupt=self.stop_reason)
        record = self.tracker.finish(live, **trial_outcome(evaluation))
        self.events.emit(TrialFinished(label=label, trial=record))
        if evaluation.error:
            raise LMOutageError(evaluation.error)
        if evaluation.interrupted:
            raise _Interrupted(evaluation.interrupted)
        return record

    # The loop ---------------------------------------------------------------------------------

    def baseline(self) -> TrialRecord:
        key = candidate_key(self.initial)
        found = self.tracker.find_trial(step=0, candidate_key=key)
        if found is not None:
            return found
        self._measuring_baseline = True
        try:
            return self.evaluate_trial(self.initial, label=BASELINE_LABEL, step=0, kind="baseline",
                                       candidate_key=key)
        except _Interrupted as stop:
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
        if self.queue is None or self.queue.worker is not None:
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
        request = ProposalRequest(
            step=step, predictor=predictor, current=current[predictor], trajectory=self.task.format_trajectory(results),
            failures=tuple((r.failure.category, r.feedback or r.failure.reason) for r in results if r.failure),
            inputs=inputs, outputs=outputs, history=history, tried=self._tried(predictor),
            edit_hints=dict(getattr(self.task, "edit_hints", {}) or {}), accepted_rules=self._accepted_rules(predictor),
        )
        proposals = self.proposer.propose(
            request=request, num_candidates=self.config.num_candidates, num_threads=self.config.num_threads,
            cases=_case_texts(results), output_fields=self.output_fields.get(predictor, ()),
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

    def _tried(self, predictor: str) -> frozenset[str]:
        """Texts of ``predictor`` this run evaluated or refused: a source never drafts them again."""
        evaluated = {normalized(t.instructions.get(predictor, "")) for t in self.tracker.trials()}
        return frozenset(evaluated | self.refused_texts)

    def _accepted_rules(self, predictor: str) -> tuple[tuple[str, str, str], ...]:
        """(before, feedback, rule) for each accepted step that appended a rule to ``predictor``."""
        by_number = {t.number: t for t in self.tracker.trials()}
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
        key = f"{incumbent.candidate_key}-incumbent"
        trial = self.tracker.find_trial(step=step, candidate_key=key)
        if trial is None:
            trial = self.evaluate_trial(incumbent.instructions, label=f"step {step} incumbent", step=step,
                                        kind="incumbent", candidate_key=key, parent_trial=incumbent.number)
        return trial

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
        best = min((t for t in trials if t is not None and t.status == "complete"),
                   key=lambda t: (t.failures, trials.index(t)), default=None)
        accepted = best is not None and self.config.acceptance.accepts(
            candidate=best.losses, incumbent=incumbent.losses, dev_size=len(self.devset))
        winner = best if accepted else incumbent
        return StepOutcome(
            step=step, incumbent_before=incumbent.number, incumbent_after=winner.number,
            best_candidate_trial=best.number if best is not None else None, accepted=accepted,
            incumbent_failure_rate=winner.failure_rate,
            steps_without_improvement=0 if accepted else self._without + 1,
            seconds=round(time.perf_counter() - started, 3),
        )

    def evaluate_candidates(self, step: int, plan: StepPlan, incumbent: TrialRecord) -> list[TrialRecord | None]:
        """Every candidate of the plan as a trial, evaluated in one shared pool (finished ones are reused).

        The exact early stop stays exact with candidates running side by side: a candidate
        stops once it cannot be accepted, or once a finished candidate has fewer failures
        than it already has (or as many, and comes first in the plan: ties go to the first).
        """
        trials: list[TrialRecord | None] = [self.tracker.find_trial(step=step, candidate_key=c.key)
                                            for c in plan.candidates]
        if self.queue is not None:
            return self._evaluate_in_queue(step, plan, incumbent, trials)
        lock = threading.Lock()
        jobs, positions = [], []
        for position, candidate in enumerate(plan.candidates):
            if trials[position] is not None:
                continue
            label = f"step {step} candidate {position + 1}/{len(plan.candidates)}"
            fields = dict(step=step, kind="candidate", candidate_key=candidate.key, instructions=candidate.instructions,
                          predictor=plan.predictor, samples=candidate.samples, parent_trial=incumbent.number,
                          feedback=candidate.feedback, source=candidate.source or None)
            jobs.append(self._candidate_job(label, position, fields, trials, incumbent, lock))
            positions.append(position)
        if not jobs:
            return trials
        reason = self.stop_reason()
        if reason is not None:
            raise _Interrupted(reason)
        evaluations = evaluate_jobs(self.task, jobs, self.devset, num_threads=self.config.num_threads,
                                    meter=self.meter, events=self.events, interrupt=self.stop_reason)
        error = next((e.error for e in evaluations if e.error), None)
        if error is not None:
            raise LMOutageError(error)
        interrupted = next((e.interrupted for e in evaluations if e.interrupted), None)
        if interrupted is not None:
            raise _Interrupted(interrupted)
        return trials

    def _evaluate_in_queue(self, step: int, plan: StepPlan, incumbent: TrialRecord,
                           trials: list[TrialRecord | None]) -> list[TrialRecord | None]:
        """The candidates as queued trials of the shared study, evaluated by any process (see :mod:`.queue_driver`).

        The LM-call budget is checked before the candidates are enqueued: a queued step runs to its end.
        """
        if all(t is not None for t in trials):
            return trials
        reason = self.stop_reason()
        if reason is not None:
            raise _Interrupted(reason)
        specs = [TrialSpec(step=step, kind="candidate", candidate_key=c.key, instructions=c.instructions,
                           predictor=plan.predictor, samples=c.samples, parent_trial=incumbent.number,
                           feedback=c.feedback, source=c.source or None,
                           label=f"step {step} candidate {i + 1}/{len(plan.candidates)}",
                           position=i, incumbent_failures=incumbent.failures)
                 for i, c in enumerate(plan.candidates)]
        return list(self.queue.evaluate(specs))

    def _candidate_job(self, label: str, position: int, fields: dict[str, Any], trials: list[TrialRecord | None],
                       incumbent: TrialRecord, lock: threading.Lock) -> EvaluationJob:
        program = self.task.program_for(self.student, fields["instructions"])
        live: dict[str, LiveTrial] = {}
        policy, acceptance, size = self.config.evaluation, self.config.acceptance, len(self.devset)

        def should_stop(evaluation: Evaluation) -> bool:
            loss = evaluation.failures
            with lock:
                rivals = [(t.failures, i) for i, t in enumerate(trials) if t is not None and t.status == "complete"]
            beaten = any(failures < loss or (failures <= loss and i < position) for failures, i in rivals)
            could_accept = acceptance.could_accept(loss=loss, incumbent_loss=incumbent.failures, dev_size=size)
            return policy.should_stop(loss=loss, could_accept=could_accept, beaten=beaten)

        def on_start() -> int:
            live["trial"] = self.tracker.start(**fields)
            self.events.emit(EvaluationStarted(label=label, size=size, trial_number=live["trial"].number,
                                               program=program, cases=self.devset))
            return live["trial"].number

        def on_finish(evaluation: Evaluation) -> None:
            record = self.tracker.finish(live["trial"], **trial_outcome(evaluation))
            with lock:
                trials[position] = record
            self.events.emit(TrialFinished(label=label, trial=record))

        return EvaluationJob(label=label, program=program, should_stop=should_stop, on_start=on_start,
                             on_finish=on_finish)

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
                try:
                    outcome = self.run_step(step, incumbent, planned=first_plan if step == 1 else None)
                except _Interrupted as stop:
                    stop_reason = stop.reason
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
        if evaluation.error:
            raise LMOutageError(evaluation.error)
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
