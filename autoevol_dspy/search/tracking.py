"""The Optuna study behind a run: one trial per evaluated candidate, step plans, resume.

Trials are written whole, when their evaluation ends (``study.add_trial``), so a killed
run never leaves a half-written trial; step plans and outcomes live in the study's user
attributes. Any Optuna storage works: a SQLite file, PostgreSQL, MySQL, or in memory.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from autoevol_dspy.errors import RunConflictError
from autoevol_dspy.search.records import (
    SCHEMA_VERSION,
    StepOutcome,
    StepPlan,
    TrialRecord,
)

__all__ = ["RunTracker"]

logger = logging.getLogger(__name__)

_STATE_OF = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}
_RECORD_KEY = "record"


class RunTracker:
    """Reads and writes one run's study; refuses to mix runs made with different settings."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    @classmethod
    def open(
        cls,
        *,
        storage: str | optuna.storages.BaseStorage | None,
        study_name: str,
        config: dict[str, Any],
        fingerprints: dict[str, str],
    ) -> "RunTracker":
        """Create the study, or load it when it exists and was made with the same settings and data."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            storage=storage, study_name=study_name, direction="minimize", load_if_exists=True
        )
        attrs = study.user_attrs
        if "config" not in attrs:
            study.set_user_attr("schema_version", SCHEMA_VERSION)
            study.set_user_attr("config", config)
            study.set_user_attr("fingerprints", fingerprints)
            study.set_user_attr("created", datetime.now().isoformat(timespec="seconds"))
        else:
            cls._check_same_run(study_name, attrs, config, fingerprints)
            logger.info("Resuming study %r with %d trials", study_name, len(study.trials))
        return cls(study)

    @staticmethod
    def _check_same_run(name: str, attrs: dict, config: dict, fingerprints: dict) -> None:
        stored_config = attrs.get("config", {})
        differing = sorted(
            key for key in set(stored_config) | set(config) if stored_config.get(key) != config.get(key)
        )
        if attrs.get("fingerprints") != fingerprints:
            differing.append("data (trainset or valset changed)")
        if differing:
            raise RunConflictError(
                f"study {name!r} holds a run made with different settings ({', '.join(differing)}); "
                "use another study name or run directory, or start over"
            )

    # Trials ----------------------------------------------------------------------------------------

    def record_trial(self, record: TrialRecord) -> TrialRecord:
        """Store a finished evaluation as one trial and return the record with its number."""
        now = datetime.now()
        value = record.failure_rate if record.status == "complete" else None
        intermediate = {}
        if record.status == "pruned" and record.dev_size:
            intermediate = {record.evaluated: record.failures / record.dev_size}
        payload = record.model_dump(mode="json", exclude={"number"})
        user_attrs = {
            _RECORD_KEY: payload,
            "step": record.step,
            "kind": record.kind,
            "parent_trial": record.parent_trial,
            "predictor": record.predictor,
            "failures_by_category": record.failures_by_category,
            "lm_calls": record.usage.calls,
            "usage_by_role": payload["usage"]["by_role"],
            "seconds": record.seconds,
        }
        if len(record.instructions) == 1:
            user_attrs["method"] = next(iter(record.instructions.values()))
        else:
            user_attrs["instructions"] = record.instructions
        if record.feedback:
            user_attrs["feedback"] = record.feedback
        if record.error:
            user_attrs["error"] = record.error
        trial = optuna.trial.create_trial(
            state=_STATE_OF[record.status],
            value=value,
            user_attrs=user_attrs,
            intermediate_values=intermediate,
        )
        trial.datetime_start = now
        trial.datetime_complete = now
        self.study.add_trial(trial)
        number = self.study.trials[-1].number
        for stored in reversed(self.study.trials):
            if stored.user_attrs.get(_RECORD_KEY) == payload:
                number = stored.number
                break
        return record.model_copy(update={"number": number})

    def trials(self) -> list[TrialRecord]:
        """Every recorded trial, in order."""
        records = []
        for trial in self.study.get_trials(deepcopy=False):
            payload = trial.user_attrs.get(_RECORD_KEY)
            if payload is not None:
                records.append(TrialRecord.model_validate({**payload, "number": trial.number}))
        return records

    def find_trial(self, *, step: int, candidate_key: str) -> TrialRecord | None:
        """The finished trial of this candidate in this step, if a previous run recorded it."""
        for record in self.trials():
            if record.step == step and record.candidate_key == candidate_key and record.finished:
                return record
        return None

    def trial(self, number: int) -> TrialRecord:
        for record in self.trials():
            if record.number == number:
                return record
        raise KeyError(f"no trial {number} in study {self.study.study_name!r}")

    # Steps -----------------------------------------------------------------------------------------

    def plan(self, step: int) -> StepPlan | None:
        payload = self.study.user_attrs.get(f"step:{step:04d}:plan")
        return StepPlan.model_validate(payload) if payload else None

    def save_plan(self, plan: StepPlan) -> None:
        self.study.set_user_attr(f"step:{plan.step:04d}:plan", plan.model_dump(mode="json"))

    def outcome(self, step: int) -> StepOutcome | None:
        payload = self.study.user_attrs.get(f"step:{step:04d}:outcome")
        return StepOutcome.model_validate(payload) if payload else None

    def save_outcome(self, outcome: StepOutcome) -> None:
        self.study.set_user_attr(f"step:{outcome.step:04d}:outcome", outcome.model_dump(mode="json"))

    def plans(self) -> list[StepPlan]:
        keys = sorted(key for key in self.study.user_attrs if key.endswith(":plan"))
        return [StepPlan.model_validate(self.study.user_attrs[key]) for key in keys]

    def outcomes(self) -> list[StepOutcome]:
        keys = sorted(key for key in self.study.user_attrs if key.endswith(":outcome"))
        return [StepOutcome.model_validate(self.study.user_attrs[key]) for key in keys]

    def recorded_calls(self) -> int:
        """LM calls already spent by this run in earlier processes (trials and step plans)."""
        return sum(t.usage.calls for t in self.trials()) + sum(p.usage.calls for p in self.plans())
