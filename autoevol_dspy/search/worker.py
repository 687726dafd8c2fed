"""A worker process for a shared study: ``run_worker(student, metric, storage=..., study_name=...)``.

A worker reads the run's identity from the study (the driver writes it: settings, data
fingerprints, the queue's heartbeat settings, the dev set), refuses in one line when its
program, task, LM or data differ from the run's, then evaluates queued trials until the
driver marks the run finished. Its LM keys come from its own environment; the study holds
model names only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
import optuna

from autoevol_dspy.data.splits import fingerprint
from autoevol_dspy.errors import ConfigurationError, LMUnavailableError, RunConflictError, at_least
from autoevol_dspy.lm.health import watching_replies
from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search import strategies
from autoevol_dspy.search.evaluation import LMOutageError
from autoevol_dspy.search.evaluators import TrialJobs
from autoevol_dspy.search.events import EventBus, SearchCallback
from autoevol_dspy.search.progress import LogEvents, ProgressBars, TrialProgress
from autoevol_dspy.search.queue import SharedStudy, TrialQueue, is_database_url, rdb_storage, shared_storage
from autoevol_dspy.search.queue_driver import decode_examples
from autoevol_dspy.search.queue_worker import QueueWorker
from autoevol_dspy.search.records import SCHEMA_VERSION
from autoevol_dspy.search.tracking import RunTracker, identity_of, settings_differences
from autoevol_dspy.tasks.base import OptimizationTask, get_instructions, lm_name
from autoevol_dspy.tasks.evolution import EvolutionTask
from autoevol_dspy.tasks.program import ProgramTask

__all__ = ["WorkerSummary", "read_identity", "run_worker"]

logger = logging.getLogger(__name__)

_STATE_CHECK_S = 2.0


@dataclass(frozen=True)
class WorkerSummary:
    """What one worker did: trials told, LM calls made, seconds, and why it left."""

    trials: int
    lm_calls: int
    seconds: float
    reason: str


def read_identity(storage: str, study_name: str, *, wait_s: float | None, poll_s: float = 0.25) -> dict[str, Any]:
    """The identity of a run started for workers, waiting up to ``wait_s`` (``None``: forever) for a driver to write it."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    plain = rdb_storage(storage)
    said = False
    while True:
        try:
            identity = identity_of(optuna.load_study(study_name=study_name, storage=plain))
            exists = True
        except KeyError:
            identity, exists = None, False
        if identity is not None and "workers" in identity:
            return identity
        if deadline is not None and time.monotonic() >= deadline:
            what = "holds a run that was not started for workers" if exists else "does not exist"
            raise RunConflictError(f"study {study_name!r} {what}; start the driver with workers (autoevol optimize "
                                   "--workers, or AutoEvolInstruct(workers=True)) on the same storage")
        if not said:
            logger.info("waiting for a driver to start study %r", study_name)
            said = True
        time.sleep(poll_s)


def run_worker(
    student: dspy.Module,
    task_or_metric: OptimizationTask | Callable | None = None,
    *,
    storage: str,
    study_name: str = "autoevol",
    lm: dspy.LM | None = None,
    devset: Sequence[Any] | None = None,
    num_threads: int = 4,
    evaluation: strategies.EvaluationPolicy | None = None,
    acceptance: strategies.AcceptanceCriterion | None = None,
    wait_s: float | None = 600.0,
    idle_timeout_s: float | None = None,
    callbacks: Sequence[SearchCallback] = (),
    progress: bool | None = False,
) -> WorkerSummary:
    """Evaluate the queued trials of a shared study until its driver marks the run finished.

    ``student`` is the program the driver compiles (its instructions come from each trial);
    ``task_or_metric`` is its task, or the metric of a :class:`ProgramTask` (default: an
    :class:`EvolutionTask`); ``lm`` runs it, as ``AutoEvolInstruct(lm=...)`` did. The dev set
    comes from the study unless ``devset`` is given (it must be the run's). A custom
    evaluation policy or acceptance criterion must be passed in; built-in ones are rebuilt
    from the study. ``wait_s``: how long to wait for the driver to start the study;
    ``idle_timeout_s``: leave after this long without work (default: stay until the run ends).
    """
    at_least("num_threads", num_threads)
    if not is_database_url(storage):
        raise ConfigurationError("storage must be the run's database URL (postgresql+psycopg://... or sqlite:///...), "
                                 f"got {storage!r}")
    task = _task_of(task_or_metric)
    identity = read_identity(storage, study_name, wait_s=wait_s)
    workers = identity["workers"]
    settings = SharedStudy.from_description(workers["shared"])
    study = optuna.load_study(study_name=study_name, storage=shared_storage(storage, settings))
    layout = workers["layout"]
    tracker = RunTracker(study)
    examples = _check_run(tracker, identity, task=task, student=student, lm=lm, devset=devset)
    run_settings = identity["settings"]
    meter = UsageMeter(parent=dspy.settings.usage_tracker)
    jobs = TrialJobs(
        task=task, student=student, devset=examples,
        policy=_strategy(evaluation, run_settings["evaluation"], "evaluation", strategies.EvaluationPolicy),
        acceptance=_strategy(acceptance, run_settings["acceptance"], "acceptance", strategies.AcceptanceCriterion),
        events=EventBus([LogEvents(), ProgressBars(enabled=progress), TrialProgress(tracker), *callbacks]),
    )
    worker = QueueWorker(queue=TrialQueue(study, settings), tracker=tracker, jobs=jobs, num_threads=num_threads,
                         meter=meter)
    started = time.perf_counter()
    logger.info("worker %s on study %r: %d dev cases, %d LM calls at a time", worker.queue.worker, study_name,
                len(examples), num_threads)
    with dspy.context(usage_tracker=meter, **({"lm": lm} if lm is not None else {})), watching_replies():
        reason = _serve(worker, tracker, settings, idle_timeout_s)
    summary = WorkerSummary(trials=worker.evaluated, lm_calls=meter.calls,
                            seconds=round(time.perf_counter() - started, 3), reason=reason)
    logger.info("worker leaves (%s): %d trial(s), %d LM calls in %.1fs", reason, summary.trials, summary.lm_calls,
                summary.seconds)
    return summary


