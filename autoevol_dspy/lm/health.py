"""Telling a server that answers garbage from an LM that fails a case: how many of its recent replies parsed.

A reply that does not parse (DSPy's adapter finds no typed output in it, even after its JSON
re-ask) is, one at a time, that case's failure: an unparseable evolution, an empty answer.
But a server that answers every request with text that is no reply (a broken model, a wrong
chat template, a proxy's page) says nothing about the instructions, just as an outage does.
A capable model's typed replies parse nearly always, and the embedded model's are decoded
under a JSON grammar, so they parse too: its failures are in what it writes, not in the form.

So a run watches every typed call of each LM (:func:`watching_replies` around the run,
:func:`watched_reply` around a call). The rule:

* **broken**: at least :data:`BROKEN_MIN` of the LM's last :data:`WINDOW` replies did not
  parse, and they are at least :data:`BROKEN_SHARE` of them. The reply that makes it so raises
  :class:`LMGarbageError`, an LM error: the run stops with one line naming the LM, as for an
  outage, and the rerun redoes what it cut short.
* **in doubt**: that share is reached with fewer replies, or its last :data:`STREAK` replies
  in a row did not parse. An evaluation that ends while an LM is in doubt fails, as after an
  outage. An evolved row whose reply did not parse waits (:func:`unparsed_replies`) until its
  LM has parsed :data:`CONFIRM` replies since (:meth:`ReplyHealth.confirmed`), or the run ends
  with the LM out of doubt; so a server that turns to garbage in the middle of an evolution
  leaves none of it in the rows. An evaluation cannot wait that way: one that ends within a
  few replies of the server's turn (fewer than :data:`STREAK`, or than the share) keeps those
  few as failures, and the run stops at the next.

A reply that did not parse is also taken out of DSPy's cache, so a rerun against a healed
server asks again instead of replaying the garbage.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import dspy
from dspy.utils.callback import BaseCallback
from dspy.utils.exceptions import AdapterParseError, LMError

from autoevol_dspy.lm.dspy_internals import forget_cached_reply

__all__ = [
    "BROKEN_MIN",
    "BROKEN_SHARE",
    "CONFIRM",
    "STREAK",
    "WINDOW",
    "LMGarbageError",
    "ReplyHealth",
    "Unparsed",
    "active_health",
    "unparsed_replies",
    "watched_reply",
    "watching_replies",
]

logger = logging.getLogger(__name__)

#: How many of an LM's most recent typed replies are weighed.
WINDOW = 20
#: The share of them that did not parse from which the LM is broken (with enough of them) or in doubt.
BROKEN_SHARE = 0.8
#: How many unparsed replies it takes, at least, to stop a run.
BROKEN_MIN = 8
#: Unparsed replies in a row that put an LM in doubt, however many parsed before (a model that fails to parse
#: 40% of its replies does so at a given moment once in 1,500; a server that turned to garbage always).
STREAK = 8
#: Replies an LM must parse after one that did not before a failure that reply caused is kept.
CONFIRM = 3


class LMGarbageError(LMError):
    """An LM answers with text that is no reply: most of its recent replies did not parse (an LM error, like an
    outage)."""

    default_code = "lm_garbage"


@dataclass(frozen=True)
class Unparsed:
    """One reply that did not parse: which LM (its key in the run's watch) and how many of its replies had parsed."""

    lm: int
    parsed_before: int


@dataclass
class _Record:
    label: str
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    parsed_total: int = 0
    streak: int = 0

    @property
    def unparsed(self) -> int:
        return sum(1 for parsed in self.recent if not parsed)

    def add(self, parsed: bool) -> None:
        self.recent.append(parsed)
        self.parsed_total += parsed
        self.streak = 0 if parsed else self.streak + 1

    def mostly_unparsed(self) -> bool:
        return self.unparsed > 0 and self.unparsed >= BROKEN_SHARE * len(self.recent)

    def broken(self) -> bool:
        return self.unparsed >= BROKEN_MIN and self.mostly_unparsed()

    def in_doubt(self) -> bool:
        return self.mostly_unparsed() or self.streak >= STREAK

    def describe(self) -> str:
        return (f"the LM {self.label} answers with text that does not parse ({self.unparsed} of its last "
                f"{len(self.recent)} replies, the last {self.streak} in a row): its server or model is broken, not "
                "the instructions, so nothing it answered that way is kept as a result")


class ReplyHealth:
    """Whether each LM's recent typed replies parsed; thread-safe, one per run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[int, _Record] = {}
        self._lms: list[object] = []  # keeps each LM alive, so its id is not reused during the run

    def note(self, lm: object, *, parsed: bool) -> None:
        """Record one reply of ``lm``; raise :class:`LMGarbageError` when it did not parse and the LM is broken."""
        with self._lock:
            record = self._records.get(id(lm))
            if record is None:
                record = self._records[id(lm)] = _Record(label=_label(lm))
                self._lms.append(lm)
            if not parsed:
                tickets = _UNPARSED.get()
                if tickets is not None:
                    tickets.append(Unparsed(lm=id(lm), parsed_before=record.parsed_total))
            record.add(parsed)
            message = record.describe() if not parsed and record.broken() else None
        if message is not None:
            raise LMGarbageError(message)

    def doubt(self) -> str | None:
        """Why a result holding unparsed replies cannot be kept now (an LM in doubt), or None."""
        with self._lock:
            return next((record.describe() for record in self._records.values() if record.in_doubt()), None)

    def confirmed(self, unparsed: Sequence[Unparsed]) -> bool:
        """Whether the LM of each of these replies has parsed :data:`CONFIRM` replies since."""
        with self._lock:
            return all(self._records[item.lm].parsed_total >= item.parsed_before + CONFIRM for item in unparsed)


def _label(lm: object) -> str:
    return str(getattr(lm, "model", None) or type(lm).__name__)


_ACTIVE: ContextVar[ReplyHealth | None] = ContextVar("autoevol_reply_health", default=None)
#: The unparsed replies of the block in progress in this context (see :func:`unparsed_replies`).
_UNPARSED: ContextVar[list[Unparsed] | None] = ContextVar("autoevol_unparsed_replies", default=None)


def active_health() -> ReplyHealth | None:
    """The run's watch over its LMs' replies, if a run is watching."""
    return _ACTIVE.get()


@contextlib.contextmanager
def watching_replies(health: ReplyHealth | None = None) -> Iterator[ReplyHealth]:
    """Watch the replies of the typed calls in this block (and the threads it starts with its context)."""
    health = health or ReplyHealth()
    token = _ACTIVE.set(health)
    try:
        yield health
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def unparsed_replies() -> Iterator[list[Unparsed]]:
    """The replies that did not parse in this block (in this thread), filled in as they come."""
    found: list[Unparsed] = []
    token = _UNPARSED.set(found)
    try:
        yield found
    finally:
        _UNPARSED.reset(token)


@contextlib.contextmanager
def watched_reply(lm: object | None = None) -> Iterator[None]:
    """Note whether the typed call in this block parsed, for ``lm`` (default: the LM in use); a reply that did not
    parse raises :class:`LMGarbageError` instead of ``AdapterParseError`` once that LM is broken, and leaves
    DSPy's cache either way."""
    health = _ACTIVE.get()
    if health is None:
        yield
        return
    target = lm if lm is not None else dspy.settings.lm
    _record_calls_of(target)
    token = _CALLS.set([])
    try:
        yield
    except AdapterParseError as exc:
        _forget(_CALLS.get() or [])
        try:
            health.note(target, parsed=False)
        except LMGarbageError as garbage:
            raise garbage from exc
        raise
    finally:
        _CALLS.reset(token)
    health.note(target, parsed=True)


#: The LM requests of the watched call in progress in this context: (the LM, its call's arguments).
_CALLS: ContextVar[list[tuple[object, dict]] | None] = ContextVar("autoevol_watched_calls", default=None)


class _CallRecorder(BaseCallback):
    """An LM's callback that notes its requests while a watched call is in progress (nothing otherwise)."""

    def on_lm_start(self, call_id: str, instance: object, inputs: dict) -> None:
        calls = _CALLS.get()
        if calls is not None:
            calls.append((instance, inputs))


_RECORDER = _CallRecorder()


def _record_calls_of(lm: object) -> None:
    """Give ``lm`` the recorder once (a new list: a list the user passed is not changed)."""
    callbacks = getattr(lm, "callbacks", None)
    if isinstance(callbacks, list) and _RECORDER not in callbacks:
        lm.callbacks = [*callbacks, _RECORDER]  # type: ignore[attr-defined]


def _forget(calls: list[tuple[object, dict]]) -> None:
    """Take these requests' replies out of DSPy's cache (best effort: the cache only saves time)."""
    for lm, inputs in calls:
        try:
            forget_cached_reply(lm, inputs)
        except Exception as exc:  # noqa: BLE001 - the cache is an optimization: keeping a reply is no error
            logger.debug("could not take an unparsed reply out of the cache: %s", exc)
