"""AutoEvolInstruct: Auto Evol-Instruct as a DSPy teleprompter.

Each step runs the incumbent instructions on a mini-batch (the trajectory), asks the
optimizer LM m times to analyse it and rewrite the instructions, evaluates every
distinct candidate on one fixed dev set, and keeps the candidate with the fewest
failures if it beats the incumbent. Every evaluation is an Optuna trial; a run with
the same storage and study continues where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dspy
import optuna
from dspy.teleprompt import Teleprompter
from tqdm.auto import tqdm

from autoevol_dspy.errors import AutoEvolError, ConfigurationError
from autoevol_dspy.evolution.detectors import FailureDetector
from autoevol_dspy.lm.usage import UsageMeter, UsageReport
from autoevol_dspy.search.evaluation import Evaluation, evaluate_program, run_cases
from autoevol_dspy.search.proposer import InstructionProposer
from autoevol_dspy.search.records import (
    CandidatePlan,
    RunResult,
    StepOutcome,
    StepPlan,
    TrialRecord,
)
from autoevol_dspy.search.splits import as_examples, fingerprint, split_train_dev
from autoevol_dspy.search.strategies.predictor_choice import PredictorChoice, RoundRobin
from autoevol_dspy.search.tracking import RunTracker
from autoevol_dspy.tasks.base import (
    OptimizationTask,
    apply_instructions,
    get_instructions,
)
from autoevol_dspy.tasks.evolution import EvolutionTask
from autoevol_dspy.tasks.program import ProgramTask

__all__ = ["AutoEvolInstruct", "candidate_key"]

logger = logging.getLogger(__name__)


def candidate_key(instructions: dict[str, str]) -> str:
    """A short content hash of a candidate: equal instructions are one candidate."""
    text = json.dumps(instructions, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _positive(name: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def _model_name(lm: dspy.LM | None) -> str | None:
    return getattr(lm, "model", None) if lm is not None else None


class AutoEvolInstruct(Teleprompter):
    """Optimize a program's instructions (by default an :class:`EvolInstruct` method) from its failures.

    Without ``metric`` the student is an evolving method and a failure is what the
    ``detectors`` find in an evolved instruction and its answer; with ``metric`` the
    student is any DSPy program and a failure is a run the metric rejects.
    """

    def __init__(
        self,
        *,
        metric: Callable | None = None,
        metric_threshold: float | None = None,
        evol_lm: dspy.LM | None = None,
        optimizer_lm: dspy.LM | None = None,
        response_lm: dspy.LM | None = None,
        detectors: Sequence[FailureDetector] | None = None,
        num_candidates: int = 5,
        batch_size: int = 10,
        dev_size: int = 50,
        max_steps: int = 10,
        rounds: int = 1,
        patience: int = 1,
        early_stop: bool = True,
        deduplicate: bool = True,
        reevaluate_incumbent: bool = False,
        optimizer_temperature: float | None = 0.6,
        predictor_choice: PredictorChoice | None = None,
        input_field: str = "instruction",
        num_threads: int = 4,
        seed: int = 0,
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str = "autoevol",
        run_dir: str | Path | None = None,
        max_lm_calls: int | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        self.metric = metric
        self.metric_threshold = metric_threshold
        self.evol_lm = evol_lm
        self.optimizer_lm = optimizer_lm
        self.response_lm = response_lm
        self.detectors = detectors
        self.num_candidates = _positive("num_candidates", num_candidates)
        self.batch_size = _positive("batch_size", batch_size)
        self.dev_size = _positive("dev_size", dev_size)
        self.max_steps = _positive("max_steps", max_steps, minimum=0)
        self.rounds = _positive("rounds", rounds)
        self.patience = _positive("patience", patience)
        self.num_threads = _positive("num_threads", num_threads)
        if max_lm_calls is not None:
            _positive("max_lm_calls", max_lm_calls)
        self.max_lm_calls = max_lm_calls
        self.early_stop = early_stop
        self.deduplicate = deduplicate
        self.reevaluate_incumbent = reevaluate_incumbent
        self.optimizer_temperature = optimizer_temperature
        self.predictor_choice = predictor_choice or RoundRobin()
        self.input_field = input_field
        self.seed = seed
        self.storage = storage
        self.study_name = study_name
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.result: RunResult | None = None

    @classmethod
    def paper_protocol(cls, **settings: Any) -> "AutoEvolInstruct":
        """The paper's evaluation protocol, for comparisons: every candidate and the incumbent on the
        whole dev set each step, no deduplication, no early stop. Selects the same methods, for more calls."""
        return cls(**{**settings, "early_stop": False, "deduplicate": False, "reevaluate_incumbent": True})

    # Public API ------------------------------------------------------------------------------------

    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: Sequence[Any],
        valset: Sequence[Any] | None = None,
        teacher: Any = None,
        **kwargs: Any,
    ) -> dspy.Module:
        """Return ``student`` with its best instructions; the details are in ``self.result``."""
        task = self._make_task()
        input_field = self.input_field if task.kind == "evolution" else None
        initial = get_instructions(student)
        examples = as_examples(trainset, input_field=input_field, name="trainset")
        if valset is not None:
            devset = as_examples(valset, input_field=input_field, name="valset")
            trainset_examples = examples
            if len(trainset_examples) < self.batch_size:
                raise ConfigurationError(
                    f"the trainset has {len(trainset_examples)} examples, fewer than batch_size={self.batch_size}"
                )
        else:
            trainset_examples, devset = split_train_dev(
                examples, dev_size=self.dev_size, batch_size=self.batch_size, seed=self.seed
            )
        tracker = RunTracker.open(
            storage=self._storage(),
            study_name=self.study_name,
            config=self._config(task, initial),
            fingerprints={"train": fingerprint(trainset_examples), "dev": fingerprint(devset)},
        )
        meter = UsageMeter()
        with dspy.context(usage_tracker=meter):
            result = _Run(self, task, tracker, meter, student, initial, trainset_examples, devset).execute()
        self.result = result
        if self.run_dir is not None:
            result.save(self.run_dir / "result.json")
        return apply_instructions(student, result.best_instructions)

    # Configuration ---------------------------------------------------------------------------------

    def _make_task(self) -> OptimizationTask:
        if self.metric is not None:
            return ProgramTask(metric=self.metric, threshold=self.metric_threshold, lm=self.evol_lm)
        return EvolutionTask(
            detectors=self.detectors,
            evol_lm=self.evol_lm,
            response_lm=self.response_lm,
            input_field=self.input_field,
        )

    def _storage(self) -> str | optuna.storages.BaseStorage:
        if self.storage is not None:
            return self.storage
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{(self.run_dir / 'study.db').as_posix()}"
        return optuna.storages.InMemoryStorage()

    def _config(self, task: OptimizationTask, initial: dict[str, str]) -> dict[str, Any]:
        """The settings that decide a run's results (no secrets): a resume must match them."""
        detectors = getattr(task, "detectors", None)
        return {
            "task": task.kind,
            "initial_instructions": candidate_key(initial),
            "num_candidates": self.num_candidates,
            "batch_size": self.batch_size,
            "dev_size": self.dev_size,
            "rounds": self.rounds,
            "seed": self.seed,
            "optimizer_temperature": self.optimizer_temperature,
            "protocol": "paper" if self.reevaluate_incumbent or not self.deduplicate else "autoevol",
            "detectors": [d.name for d in detectors] if detectors is not None else None,
            "metric": getattr(self.metric, "__name__", type(self.metric).__name__) if self.metric else None,
            "metric_threshold": self.metric_threshold,
            "evol_lm": _model_name(self.evol_lm),
            "optimizer_lm": _model_name(self.optimizer_lm),
            "response_lm": _model_name(self.response_lm),
        }


