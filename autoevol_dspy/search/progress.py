"""Subscribers that show a run to a person: progress bars on a terminal, log lines always."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from autoevol_dspy.search.events import (
    BASELINE_LABEL,
    CaseJudged,
    EvaluationEnded,
    EvaluationStarted,
    Event,
    HoldoutChecked,
    RunEnded,
    RunStarted,
    StepDecided,
    StepPlanned,
    TrialFinished,
)
from autoevol_dspy.terminal import stderr_is_terminal

if TYPE_CHECKING:  # pragma: no cover
    from autoevol_dspy.search.tracking import RunTracker

__all__ = ["LogEvents", "ProgressBars", "TrialProgress"]

logger = logging.getLogger("autoevol_dspy.search")


class ProgressBars:
    """One bar per evaluation (cases and failures so far); quiet unless ``enabled``."""

    def __init__(self, *, enabled: bool | None = None) -> None:
        self.enabled = stderr_is_terminal() if enabled is None else enabled
        self._bars: dict[str, tqdm] = {}
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        if not self.enabled:
            return
        with self._lock:
            if isinstance(event, EvaluationStarted):
                self._bars[event.label] = tqdm(total=event.size, desc=event.label, leave=False)
            elif isinstance(event, CaseJudged) and event.label in self._bars:
                bar = self._bars[event.label]
                bar.update(event.done - bar.n)
                bar.set_postfix(failures=event.failures, refresh=False)
            elif isinstance(event, (TrialFinished, EvaluationEnded)) and event.label in self._bars:
                self._bars.pop(event.label).close()


class TrialProgress:
    """The dev failure rate of each running trial as it accumulates, as the trial's Optuna intermediate values
    (the dashboard's intermediate-values plot); see :meth:`RunTracker.progress`."""

    def __init__(self, tracker: "RunTracker") -> None:
        self.tracker = tracker
        self._running: dict[str, list] = {}  # label -> [trial number, dev size, losses so far]
        self._lock = threading.Lock()

    def on_event(self, event: Event) -> None:
        if isinstance(event, EvaluationStarted):
            if event.trial_number is not None:
                with self._lock:
                    self._running[event.label] = [event.trial_number, event.size, 0.0]
        elif isinstance(event, CaseJudged) and event.case is not None:
            with self._lock:
                running = self._running.get(event.label)
                if running is None:
                    return
                running[2] += event.case.case_loss
                number, size, losses = running
            self.tracker.progress(number, failures=losses, evaluated=event.done, dev_size=size)
        elif isinstance(event, (TrialFinished, EvaluationEnded)):
            with self._lock:
                self._running.pop(event.label, None)


def _rate(failures: int, size: int) -> str:
    return f"{failures / size:.3f} ({failures}/{size})" if size else "n/a"


class LogEvents:
    """The run's story as INFO log lines: each step's plan, each trial, each decision, the end."""

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            logger.info("study %r: %d training, %d dev, %d held-out examples; %d finished trials resumed",
                        event.study_name, event.train_size, event.dev_size, event.holdout_size, event.resumed_trials)
        elif isinstance(event, EvaluationStarted):
            if event.trial_number is None or event.label == BASELINE_LABEL:  # the long waits a person must see
                logger.info("%s: evaluating on %d case(s)%s", event.label, event.size,
                            " (the baseline every candidate must beat)" if event.label == BASELINE_LABEL else "")
            else:
                logger.debug("%s: trial %d evaluating on %d case(s)", event.label, event.trial_number, event.size)
        elif isinstance(event, StepPlanned):
            plan = event.plan
            logger.info("step %d: rewriting %r, trajectory failures %d/%d, %d distinct candidate(s), %d discarded",
                        plan.step, plan.predictor, plan.trajectory_failures, plan.trajectory_size,
                        len(plan.candidates), len(plan.discarded))
            for reason in plan.discarded:
                logger.info("step %d: candidate %s discarded", plan.step, reason)
        elif isinstance(event, TrialFinished):
            trial = event.trial
            detail = trial.error or (f"failure rate {_rate(trial.failures, trial.dev_size)}" if trial.status ==
                                     "complete" else f"stopped early at {trial.failures} failures")
            logger.info("trial %s (%s): %s, %s", trial.number, event.label, trial.status, detail)
        elif isinstance(event, StepDecided):
            outcome = event.outcome
            logger.info("step %d: incumbent failure rate %.3f (%s%s)", outcome.step, outcome.incumbent_failure_rate,
                        "accepted a candidate" if outcome.accepted else "kept",
                        ", decided on the candidates finished before the stop" if outcome.cut_short else "")
        elif isinstance(event, HoldoutChecked):
            logger.info("%s", event.comparison.describe())
        elif isinstance(event, RunEnded):
            result = event.result
            logger.info("stopped (%s): dev failure rate %.3f -> %.3f, %s", result.stop_reason,
                        result.initial_failure_rate, result.best_failure_rate, result.describe_calls())
