"""AutoEvolInstruct: Auto Evol-Instruct as a DSPy teleprompter.

Each step runs the incumbent instructions on a mini-batch (the trajectory), asks the
optimizer LM m times to analyse it and rewrite the instructions, evaluates every
distinct candidate on one fixed dev set, and lets the acceptance criterion decide. Every
evaluation is a live Optuna trial; a run with the same storage and study continues where
the last one stopped. The loop is in :mod:`autoevol_dspy.search.run`; the rules it follows
are objects from :mod:`autoevol_dspy.search.strategies`; what it optimizes is a task from
:mod:`autoevol_dspy.tasks`. This module builds the run from its settings and owns the run
directory (``run_dir``): the study, then ``result.json`` and ``report.html``, written once
when the run ends (``report=False``: by the caller, as the command line does after its ``run.json``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dspy
import optuna
from dspy.teleprompt import Teleprompter

from autoevol_dspy.data.splits import fingerprint, split_holdout, split_train_dev
from autoevol_dspy.errors import ConfigurationError, LMUnavailableError, at_least
from autoevol_dspy.lm.health import watching_replies
from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.report.html import write_report
from autoevol_dspy.search.compile_arguments import refuse_compile_arguments
from autoevol_dspy.search.dspy_callbacks import DSPyEvaluateCallbacks
from autoevol_dspy.search.evaluation import LMOutageError
from autoevol_dspy.search.events import EventBus, SearchCallback
from autoevol_dspy.search.progress import LogEvents, ProgressBars, TrialProgress
from autoevol_dspy.search.proposer import InstructionProposer, ProposalStyle
from autoevol_dspy.search.strategies.proposal_source import ProposalSource
from autoevol_dspy.search.evaluators import Evaluator, LocalEvaluator, TrialJobs
from autoevol_dspy.search.queue import SharedStudy, shared_storage
from autoevol_dspy.search.queue_driver import QueueDriver
from autoevol_dspy.search.records import RunResult
from autoevol_dspy.search.run import SearchConfig, SearchRun
from autoevol_dspy.search.strategies import (
    AcceptanceCriterion,
    AnyOf,
    BatchSampler,
    EvaluationPolicy,
    ExactEarlyStop,
    MaxSteps,
    NoImprovement,
    PaperProtocol,
    PredictorChoice,
    RandomBatches,
    RoundRobin,
    Stopper,
    StrictImprovement,
)
from autoevol_dspy.search.strategies.proposal_guard import ProposalGuard
from autoevol_dspy.search.tracking import RunTracker, candidate_key
from autoevol_dspy.tasks.base import (
    OptimizationTask,
    apply_instructions,
    get_instructions,
    lm_name,
    lm_sampling,
)
from autoevol_dspy.tasks.evolution import EvolutionTask
from autoevol_dspy.tasks.program import ProgramTask

__all__ = ["AutoEvolInstruct"]

logger = logging.getLogger(__name__)


#: LM calls in flight when neither ``num_threads`` nor ``dspy.configure(num_threads=...)`` says otherwise.
DEFAULT_THREADS = 4
#: DSPy's ``num_threads`` before anyone configures it.
DSPY_DEFAULT_THREADS = 8


def _predictor_lms(student: dspy.Module) -> dict[str, Any]:
    """The LMs set on the student's own predictors (they win over the run's LM, as in DSPy), by predictor."""
    return {name: {"lm": lm_name(predictor.lm), "sampling": lm_sampling(predictor.lm)}
            for name, predictor in student.named_predictors() if getattr(predictor, "lm", None) is not None}


class AutoEvolInstruct(Teleprompter):
    """Optimize a program's instructions (by default an :class:`EvolInstruct` method) from its failures.

    What is optimized is the ``task``: an :class:`EvolutionTask` (the default; a failure is
    what its detectors find in an evolution) or a :class:`ProgramTask` (any DSPy program; a
    failure is a run its metric rejects; ``metric``, the first argument as in ``dspy.MIPROv2(metric)``,
    is the shortcut). ``lm`` runs the student (default: the configured LM) and ``optimizer_lm``
    analyses and rewrites (default: ``lm``); ``num_threads`` is the LM calls in flight (default: what
    ``dspy.configure(num_threads=...)`` set, else 4). ``holdout`` (a count or a share
    of the trainset) is kept out of the search; the initial and the best instructions are measured on it at the end
    (``result.holdout``). The search rules are objects: ``batch_sampler`` (a size means
    :class:`RandomBatches` of that size), ``evaluation`` (early stop, or the paper's protocol), ``acceptance``,
    ``stopper`` (combined with ``max_steps``), ``predictor_choice`` and ``proposal_guard`` (which
    keeps answers, questions, placeholders and copied cases out of the instructions, and asks
    again when a step's every proposal was refused). Candidates come from ``proposal_sources``
    (:mod:`.strategies.proposal_source`; the m samples are dealt to them in turn), or from a
    ``proposal_style``: ``"rewrite"`` (the paper: the optimizer LM rewrites the instructions),
    ``"amend"`` (it appends one rule), ``"mixed"`` (rules from the metric's feedback, general
    edits from the signature, and one rule the LM writes from worked examples: what a small
    optimizer LM can drive). By default an in-process optimizer LM (``make_lm("local")``) gets
    ``"mixed"`` and any other the paper's rewrite. ``callbacks``
    receive the run's typed events. ``workers`` (a :class:`SharedStudy`, or ``True`` for its
    defaults) evaluates through the study, so ``run_worker`` processes on any machine share
    the work; the storage must then be a database URL. With ``run_dir``, ``result.json`` and
    (unless ``report=False``) ``report.html`` are written there when the run ends.
    """

    def __init__(
        self,
        metric: Callable | None = None,
        *,
        task: OptimizationTask | None = None,
        lm: dspy.LM | None = None,
        optimizer_lm: dspy.LM | None = None,
        num_candidates: int = 5,
        dev_size: int = 50,
        holdout: int | float = 0.2,
        max_steps: int = 10,
        batch_sampler: BatchSampler | int = 10,
        evaluation: EvaluationPolicy | None = None,
        acceptance: AcceptanceCriterion | None = None,
        stopper: Stopper | None = None,
        predictor_choice: PredictorChoice | None = None,
        proposal_guard: ProposalGuard | None = None,
        proposal_style: ProposalStyle | None = None,
        proposal_sources: Sequence[ProposalSource] | None = None,
        optimizer_temperature: float | None = 0.6,
        num_threads: int | None = None,
        seed: int = 0,
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        run_dir: str | Path | None = None,
        callbacks: Sequence[SearchCallback] = (),
        progress: bool | None = None,
        workers: SharedStudy | bool | None = None,
        report: bool = True,
    ) -> None:
        super().__init__()
        if task is not None and metric is not None:
            raise ConfigurationError("pass either task= or metric= (the shortcut for ProgramTask(metric=...))")
        self.task = task if task is not None else (ProgramTask(metric=metric) if metric is not None else EvolutionTask())
        self.lm = lm
        self.optimizer_lm = optimizer_lm
        self.num_candidates = at_least("num_candidates", num_candidates)
        self.dev_size = at_least("dev_size", dev_size)
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or holdout < 0 or (
                isinstance(holdout, float) and holdout >= 1):
            raise ConfigurationError(f"holdout must be a count (0 for none) or a share in (0, 1), got {holdout!r}")
        self.holdout = holdout
        self.max_steps = at_least("max_steps", max_steps, minimum=0)
        self.batch_sampler = RandomBatches(batch_sampler) if isinstance(batch_sampler, int) else batch_sampler
        self.evaluation = evaluation or ExactEarlyStop()
        self.acceptance = acceptance or StrictImprovement()
        self.stopper = AnyOf(MaxSteps(self.max_steps), stopper or NoImprovement(patience=1))
        self.predictor_choice = predictor_choice or RoundRobin()
        self.proposal_guard = proposal_guard if proposal_guard is not None else ProposalGuard()
        if proposal_style not in (None, "rewrite", "amend", "mixed"):
            raise ConfigurationError(f"proposal_style must be 'rewrite', 'amend' or 'mixed', got {proposal_style!r}")
        if proposal_style is not None and proposal_sources is not None:
            raise ConfigurationError("pass either proposal_style= or proposal_sources=, not both")
        self.proposal_style = proposal_style
        self.proposal_sources = list(proposal_sources) if proposal_sources is not None else None
        self.optimizer_temperature = optimizer_temperature
        self.num_threads = None if num_threads is None else at_least("num_threads", num_threads)
        self.seed = seed
        self.storage = storage
        # One study per run: named after the run directory unless named; "autoevol" for a run without one.
        self.study_name = study_name or (Path(run_dir).name if run_dir is not None else "autoevol")
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.callbacks = list(callbacks)
        self.progress = progress
        self.workers = SharedStudy() if workers is True else (workers or None)
        if self.workers is not None and not isinstance(self.workers, SharedStudy):
            raise ConfigurationError(f"workers must be a SharedStudy, True or None, got {type(workers).__name__}")
        self.report = report
        self.result: RunResult | None = None

    @classmethod
    def paper_protocol(cls, **settings: Any) -> "AutoEvolInstruct":
        """The paper's evaluation protocol, for comparisons: every candidate and the incumbent on the
        whole dev set each step, no deduplication, no early stop. Selects the same methods, for more calls."""
        return cls(**{**settings, "evaluation": PaperProtocol()})

    # Public API ------------------------------------------------------------------------------------

    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: Sequence[Any],
        valset: Sequence[Any] | None = None,
        holdoutset: Sequence[Any] | None = None,
        teacher: dspy.Module | None = None,
        **kwargs: Any,
    ) -> dspy.Module:
        """Return ``student`` with its best instructions; the details are in ``self.result``.

        ``valset`` is the dev set (default: drawn from ``trainset``); ``holdoutset`` the cases
        of the held-out check (default: ``holdout`` of the trainset, kept out of the search).
        Other optimizers' arguments (``teacher=``, ``num_trials=``, ``eval_kwargs=``) and
        misspelled ones are refused with a one-line :class:`ConfigurationError`.
        """
        refuse_compile_arguments(teacher=teacher, **kwargs)
        default_lm = self.lm or dspy.settings.lm
        self.task.check(student, default_lm=default_lm)
        if (self.optimizer_lm or default_lm) is None:
            raise ConfigurationError("no optimizer LM: pass optimizer_lm= or lm=, or call dspy.configure(lm=...)")
        initial = get_instructions(student)
        trainset_examples, devset, holdout = self._split(trainset, valset, holdoutset)
        storage = self._storage()
        if self.workers is not None:
            storage = shared_storage(storage, self.workers)
        samples = self.num_candidates * (self.proposal_guard.retries + 1)
        proposer = InstructionProposer(
            task=self.task, lm=self.optimizer_lm, temperature=self.optimizer_temperature, seed=self.seed,
            guard=self.proposal_guard, sources=self.proposal_sources,
            style=self.proposal_style if self.proposal_sources is None else None,
            default_for=self.optimizer_lm or default_lm)
        tracker = RunTracker.open(
            storage=storage, study_name=self.study_name,
            settings=self.describe(initial, lm=default_lm, predictor_lms=_predictor_lms(student), proposer=proposer),
            fingerprints={"train": fingerprint(trainset_examples), "dev": fingerprint(devset),
                          "holdout": fingerprint(holdout)},
            shared=self.workers is not None,
            owner=self.run_dir.name if self.run_dir is not None else None,
        )
        meter = UsageMeter(parent=dspy.settings.usage_tracker)
        events = self._events(tracker)
        config = self._search_config()
        jobs = TrialJobs(task=self.task, student=student, devset=devset, policy=config.evaluation,
                         acceptance=config.acceptance, events=events)
        if self.workers is None:
            evaluator: Evaluator = LocalEvaluator(tracker=tracker, jobs=jobs, num_threads=config.num_threads,
                                                  meter=meter)
        else:
            evaluator = QueueDriver.open(self.workers, tracker=tracker, jobs=jobs, num_threads=config.num_threads,
                                         meter=meter, layout={"predictors": list(initial),
                                                              "step_limit": self.max_steps, "samples": samples})
        run = SearchRun(
            config=config, task=self.task, tracker=tracker, events=events, meter=meter, evaluator=evaluator,
            proposer=proposer,
            student=student, initial=initial, trainset=trainset_examples, devset=devset, holdout=holdout,
        )
        callbacks = [*(dspy.settings.get("callbacks") or []), meter.counter]  # tells cache hits from calls sent
        configured = {"lm": self.lm} if self.lm is not None else {}
        with dspy.context(usage_tracker=meter, callbacks=callbacks, **configured), watching_replies():
            try:
                result = run.execute()
            except LMOutageError as exc:
                evaluator.mark("stopped", f"an LM call failed: {exc}")
                raise LMUnavailableError(f"an LM call failed: {exc}; every finished trial is saved in study "
                                    f"{self.study_name!r}: fix the LM and rerun to continue") from None
            except BaseException as exc:
                evaluator.mark("stopped", type(exc).__name__)
                raise
        evaluator.mark("finished")
        self.result = result
        if self.run_dir is not None:
            result.save(self.run_dir / "result.json")
            if self.report:
                self._write_report()
        return apply_instructions(student, result.best_instructions)

    def _write_report(self) -> None:
        """RUN_DIR/report.html, as the command line writes it; a failed report never loses the results."""
        try:
            write_report(self.run_dir, storage=self.storage, study_name=self.study_name)
        except Exception as exc:  # noqa: BLE001 - the results are saved; say why the report is missing
            logger.warning("could not write the report in %s: %s", self.run_dir, exc)

    def describe(self, initial: dict[str, str], *, lm: dspy.LM | None = None,
                 predictor_lms: dict[str, Any] | None = None,
                 proposer: InstructionProposer | None = None) -> dict[str, Any]:
        """The settings that decide a run's results (no secrets): a resumed study must match them.

        ``lm``: the LM that really runs the student (``lm=``, else the one ``dspy.configure`` set at
        compile time), so a resume under another configured model or temperature is refused too.
        """
        lm = self.lm or lm
        optimizer_lm = self.optimizer_lm or lm
        return {
            "task": self.task.describe(),
            "initial_instructions": candidate_key(initial),
            "num_candidates": self.num_candidates,
            "dev_size": self.dev_size,
            "holdout": self.holdout,
            "seed": self.seed,
            "optimizer_temperature": self.optimizer_temperature,
            "batch_sampler": self.batch_sampler.describe(),
            "evaluation": self.evaluation.describe(),
            "acceptance": self.acceptance.describe(),
            "predictor_choice": self.predictor_choice.describe(),
            "proposal_guard": self.proposal_guard.describe(),
            "proposal_sources": proposer.describe() if proposer is not None else self.proposal_style,
            "lm": lm_name(lm),
            "optimizer_lm": lm_name(optimizer_lm),
            "lm_sampling": lm_sampling(lm),
            "optimizer_sampling": lm_sampling(optimizer_lm),
            **({"predictor_lms": predictor_lms} if predictor_lms else {}),
        }

    # Configuration ---------------------------------------------------------------------------------

    def _split(self, trainset: Sequence[Any], valset: Sequence[Any] | None,
               holdoutset: Sequence[Any] | None) -> tuple[list, list, list]:
        """Training seeds, dev set and held-out cases: disjoint, deterministic for a seed."""
        examples = self.task.examples(trainset, name="trainset")
        if holdoutset is not None:
            holdout = self.task.examples(holdoutset, name="holdoutset")
        else:
            examples, holdout = split_holdout(examples, holdout=self.holdout, seed=self.seed)
        if valset is None:
            train, dev = split_train_dev(examples, dev_size=self.dev_size, batch_size=self.batch_sampler.size,
                                         seed=self.seed)
            return train, dev, holdout
        if len(examples) < self.batch_sampler.size:
            raise ConfigurationError(
                f"the trainset has {len(examples)} examples, fewer than the batch size {self.batch_sampler.size}"
            )
        return examples, self.task.examples(valset, name="valset"), holdout

    def threads(self) -> int:
        """LM calls in flight: ``num_threads``, else ``dspy.configure(num_threads=...)``'s, else 4.

        DSPy's own default (8) is not taken for a configured value: it would double the calls in
        flight of every run that never asked for them (and the embedded model's contexts).
        """
        if self.num_threads is not None:
            return self.num_threads
        configured = dspy.settings.num_threads
        if configured is None or configured == DSPY_DEFAULT_THREADS:
            return DEFAULT_THREADS
        return at_least("dspy.settings.num_threads", configured)

    def _search_config(self) -> SearchConfig:
        return SearchConfig(
            num_candidates=self.num_candidates, num_threads=self.threads(), seed=self.seed,
            batch_sampler=self.batch_sampler, evaluation=self.evaluation, acceptance=self.acceptance,
            stopper=self.stopper, predictor_choice=self.predictor_choice,
        )

    def _events(self, tracker: RunTracker) -> EventBus:
        dspy_callbacks = DSPyEvaluateCallbacks(dspy.settings.get("callbacks") or [],
                                               metric=getattr(self.task, "metric", None), num_threads=self.threads())
        return EventBus([LogEvents(), ProgressBars(enabled=self.progress), TrialProgress(tracker), dspy_callbacks,
                         *self.callbacks])

    def _storage(self) -> str | optuna.storages.BaseStorage:
        if self.storage is not None:
            return self.storage
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{(self.run_dir / 'study.db').as_posix()}"
        return optuna.storages.InMemoryStorage()