def _serve(worker: QueueWorker, tracker: RunTracker, settings: SharedStudy, idle_timeout_s: float | None) -> str:
    """Drain the queue again and again; leave when the run is finished (or after ``idle_timeout_s`` idle)."""
    idle_since = time.monotonic()
    last_state_check = 0.0
    said_stopped = False
    while True:
        try:
            done = worker.drain()
        except LMOutageError as exc:
            raise LMUnavailableError(f"an LM call failed: {exc}; the trial is saved as failed and the driver stops "
                                "the run: fix this worker's LM and start it again") from None
        now = time.monotonic()
        if done:
            idle_since = now
            continue
        if now - last_state_check >= _STATE_CHECK_S:
            last_state_check = now
            state = tracker.driver_state()
            if state.get("state") == "finished":
                return "the run finished"
            if state.get("state") == "stopped" and not said_stopped:
                logger.info("the driver stopped (%s); waiting for it to resume", state.get("reason"))
            said_stopped = state.get("state") == "stopped"
        if idle_timeout_s is not None and now - idle_since >= idle_timeout_s:
            return f"no work for {idle_timeout_s:g}s"
        worker.queue.fail_stale()
        time.sleep(settings.poll_s)


def _task_of(task_or_metric: OptimizationTask | Callable | None) -> OptimizationTask:
    if task_or_metric is None:
        return EvolutionTask()
    if isinstance(task_or_metric, OptimizationTask):
        return task_or_metric
    if callable(task_or_metric):
        return ProgramTask(metric=task_or_metric)
    raise ConfigurationError(f"task_or_metric must be a task, a metric or None, got {type(task_or_metric).__name__}")


def _check_run(tracker: RunTracker, identity: dict[str, Any], *, task: OptimizationTask, student: dspy.Module,
               lm: dspy.LM | None, devset: Sequence[Any] | None) -> list[dspy.Example]:
    """The run's dev set, after checking that this worker would evaluate exactly what the driver would."""
    name = tracker.study.study_name
    if identity.get("schema_version") != SCHEMA_VERSION:
        raise RunConflictError(f"study {name!r} was written with schema {identity.get('schema_version')}; this "
                               f"worker reads schema {SCHEMA_VERSION}: install the driver's autoevol-dspy version")
    settings, workers = identity["settings"], identity["workers"]
    differing = settings_differences(settings.get("task"), task.describe(), "task")
    running = lm or dspy.settings.lm  # the LM that really runs here, as the run's identity holds it
    if settings.get("lm") is not None and lm_name(running) != settings["lm"]:
        differing.append(f"lm ({settings['lm']} in the run, {lm_name(running)} here)")
    predictors = list(get_instructions(student))
    if predictors != workers["layout"]["predictors"]:
        differing.append(f"program (predictors {predictors}, the run's are {workers['layout']['predictors']})")
    if differing:
        raise RunConflictError(f"this worker differs from the run in study {name!r}: {', '.join(differing)}; "
                               "start it with the driver's program, task and LMs")
    wanted = identity.get("fingerprints", {}).get("dev")
    if devset is not None:
        examples = task.examples(devset, name="devset")
    elif workers["devset"].get("attr"):
        examples = decode_examples(tracker.devset_rows(workers["devset"]["attr"]))
    else:
        raise RunConflictError(f"study {name!r} does not hold its dev set (it is not JSON): pass the run's "
                               "valset as devset= to run_worker")
    if fingerprint(examples) != wanted:
        raise RunConflictError(f"this worker's dev set differs from the run's in study {name!r} (fingerprint "
                               f"{fingerprint(examples)}, the run's {wanted}); pass the driver's dev set")
    return examples


def _strategy(given: Any, described: dict[str, Any], what: str, protocol: type) -> Any:
    """The run's evaluation policy or acceptance criterion: the one given, or a built-in one rebuilt from the study."""
    if given is not None:
        if given.describe() != described:
            raise RunConflictError(f"the {what} given to this worker ({given.describe()}) is not the run's "
                                   f"({described})")
        return given
    cls = getattr(strategies, str(described.get("type")), None)
    if isinstance(cls, type):
        try:
            rebuilt = cls(**{k: v for k, v in described.items() if k != "type"})
        except TypeError:
            rebuilt = None
        if rebuilt is not None and isinstance(rebuilt, protocol) and rebuilt.describe() == described:
            return rebuilt
    raise RunConflictError(f"the run uses a custom {what} ({described}); pass the same object to run_worker "
                           f"as {what}=")
