"""The study as a work queue that several processes share: WAITING trials carry evaluations, any process pops one.

The driver enqueues each evaluation as a WAITING trial whose ``spec`` user attribute holds
everything needed to run it (:class:`TrialSpec`). Any process pops one: it records a
heartbeat for the trial, then moves it WAITING -> RUNNING with the storage's
compare-and-set (a row-locked update in Optuna's RDBStorage: two processes never get the
same trial), keeps beating while it evaluates, and tells the result. A process that dies
stops beating; whoever next calls :meth:`TrialQueue.fail_stale` fails its trial, and
Optuna's retry callback enqueues a copy that another process evaluates. Results are
linked to the candidate key, never to a trial number.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from autoevol_dspy.errors import AutoEvolError, ConfigurationError
from autoevol_dspy.locks import ProcessLock
from autoevol_dspy.redact import redact_url
from autoevol_dspy.text import short_error
from autoevol_dspy.search.records import TrialSpec
from autoevol_dspy.search.tracking import QUEUED_KEY, RECORD_KEY, WORKER_KEY

__all__ = ["SharedStudy", "TrialQueue", "rdb_storage", "shared_storage", "worker_id"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SharedStudy:
    """Evaluate through the study, so worker processes on any machine share the work (``workers=`` of
    :class:`AutoEvolInstruct`).

    ``evaluate``: the driver evaluates queued trials too (else it only plans and decides).
    Each process beats every ``heartbeat_s`` seconds for the trials it runs; a trial silent
    for ``grace_s`` is failed and evaluated again, at most ``max_retry`` times.
    ``poll_s``: how often an idle process looks at the queue. ``recipe``: how a worker
    rebuilds the task (the command line writes it; the library only stores it).
    """

    evaluate: bool = True
    heartbeat_s: int = 10
    grace_s: int = 60
    max_retry: int = 3
    poll_s: float = 0.5
    recipe: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("heartbeat_s", "grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number of seconds, at least 1; got {value!r}")
        if self.grace_s <= self.heartbeat_s:
            raise ConfigurationError(f"grace_s ({self.grace_s}) must exceed heartbeat_s ({self.heartbeat_s}), "
                                     "or live trials would be taken for dead ones")
        if isinstance(self.max_retry, bool) or not isinstance(self.max_retry, int) or self.max_retry < 0:
            raise ConfigurationError(f"max_retry must be a non-negative integer, got {self.max_retry!r}")
        if not isinstance(self.poll_s, (int, float)) or self.poll_s <= 0:
            raise ConfigurationError(f"poll_s must be a positive number of seconds, got {self.poll_s!r}")

    def describe(self) -> dict[str, Any]:
        """What every process of the run must agree on: beats, grace and retries."""
        return {"heartbeat_s": self.heartbeat_s, "grace_s": self.grace_s, "max_retry": self.max_retry,
                "poll_s": self.poll_s}

    @classmethod
    def from_description(cls, described: dict[str, Any], **overrides: Any) -> "SharedStudy":
        return cls(**{**{k: described[k] for k in ("heartbeat_s", "grace_s", "max_retry", "poll_s")}, **overrides})


def worker_id() -> str:
    """This process, as other processes see it in a trial's ``worker`` attribute."""
    return f"{socket.gethostname()}:{os.getpid()}"


def shared_storage(storage: str | optuna.storages.BaseStorage, settings: SharedStudy) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats and a retry of trials whose process went silent."""
    if isinstance(storage, optuna.storages.RDBStorage):
        if storage.get_heartbeat_interval() is None:
            raise ConfigurationError("a shared study needs heartbeats: give the storage as a URL, or an "
                                     "RDBStorage made with heartbeat_interval=")
        return storage
    if not is_database_url(storage):
        raise ConfigurationError("workers share the study through a database: give storage= (or --storage) as a "
                                 "URL, postgresql+psycopg://user@host/db across machines or sqlite:///path on one "
                                 "machine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
            optuna.storages.RetryFailedTrialCallback
        callback = retry(max_retry=settings.max_retry)
    names = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    callback_name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in names \
        else "failed_trial_callback"
    return rdb_storage(storage, heartbeat_interval=settings.heartbeat_s, grace_period=settings.grace_s,
                       **{callback_name: callback})


def is_database_url(storage: Any) -> bool:
    return isinstance(storage, str) and "://" in storage


def rdb_storage(url: str, *, attempts: int = 20, **options: Any) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage for ``url``, retried while another process creates the same tables.

    Processes that open a new database at once race to create Optuna's tables and stamp their
    version (an ``IntegrityError`` for the loser); the loser finds them made on a retry.
    """
    import sqlalchemy.exc

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if attempt == attempts - 1:
                raise AutoEvolError(f"cannot open the storage {redact_url(url)}: {short_error(exc)}") from exc
            logger.debug("opening the storage raced with another process (%s); retrying", type(exc).__name__)
            time.sleep(0.1 + 0.05 * attempt)
    raise AssertionError("unreachable")


class _QueueLock:
    """Serializes queue updates between processes where the database does not.

    PostgreSQL and MySQL lock the trial's row for a state change. SQLite ignores ``SELECT ...
    FOR UPDATE`` (and Python's driver reads outside a transaction), so two processes could
    both move one trial to RUNNING; on SQLite, which serves one machine, a lock file next
    to the database makes each pop, stale check and tell one step.
    """

    def __init__(self, url: str) -> None:
        path = url.split(":///", 1)[1] if url.startswith("sqlite:///") else ""
        self._lock = ProcessLock(f"{path}.queue-lock") if path and path != ":memory:" else None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        with self._lock:
            yield


