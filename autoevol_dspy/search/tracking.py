"""The Optuna study behind a run: one live trial per evaluation, step plans and outcomes, resume.

An evaluation is a trial from ``study.ask()`` (RUNNING while it runs, so another process
sees it) to ``study.tell()`` (COMPLETE, PRUNED or FAIL), its objective named
:data:`OBJECTIVE` and its intermediate values the failure rate as the dev cases are judged
(:meth:`RunTracker.progress`), the whole :class:`TrialRecord` in its user attributes. A
trial has no Optuna params on purpose: nothing here is a sampled hyperparameter, and step or
sample numbers would show as noise in the dashboard's importance, slice and contour plots;
the lineage (``step``, ``kind``, ``parent_trial``, ``source``) is in the user attributes. Step plans and outcomes, and the run's
identity (schema version, settings, data fingerprints, written in one step) live in the
study's user attributes. Any Optuna storage works: SQLite, PostgreSQL, MySQL, memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from autoevol_dspy.errors import RunConflictError
from autoevol_dspy.killpoints import kill_point
from autoevol_dspy.lm.usage import UsageReport
from autoevol_dspy.search.holdout import HoldoutComparison, HoldoutMeasure, compare_on_holdout
from autoevol_dspy.search.records import (
    PLANNED_FIELDS,
    SCHEMA_VERSION,
    RunSummary,
    StepOutcome,
    StepPlan,
    TrialRecord,
    TrialSpec,
)

__all__ = ["ALL_PREDICTORS", "OBJECTIVE", "QUEUED_KEY", "RECORD_KEY", "WORKER_KEY", "LiveTrial", "RunTracker", "candidate_key",
           "identity_of", "settings_differences"]

logger = logging.getLogger(__name__)

#: The name of every trial's value in the dashboard.
OBJECTIVE = "dev failure rate"
#: Intermediate values a trial reports while it is evaluated (one storage write each), besides its last.
PROGRESS_POINTS = 10

# The study's layout: every key this package writes into a study is named here, and only here.
#: Study attribute: the run's identity (schema version, settings, data fingerprints, what workers need).
_RUN_KEY = "autoevol"
#: Study attribute: the dev set as JSON rows, for workers that are not given one.
_DEVSET_KEY = "autoevol:devset"
#: Study attribute: the driver's state, running, finished or stopped (workers leave once finished).
_DRIVER_KEY = "autoevol:driver"
#: Trial attribute: the whole :class:`TrialRecord`.
RECORD_KEY = "record"
#: Trial attribute of trials put in the study's work queue: the :class:`TrialSpec` a worker evaluates.
QUEUED_KEY = "spec"
#: Trial attribute: the process that took a queued trial.
WORKER_KEY = "worker"
_STATE_OF = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
#: The ``predictor`` param of trials that evaluate whole programs (the baseline, a re-measured incumbent).
ALL_PREDICTORS = "(all)"


def _step_key(step: int, part: str) -> str:
    return f"step:{step:04d}:{part}"


def _holdout_key(candidate: str) -> str:
    return f"holdout:{candidate}"


def candidate_key(instructions: dict[str, str]) -> str:
    """A short content hash of a candidate: equal instructions are one candidate."""
    text = json.dumps(instructions, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def identity_of(study: optuna.Study) -> dict[str, Any] | None:
    """The run identity a study holds, or ``None`` for a study no run has started."""
    identity = study.user_attrs.get(_RUN_KEY)
    return dict(identity) if identity is not None else None


def settings_differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between two nested settings dicts."""
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(stored) | set(current), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            found += settings_differences(stored.get(key), current.get(key), name)
        return found
    return [] if stored == current else [prefix or "settings"]


@dataclass
class LiveTrial:
    """An evaluation in progress: its RUNNING Optuna trial and the record fields known at its start."""

    trial: optuna.Trial
    fields: dict[str, Any]

    @property
    def number(self) -> int:
        return self.trial.number