class _Run:
    """One execution of the loop against a study; holds the state a step needs."""

    def __init__(
        self,
        config: AutoEvolInstruct,
        task: OptimizationTask,
        tracker: RunTracker,
        meter: UsageMeter,
        student: dspy.Module,
        initial: dict[str, str],
        trainset: list[dspy.Example],
        devset: list[dspy.Example],
    ) -> None:
        self.config = config
        self.task = task
        self.tracker = tracker
        self.meter = meter
        self.student = student
        self.initial = initial
        self.trainset = trainset
        self.devset = devset
        self.prior_calls = tracker.recorded_calls()
        self.proposer = InstructionProposer(
            task=task, lm=config.optimizer_lm, temperature=config.optimizer_temperature, seed=config.seed
        )

    # Helpers ---------------------------------------------------------------------------------------

    def out_of_budget(self) -> bool:
        limit = self.config.max_lm_calls
        return limit is not None and self.prior_calls + self.meter.calls >= limit

    def program_with(self, instructions: dict[str, str]) -> dspy.Module:
        program = apply_instructions(self.student, instructions)
        if self.task.kind == "evolution" and hasattr(program, "rounds"):
            program.rounds = self.config.rounds
        return program

    def evaluate(self, instructions: dict[str, str], *, bound: int | None, label: str) -> Evaluation:
        return evaluate_program(
            self.task,
            self.program_with(instructions),
            self.devset,
            num_threads=self.config.num_threads,
            meter=self.meter,
            failure_bound=bound if self.config.early_stop else None,
            out_of_budget=self.out_of_budget,
            description=label,
            progress=self.config.progress,
        )

    def record(self, evaluation: Evaluation, **fields: Any) -> TrialRecord:
        status = "failed" if evaluation.error else ("pruned" if evaluation.pruned else "complete")
        record = TrialRecord(
            status=status,
            failure_rate=evaluation.failure_rate if status == "complete" else None,
            failures=evaluation.failures,
            evaluated=evaluation.evaluated,
            dev_size=evaluation.dev_size,
            failures_by_category=dict(evaluation.by_category),
            error=evaluation.error,
            usage=evaluation.usage,
            seconds=round(evaluation.seconds, 3),
            **fields,
        )
        return self.tracker.record_trial(record)

    # The loop --------------------------------------------------------------------------------------

    def baseline(self) -> TrialRecord:
        key = candidate_key(self.initial)
        found = self.tracker.find_trial(step=0, candidate_key=key)
        if found is not None:
            return found
        evaluation = self.evaluate(self.initial, bound=None, label="initial instructions")
        if evaluation.error:
            raise AutoEvolError(f"the initial instructions could not be evaluated on the dev set: {evaluation.error}")
        record = self.record(evaluation, step=0, kind="baseline", candidate_key=key, instructions=self.initial)
        logger.info("initial failure rate %.3f (%d/%d)", record.failure_rate, record.failures, record.dev_size)
        return record

    def make_plan(self, step: int, incumbent: TrialRecord) -> StepPlan:
        before = self.meter.report()
        rng = random.Random(f"autoevol-batch:{self.config.seed}:{step}")
        size = min(self.config.batch_size, len(self.trainset))
        batch_indices = sorted(rng.sample(range(len(self.trainset)), size))
        batch = [(i, self.trainset[i]) for i in batch_indices]
        program = self.program_with(incumbent.instructions)
        results = run_cases(self.task, program, batch, num_threads=self.config.num_threads)
        predictors = list(incumbent.instructions)
        predictor = self.config.predictor_choice.choose(step=step, predictors=predictors)
        proposals = self.proposer.propose(
            step=step,
            predictor=predictor,
            current=incumbent.instructions[predictor],
            trajectory=self.task.format_trajectory(results),
            num_candidates=self.config.num_candidates,
            num_threads=self.config.num_threads,
        )
        candidates: dict[str, CandidatePlan] = {}
        discarded = []
        for proposal in proposals:
            if proposal.instructions is None:
                discarded.append(f"sample {proposal.sample}: {proposal.rejected}")
                continue
            instructions = {**incumbent.instructions, predictor: proposal.instructions}
            key = candidate_key(instructions)
            if not self.config.deduplicate:
                key = f"{key}-s{proposal.sample}"
            if key in candidates:
                candidates[key].samples.append(proposal.sample)
            else:
                candidates[key] = CandidatePlan(
                    key=key, instructions=instructions, feedback=proposal.feedback, samples=[proposal.sample]
                )
        return StepPlan(
            step=step,
            predictor=predictor,
            incumbent_trial=incumbent.number,
            batch_indices=batch_indices,
            trajectory_failures=sum(1 for r in results if r.failure is not None),
            trajectory_size=len(results),
            candidates=list(candidates.values()),
            discarded=discarded,
            usage=self.meter.report() - before,
        )

    def remeasure(self, step: int, incumbent: TrialRecord) -> TrialRecord:
        """Paper protocol: evaluate the incumbent again on the whole dev set (recorded as its own trial)."""
        key = f"{incumbent.candidate_key}-incumbent"
        trial = self.tracker.find_trial(step=step, candidate_key=key)
        if trial is None:
            evaluation = self.evaluate(incumbent.instructions, bound=None, label=f"step {step} incumbent")
            trial = self.record(
                evaluation, step=step, kind="incumbent", candidate_key=key,
                instructions=incumbent.instructions, parent_trial=incumbent.number,
            )
        return trial if trial.status == "complete" else incumbent

    def run_step(self, step: int, incumbent: TrialRecord, without_improvement: int) -> StepOutcome:
        plan = self.tracker.plan(step)
        if plan is None:
            plan = self.make_plan(step, incumbent)
            self.tracker.save_plan(plan)
        logger.info(
            "step %d: rewriting %r, trajectory failures %d/%d, %d distinct candidate(s), %d discarded",
            step, plan.predictor, plan.trajectory_failures, plan.trajectory_size,
            len(plan.candidates), len(plan.discarded),
        )
        best: TrialRecord | None = None
        budget_exhausted = False
        if self.config.reevaluate_incumbent:
            incumbent = self.remeasure(step, incumbent)
        for number, candidate in enumerate(plan.candidates, start=1):
            trial = self.tracker.find_trial(step=step, candidate_key=candidate.key)
            if trial is None:
                if self.out_of_budget():
                    budget_exhausted = True
                    break
                bound = incumbent.failures if best is None else min(incumbent.failures, best.failures)
                evaluation = self.evaluate(
                    candidate.instructions, bound=bound, label=f"step {step} candidate {number}/{len(plan.candidates)}"
                )
                trial = self.record(
                    evaluation,
                    step=step,
                    kind="candidate",
                    candidate_key=candidate.key,
                    instructions=candidate.instructions,
                    predictor=plan.predictor,
                    parent_trial=incumbent.number,
                    feedback=candidate.feedback,
                )
                if trial.status == "failed" and self.out_of_budget():
                    budget_exhausted = True
            if trial.status == "complete" and (best is None or trial.failures < best.failures):
                best = trial
            if budget_exhausted:
                break
        accepted = best is not None and best.failures < incumbent.failures
        winner = best if accepted else incumbent
        outcome = StepOutcome(
            step=step,
            incumbent_before=incumbent.number,
            incumbent_after=winner.number,
            best_candidate_trial=best.number if best is not None else None,
            accepted=accepted,
            incumbent_failure_rate=winner.failure_rate,
            steps_without_improvement=0 if accepted else without_improvement + 1,
            budget_exhausted=budget_exhausted,
        )
        self.tracker.save_outcome(outcome)
        logger.info(
            "step %d: best candidate %s, incumbent failure rate %.3f -> %.3f (%s)",
            step,
            f"{best.failure_rate:.3f}" if best is not None else "none",
            incumbent.failure_rate,
            winner.failure_rate,
            "accepted" if accepted else "kept",
        )
        return outcome

    def execute(self) -> RunResult:
        incumbent = self.baseline()
        without_improvement = 0
        stop_reason = "max_steps"
        bar = tqdm(total=self.config.max_steps, desc="AutoEvolInstruct steps", disable=not self.config.progress)
        try:
            for step in range(1, self.config.max_steps + 1):
                outcome = self.tracker.outcome(step)
                if outcome is None:
                    if self.out_of_budget():
                        stop_reason = "budget"
                        break
                    outcome = self.run_step(step, incumbent, without_improvement)
                incumbent = self.tracker.trial(outcome.incumbent_after)
                without_improvement = outcome.steps_without_improvement
                bar.update(1)
                bar.set_postfix(failure_rate=f"{incumbent.failure_rate:.3f}")
                if outcome.budget_exhausted:
                    stop_reason = "budget"
                    break
                if without_improvement >= self.config.patience:
                    stop_reason = "patience"
                    break
        finally:
            bar.close()
        return self.summarize(incumbent, stop_reason)

    def summarize(self, incumbent: TrialRecord, stop_reason: str) -> RunResult:
        trials = self.tracker.trials()
        plans = self.tracker.plans()
        outcomes = self.tracker.outcomes()
        baseline = next(t for t in trials if t.kind == "baseline" and t.finished)
        usage = UsageReport()
        for item in [*trials, *plans]:
            usage = usage + item.usage
        logger.info(
            "stopped (%s): failure rate %.3f -> %.3f, %d LM calls",
            stop_reason, baseline.failure_rate, incumbent.failure_rate, usage.calls,
        )
        return RunResult(
            study_name=self.tracker.study.study_name,
            best_instructions=incumbent.instructions,
            best_trial=incumbent.number,
            initial_failure_rate=baseline.failure_rate,
            best_failure_rate=incumbent.failure_rate,
            failure_rate_by_step=[baseline.failure_rate] + [o.incumbent_failure_rate for o in outcomes],
            stop_reason=stop_reason,
            steps=outcomes,
            plans=plans,
            trials=trials,
            usage=usage,
            train_size=len(self.trainset),
            dev_size=len(self.devset),
        )
