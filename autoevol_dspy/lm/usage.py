"""LM call and token accounting by role, safe across threads.

DSPy reports every non-cached LM response to ``settings.usage_tracker``; a
:class:`UsageMeter` installed there attributes each call to the role active in the
calling context (see :func:`lm_role`), so calls are counted even when they run in
worker threads, and cache hits (replays after a resume) cost nothing. Its
:attr:`UsageMeter.counter`, installed as a DSPy callback, sees every LM call that
returned, so :attr:`UsageMeter.cached` tells the calls DSPy's cache answered from the
ones sent: a rerun that sent nothing says so instead of "0 LM calls".
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

from dspy.utils.callback import BaseCallback
from pydantic import BaseModel, Field

__all__ = ["ROLES", "RoleUsage", "UsageMeter", "UsageReport", "lm_role"]

#: The roles an LM call can play in a run.
ROLES: tuple[str, ...] = ("evolution", "response", "analysis", "rewrite", "judge", "program", "other")

_current_role: contextvars.ContextVar[str] = contextvars.ContextVar("autoevol_lm_role", default="other")


@contextlib.contextmanager
def lm_role(role: str) -> Iterator[None]:
    """Attribute the LM calls made inside this block (and in tasks copied from it) to ``role``."""
    token = _current_role.set(role)
    try:
        yield
    finally:
        _current_role.reset(token)


class RoleUsage(BaseModel):
    """Requests and tokens spent in one role."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, other: "RoleUsage") -> "RoleUsage":
        return RoleUsage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class UsageReport(BaseModel):
    """Usage by role; serializable, and additive so per-trial reports sum to a run's."""

    by_role: dict[str, RoleUsage] = Field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(usage.calls for usage in self.by_role.values())

    @property
    def tokens(self) -> int:
        return sum(u.input_tokens + u.output_tokens for u in self.by_role.values())

    def __add__(self, other: "UsageReport") -> "UsageReport":
        merged = dict(self.by_role)
        for role, usage in other.by_role.items():
            merged[role] = merged.get(role, RoleUsage()).add(usage)
        return UsageReport(by_role=merged)

    def __sub__(self, other: "UsageReport") -> "UsageReport":
        diff = {}
        for role, usage in self.by_role.items():
            before = other.by_role.get(role, RoleUsage())
            delta = RoleUsage(
                calls=usage.calls - before.calls,
                input_tokens=usage.input_tokens - before.input_tokens,
                output_tokens=usage.output_tokens - before.output_tokens,
            )
            if delta.calls or delta.input_tokens or delta.output_tokens:
                diff[role] = delta
        return UsageReport(by_role=diff)


def _token_count(usage: dict[str, Any], *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, (int, float)):
            return int(value)
    return 0


class UsageMeter:
    """Thread-safe sink for DSPy's usage reports, by role; install with ``dspy.context(usage_tracker=meter)``.

    ``parent`` (an enclosing ``dspy.track_usage()`` tracker) receives every entry too, so a
    user who tracks usage around ``compile`` sees the run's calls.
    """

    def __init__(self, *, parent: Any = None) -> None:
        self._lock = threading.Lock()
        self._by_role: dict[str, RoleUsage] = {}
        self._answered = 0
        self.parent = parent
        self.counter = _AnsweredCalls(self)

    @property
    def cached(self) -> int:
        """LM calls that returned without being sent (DSPy's cache answered them), once no call is in flight.

        Needs :attr:`counter` among ``dspy.settings.callbacks`` while the calls run."""
        with self._lock:
            return max(0, self._answered - sum(usage.calls for usage in self._by_role.values()))

    def _answer(self) -> None:
        with self._lock:
            self._answered += 1

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:  # DSPy's tracker interface
        role = _current_role.get()
        entry = usage_entry or {}
        with self._lock:
            current = self._by_role.get(role, RoleUsage())
            self._by_role[role] = RoleUsage(
                calls=current.calls + 1,
                input_tokens=current.input_tokens + _token_count(entry, "prompt_tokens", "input_tokens"),
                output_tokens=current.output_tokens + _token_count(entry, "completion_tokens", "output_tokens"),
            )
            if self.parent is not None:
                self.parent.add_usage(lm, usage_entry)

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(usage.calls for usage in self._by_role.values())

    def report(self) -> UsageReport:
        with self._lock:
            return UsageReport(by_role=dict(self._by_role))

    def __deepcopy__(self, memo: dict) -> "UsageMeter":
        # DSPy's ParallelExecutor deep-copies the tracker per thread; sharing keeps the counts.
        return self


class _AnsweredCalls(BaseCallback):
    """A DSPy callback that counts every LM call that returned (sent or answered from the cache)."""

    def __init__(self, meter: UsageMeter) -> None:
        super().__init__()
        self.meter = meter

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        if exception is None:
            self.meter._answer()

    def __deepcopy__(self, memo: dict) -> "_AnsweredCalls":
        return self