class RunTracker:
    """Reads and writes one run's study; refuses to mix runs made with different settings or data."""

    def __init__(self, study: optuna.Study) -> None:
        """Wrap ``study``, for reading (the report) or writing (``open``)."""
        self.study = study
        self._live: dict[int, LiveTrial] = {}
        self._reported: dict[int, int] = {}
        self._lock = threading.Lock()
        self._records: dict[int, TrialRecord] = {}
        self._finished: dict[tuple[int, str], TrialRecord] = {}
        self.refresh()

    # Opening ------------------------------------------------------------------------------------

    def refresh(self, snapshot: Sequence[optuna.trial.FrozenTrial] | None = None) -> list[TrialRecord]:
        """Index the finished trials written since the last look (by other processes too); returns the new ones.

        A record counts only once Optuna's state agrees with it: a trial killed between
        writing its record and ``tell`` (or a retried copy that inherited the record) is not finished.
        ``snapshot``: trials already read (one read gives a consistent view of the queue).
        """
        found = []
        trials = self.study.get_trials(deepcopy=False) if snapshot is None else snapshot
        for frozen in trials:
            payload = frozen.user_attrs.get(RECORD_KEY)
            if payload is None or frozen.number in self._records:
                continue
            if _STATE_OF.get(payload.get("status")) != frozen.state:
                continue
            record = TrialRecord.model_validate({**payload, "number": frozen.number})
            with self._lock:
                if record.number not in self._records:
                    self._index(record)
                    found.append(record)
        return found

    @classmethod
    def open(
        cls,
        *,
        storage: str | optuna.storages.BaseStorage,
        study_name: str,
        settings: dict[str, Any],
        fingerprints: dict[str, str],
        shared: bool = False,
        owner: str | None = None,
    ) -> "RunTracker":
        """Create the study, or load it when it holds a run with the same settings and data.

        ``shared``: the study is a work queue for several processes; trials that processes
        took from the queue are left to the heartbeat, only unqueued ones a dead process
        left RUNNING are failed (see :mod:`.queue`).
        """
        study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize",
                                    sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)
        identity = study.user_attrs.get(_RUN_KEY)
        kill_point("study-created")
        if identity is None:
            if "config" in study.user_attrs or study.user_attrs.get("schema_version") not in (None, SCHEMA_VERSION):
                raise RunConflictError(
                    f"study {study_name!r} was written by an older autoevol-dspy (schema "
                    f"{study.user_attrs.get('schema_version', 1)}); this version reads schema {SCHEMA_VERSION}: "
                    "start over (--restart) or use another run directory"
                )
            _name_objective(study)
            # Settings and data fingerprints in one write: a kill leaves both or neither.
            study.set_user_attr(_RUN_KEY, {"schema_version": SCHEMA_VERSION, "settings": settings,
                                           "fingerprints": fingerprints,
                                           "created": datetime.now().isoformat(timespec="seconds"),
                                           "run_dir": owner})
            kill_point("study-identity-saved")
        else:
            cls._check_same_run(study_name, identity, settings, fingerprints)
        tracker = cls(study)
        tracker._close_abandoned_trials(shared=shared)
        return tracker

    @staticmethod
    def _check_same_run(name: str, identity: dict, settings: dict, fingerprints: dict) -> None:
        if identity.get("schema_version") != SCHEMA_VERSION:
            raise RunConflictError(
                f"study {name!r} was written with schema {identity.get('schema_version')}; this version reads "
                f"schema {SCHEMA_VERSION}: start over (--restart) or use another run directory"
            )
        differing = settings_differences(identity.get("settings", {}), settings)
        differing += [f"data ({key} examples changed)" for key in sorted(set(fingerprints) | set(identity.get(
            "fingerprints", {}))) if identity.get("fingerprints", {}).get(key) != fingerprints.get(key)]
        if differing:
            raise RunConflictError(
                f"study {name!r} holds a run made with different settings ({', '.join(differing)}); "
                "use another study name or run directory, or start over"
            )

    def _close_abandoned_trials(self, *, shared: bool = False) -> None:
        """Fail the trials a killed process left RUNNING or WAITING: their evaluations never finished.

        In a shared study, queued trials (WAITING, or RUNNING with a heartbeat) belong to the queue.
        """
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if shared and QUEUED_KEY in frozen.user_attrs:
                continue
            if frozen.state == TrialState.WAITING:
                # ask() would pop the oldest WAITING trial, which in a shared study may be a queued one: fail this one.
                try:
                    self.study._storage.set_trial_state_values(frozen._trial_id, state=TrialState.FAIL)
                except UpdateFinishedTrialError:
                    continue
            else:
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
            logger.info("trial %d was left unfinished by an earlier process; marked failed", frozen.number)

    def identity(self) -> dict[str, Any]:
        """The run's identity: schema version, settings, data fingerprints (and what workers need)."""
        return identity_of(self.study) or {}

    def set_identity_part(self, key: str, value: Any) -> None:
        """Add one part to the identity (the driver's only later write to it), keeping the rest."""
        identity = self.identity()
        if identity.get(key) != value:
            self.study.set_user_attr(_RUN_KEY, {**identity, key: value})

    def save_devset(self, rows: list[dict[str, Any]]) -> str:
        """Keep the dev set (JSON rows) for workers that are not given one; returns where it is kept."""
        if self.study.user_attrs.get(_DEVSET_KEY) != rows:
            self.study.set_user_attr(_DEVSET_KEY, rows)
        return _DEVSET_KEY

    def devset_rows(self, where: str) -> list[dict[str, Any]]:
        """The dev set rows :meth:`save_devset` kept at ``where``."""
        return self.study.user_attrs.get(where) or []

    def mark_driver(self, state: str, reason: str | None = None) -> None:
        """Tell the workers how the run stands: running, finished or stopped (they leave once it is finished)."""
        self.study.set_user_attr(_DRIVER_KEY, {"state": state, "reason": reason,
                                               "updated": datetime.now().isoformat(timespec="seconds")})

    def driver_state(self) -> dict[str, Any]:
        """What :meth:`mark_driver` said last (empty before the driver started)."""
        return dict(self.study.user_attrs.get(_DRIVER_KEY) or {})

    # Trials -------------------------------------------------------------------------------------

    def start(self, **fields: Any) -> LiveTrial:
        """Open a RUNNING trial for one evaluation; ``fields`` are the :class:`TrialRecord` fields known now.

        Not for a shared study's driver (it evaluates through the queue): ``ask()`` pops the oldest WAITING trial."""
        attrs = _trial_attrs(fields)
        with self._lock:
            self.study.enqueue_trial({}, user_attrs=attrs)
            trial = self.study.ask()
            live = self._live[trial.number] = LiveTrial(trial=trial, fields=fields)
        return live

    def enqueue(self, spec: TrialSpec) -> None:
        """Put one evaluation in the study's work queue: a WAITING trial whose spec says what to evaluate."""
        attrs = _trial_attrs(spec.planned())
        self.study.enqueue_trial({}, user_attrs={**attrs, QUEUED_KEY: spec.model_dump(mode="json")})

    def take(self, trial: optuna.Trial, spec: TrialSpec) -> LiveTrial:
        """A queued trial this process popped (now RUNNING), tracked as ``start`` tracks its trials."""
        live = LiveTrial(trial=trial, fields=spec.planned())
        with self._lock:
            self._live[trial.number] = live
        return live

    def report_progress(self, live: LiveTrial, *, failures: float, evaluated: int, dev_size: int) -> None:
        """The failure rate so far (failed cases over the whole dev set) as the intermediate value at step
        ``evaluated``: it rises to the trial's value, and a pruned trial's last one is where it stopped."""
        if not dev_size or not evaluated:
            return
        with self._lock:
            if self._reported.get(live.number, 0) >= evaluated:
                return
            self._reported[live.number] = evaluated
        live.trial.report(failures / dev_size, step=evaluated)

    def progress(self, trial_number: int, *, failures: float, evaluated: int, dev_size: int) -> None:
        """:meth:`report_progress` for a trial this process is evaluating, by number (an event's trial);
        a few points per trial (every tenth of the dev set, and the last case), not one write per case."""
        every = max(1, dev_size // PROGRESS_POINTS)
        if evaluated % every and evaluated != dev_size:
            return
        with self._lock:
            live = self._live.get(trial_number)
        if live is not None:
            self.report_progress(live, failures=failures, evaluated=evaluated, dev_size=dev_size)

    def finish(self, live: LiveTrial, **outcome: Any) -> TrialRecord:
        """Close the trial (COMPLETE, PRUNED or FAIL) with the evaluation's outcome; returns the record."""
        record = TrialRecord(number=live.number, **live.fields, **outcome)
        payload = record.model_dump(mode="json", exclude={"number"})
        attrs = {
            RECORD_KEY: payload,
            "failures_by_category": record.failures_by_category,
            "lm_calls": record.usage.calls,
            "usage_by_role": payload["usage"]["by_role"],
            "seconds": record.seconds,
        }
        if record.feedback:
            attrs["feedback"] = record.feedback
        if record.source:
            attrs["source"] = record.source
        if record.error:
            attrs["error"] = record.error
        for key, value in attrs.items():
            live.trial.set_user_attr(key, value)
        if record.status in ("pruned", "complete"):
            self.report_progress(live, failures=record.failures, evaluated=record.evaluated, dev_size=record.dev_size)
        value = record.failure_rate if record.status == "complete" else None
        self.study.tell(live.trial, value, state=_STATE_OF[record.status])
        with self._lock:
            self._live.pop(live.number, None)
            self._reported.pop(live.number, None)
            self._index(record)
        return record

    def record(self, record: TrialRecord) -> TrialRecord:
        """Store an evaluation made elsewhere (an import, a fixture) as one trial; returns it with its number."""
        fields = record.model_dump(include=PLANNED_FIELDS)
        outcome = record.model_dump(exclude=set(fields) | {"number"})
        return self.finish(self.start(**fields), **outcome)

    def _index(self, record: TrialRecord) -> None:
        self._records[record.number] = record
        if record.finished:
            self._finished.setdefault((record.step, record.candidate_key), record)

    def trials(self) -> list[TrialRecord]:
        """Every recorded trial, in order."""
        with self._lock:
            return [self._records[number] for number in sorted(self._records)]

    def find_trial(self, *, step: int, candidate_key: str) -> TrialRecord | None:
        """The finished trial of this candidate in this step, if one was recorded."""
        with self._lock:
            return self._finished.get((step, candidate_key))

    def trial(self, number: int) -> TrialRecord:
        with self._lock:
            if number not in self._records:
                raise KeyError(f"no trial {number} in study {self.study.study_name!r}")
            return self._records[number]

    # Steps --------------------------------------------------------------------------------------

    def plan(self, step: int) -> StepPlan | None:
        payload = self.study.user_attrs.get(_step_key(step, "plan"))
        return StepPlan.model_validate(payload) if payload else None

    def save_plan(self, plan: StepPlan) -> None:
        self.study.set_user_attr(_step_key(plan.step, "plan"), plan.model_dump(mode="json"))
        kill_point("plan-saved")

    def outcome(self, step: int) -> StepOutcome | None:
        payload = self.study.user_attrs.get(_step_key(step, "outcome"))
        return StepOutcome.model_validate(payload) if payload else None

    def save_outcome(self, outcome: StepOutcome) -> None:
        kill_point("outcome-unsaved")
        self.study.set_user_attr(_step_key(outcome.step, "outcome"), outcome.model_dump(mode="json"))

    def save_cut_outcome(self, outcome: StepOutcome) -> None:
        """A step the run stopped in the middle of, decided on its finished candidates; kept apart from the
        decided outcomes, so a resumed run still finishes that step."""
        self.study.set_user_attr(_step_key(outcome.step, "cut"), outcome.model_dump(mode="json"))

    def cut_outcome(self, step: int) -> StepOutcome | None:
        payload = self.study.user_attrs.get(_step_key(step, "cut"))
        return StepOutcome.model_validate(payload) if payload else None

    def plans(self) -> list[StepPlan]:
        attrs = self.study.user_attrs
        return [StepPlan.model_validate(attrs[key]) for key in sorted(k for k in attrs if k.endswith(":plan"))]

    def outcomes(self) -> list[StepOutcome]:
        attrs = self.study.user_attrs
        return [StepOutcome.model_validate(attrs[key]) for key in sorted(k for k in attrs if k.endswith(":outcome"))]

    def holdout(self, candidate_key: str) -> HoldoutMeasure | None:
        """The held-out measure of these instructions, if this run made it already."""
        payload = self.study.user_attrs.get(_holdout_key(candidate_key))
        return HoldoutMeasure.model_validate(payload) if payload else None

    def save_holdout(self, result: HoldoutMeasure) -> None:
        self.study.set_user_attr(_holdout_key(result.candidate_key), result.model_dump(mode="json"))

    def holdouts(self) -> list[HoldoutMeasure]:
        attrs = self.study.user_attrs
        return [HoldoutMeasure.model_validate(attrs[k]) for k in sorted(attrs) if k.startswith(_holdout_key(""))]

    def summary(self, *, through_step: int | None = None) -> RunSummary:
        """Where the run stands: its trials, plans and decided steps (up to ``through_step``), the baseline,
        the incumbent, the LM usage of all of it, and the held-out check once both sides were measured."""
        trials, plans, holdouts = self.trials(), self.plans(), self.holdouts()
        outcomes = [o for o in self.outcomes() if through_step is None or o.step <= through_step]
        cut = self.cut_outcome((outcomes[-1].step if outcomes else 0) + 1)
        if cut is not None and (through_step is None or cut.step == through_step + 1):
            outcomes.append(cut)  # the step the run stopped in, decided on what it finished
        baseline = next((t for t in trials if t.kind == "baseline" and t.finished), None)
        best = baseline
        if outcomes:
            best = next((t for t in trials if t.number == outcomes[-1].incumbent_after), baseline)
        usage = UsageReport()
        for item in [*trials, *plans, *holdouts]:
            usage = usage + item.usage
        return RunSummary(trials=trials, plans=plans, outcomes=outcomes, baseline=baseline, best=best, usage=usage,
                          holdout=_holdout_check(holdouts, baseline, best))

    def recorded_calls(self) -> int:
        """LM calls already spent by this run in earlier processes (trials, step plans, held-out checks)."""
        return self.summary().usage.calls


def _holdout_check(measures: list[HoldoutMeasure], baseline: TrialRecord | None,
                   best: TrialRecord | None) -> HoldoutComparison | None:
    """Initial vs best on the held-out cases, once both were measured (one measure when they are the same)."""
    if baseline is None or best is None:
        return None
    found = {m.candidate_key: m for m in measures}
    initial = found.get(candidate_key(baseline.instructions))
    final = initial if best.instructions == baseline.instructions else found.get(candidate_key(best.instructions))
    return compare_on_holdout(initial, final) if initial is not None and final is not None else None


def _name_objective(study: optuna.Study) -> None:
    """Name the study's objective for the dashboard (Optuna marks ``set_metric_names`` experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE])


def _trial_attrs(fields: dict[str, Any]) -> dict[str, Any]:
    """The readable user attributes of a trial with these record fields (its lineage and its text)."""
    attrs = {"kind": fields["kind"], "step": fields["step"], "candidate_key": fields["candidate_key"],
             "parent_trial": fields.get("parent_trial"), "predictor": fields.get("predictor") or ALL_PREDICTORS,
             **_instruction_attrs(fields["instructions"])}
    if fields.get("source"):
        attrs["source"] = fields["source"]
    return attrs


def _instruction_attrs(instructions: dict[str, str]) -> dict[str, Any]:
    """The evaluated text, readable in the dashboard: ``method`` for one predictor, else ``instructions``."""
    if len(instructions) == 1:
        return {"method": next(iter(instructions.values()))}
    return {"instructions": instructions}