class _Heartbeats:
    """One thread that records a heartbeat for every trial this process holds, every interval."""

    def __init__(self, storage: Any, interval: float) -> None:
        self._storage = storage
        self._interval = interval
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, trial_id: int) -> None:
        self._storage.record_heartbeat(trial_id)

    def hold(self, trial_id: int) -> None:
        with self._lock:
            self._held.add(trial_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="autoevol-heartbeat", daemon=True)
                self._thread.start()

    def release(self, trial_id: int) -> None:
        with self._lock:
            self._held.discard(trial_id)

    def release_all(self) -> None:
        with self._lock:
            self._held.clear()

    def _run(self) -> None:
        while not self._wake.wait(self._interval):
            with self._lock:
                held = sorted(self._held)
            for trial_id in held:
                try:
                    self.beat(trial_id)
                except Exception as exc:  # noqa: BLE001 - a missed beat is retried next interval
                    logger.warning("could not record the heartbeat of trial id %d: %s", trial_id, exc)


@dataclass(frozen=True)
class QueueView:
    """One consistent read of the queue: per candidate, its pending, finished and failed trials."""

    trials: Sequence[FrozenTrial]

    def of(self, key: tuple[int, str]) -> list[FrozenTrial]:
        return [t for t in self.trials if _spec_key(t) == key]

    def pending(self, key: tuple[int, str]) -> bool:
        return any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in self.of(key))

    def failures(self, key: tuple[int, str], *, since: int) -> tuple[list[str], int]:
        """Errors of failed evaluations (LM outages) and the count of abandoned ones (stale), trials >= ``since``."""
        errors, abandoned = [], 0
        for trial in self.of(key):
            if trial.state != TrialState.FAIL or trial.number < since:
                continue
            record = trial.user_attrs.get(RECORD_KEY) or {}
            if record.get("status") == "failed":
                errors.append(record.get("error") or "the evaluation failed")
            else:
                abandoned += 1
        return errors, abandoned

    def counts(self) -> dict[str, int]:
        queued = [t for t in self.trials if QUEUED_KEY in t.user_attrs]
        return {"waiting": sum(t.state == TrialState.WAITING for t in queued),
                "running": sum(t.state == TrialState.RUNNING for t in queued)}


def _spec_key(trial: FrozenTrial) -> tuple[int, str] | None:
    spec = trial.user_attrs.get(QUEUED_KEY)
    return (spec["step"], spec["candidate_key"]) if spec else None


class TrialQueue:
    """The queue operations of one process on one shared study: enqueue, pop, beat, fail the stale."""

    def __init__(self, study: optuna.Study, settings: SharedStudy) -> None:
        self.study = study
        self.settings = settings
        self.worker = worker_id()
        self._storage = study._storage  # Optuna offers no public pop that never creates a trial
        self.locked = _QueueLock(getattr(getattr(self._storage, "_backend", self._storage), "url", ""))
        self._heartbeats = _Heartbeats(self._storage, settings.heartbeat_s)
        self._last_stale_check = 0.0
        self._rivals: dict[int, tuple[float, list[tuple[float, int]]]] = {}

    def view(self) -> QueueView:
        return QueueView(self.study.get_trials(deepcopy=False))

    def pop(self) -> tuple[optuna.Trial, TrialSpec] | None:
        """Take the first WAITING queued trial (now RUNNING, beating), or ``None`` when none is waiting."""
        waiting = self._storage.get_all_trials(self.study._study_id, deepcopy=False, states=(TrialState.WAITING,))
        for frozen in sorted(waiting, key=lambda t: t.number):
            payload = frozen.user_attrs.get(QUEUED_KEY)
            if payload is None:
                continue
            trial_id = frozen._trial_id
            # Beat first: a process killed right after taking the trial still leaves a heartbeat to go stale.
            self._heartbeats.beat(trial_id)
            try:
                with self.locked():
                    if not self._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                        continue
            except UpdateFinishedTrialError:
                continue
            self._heartbeats.hold(trial_id)
            trial = optuna.Trial(self.study, trial_id)
            trial.set_user_attr(WORKER_KEY, self.worker)
            logger.debug("took trial %d (%s)", frozen.number, payload.get("label"))
            return trial, TrialSpec.model_validate(payload)
        return None

    def release(self, trial: optuna.Trial) -> None:
        """Stop beating for a trial this process has told (or given up)."""
        self._heartbeats.release(trial._trial_id)

    def release_all(self) -> None:
        """Stop beating for every trial this process holds: it gives them up (they go stale and are retried)."""
        self._heartbeats.release_all()

    def fail_stale(self, *, force: bool = False) -> None:
        """Fail trials whose process stopped beating (at most once per heartbeat interval); the callback retries them."""
        now = time.monotonic()
        if not force and now - self._last_stale_check < self.settings.heartbeat_s:
            return
        self._last_stale_check = now
        with warnings.catch_warnings(), self.locked():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def rivals(self, step: int, *, max_age_s: float) -> list[tuple[float, int]]:
        """(failures, plan position) of the step's complete candidates, read at most every ``max_age_s``."""
        now = time.monotonic()
        cached = self._rivals.get(step)
        if cached is not None and now - cached[0] < max_age_s:
            return cached[1]
        found = []
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            spec, record = trial.user_attrs.get(QUEUED_KEY), trial.user_attrs.get(RECORD_KEY)
            if spec and record and spec["step"] == step and spec["kind"] == "candidate" \
                    and record.get("status") == "complete":
                found.append((float(record["failures"]), int(spec.get("position", 0))))
        self._rivals[step] = (now, found)
        return found
