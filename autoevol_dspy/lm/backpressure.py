"""Back-pressure on HTTP 429: the requests in flight to one server, halved on a rate limit, grown back slowly.

With hundreds of threads calling one server, retrying each rate-limited request on its
own is not enough: the other threads keep sending. A :class:`RateLimitGate` sits in front
of every attempt of the server engines (DSPy's own retries included). A 429 halves the
number of requests it lets through at once (once per window: 429s of requests sent
before that cut do not cut again), honours ``Retry-After`` by holding every new request
until then, and each success grows the limit back by ``1/limit`` (additive increase,
multiplicative decrease, as TCP does). LMs that talk to the same server share one gate.

:meth:`RateLimitGate.call` runs one attempt through the gate. A 429 the gate answers itself
is sent again under the new limit (after any ``Retry-After``) instead of using up one of
DSPy's retries: one of a request sent before the latest cut (the overshoot that cut
answered), and the one that makes a cut which lowers the limit. So hundreds of threads
settle at the server's rate without losing calls, however often the limit saws between one
and two requests. A 429 with one request allowed in flight is the server's own refusal,
with nothing left to slow down: it is raised, and DSPy retries it (``num_retries``, with the
``Retry-After`` as its delay) or the run stops on it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from dspy.lm15 import RateLimitError

__all__ = ["MAX_RESENDS", "GateStats", "RateLimitGate", "gate_for"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: The longest pause a ``Retry-After`` may impose on every request (a broken header must not stall a run).
MAX_PAUSE_S = 60.0
#: How many times one call is sent again after 429s that the gate answered itself.
MAX_RESENDS = 16
_POLL_S = 0.02


@dataclass(frozen=True)
class GateStats:
    """What a gate did: its limit now, requests in flight, 429s seen, cuts made, the lowest limit reached,
    and the requests it sent again after a 429 that an earlier cut had answered."""

    limit: float
    in_flight: int
    rate_limited: int
    cuts: int
    lowest: float
    resent: int


class RateLimitGate:
    """At most ``limit`` requests in flight (``ceiling`` at most, 1 at least); see the module docstring."""

    def __init__(self, *, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be at least 1, got {ceiling!r}")
        self.ceiling = ceiling
        self._clock = clock
        self._condition = threading.Condition()
        self._limit = float(ceiling)
        self._lowest = float(ceiling)
        self._in_flight = 0
        self._resume_at = 0.0
        self._window = 0
        self._rate_limited = 0
        self._cuts = 0
        self._resent = 0

    # Calls --------------------------------------------------------------------------------------

    def call(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` through the gate; resend it after a 429 an earlier cut answered (see the module)."""
        for resends in range(MAX_RESENDS + 1):
            token = self.acquire()
            try:
                result = attempt()
            except RateLimitError as exc:
                if not self._resend(token, exc, resends):
                    raise
                continue
            except BaseException:
                self.release(token, succeeded=False)
                raise
            self.release(token)
            return result
        raise AssertionError("unreachable: the last resend raises")

    async def acall(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """:meth:`call` for a coroutine ``attempt``."""
        for resends in range(MAX_RESENDS + 1):
            token = await self.acquire_async()
            try:
                result = await attempt()
            except RateLimitError as exc:
                if not self._resend(token, exc, resends):
                    raise
                continue
            except BaseException:
                self.release(token, succeeded=False)
                raise
            self.release(token)
            return result
        raise AssertionError("unreachable: the last resend raises")

    def _resend(self, token: int, exc: RateLimitError, resends: int) -> bool:
        """Report a 429; True when the call should be sent again (the gate answered it, resends left)."""
        answered = self.release(token, rate_limited=True, retry_after=exc.retry_after)
        if not answered or resends >= MAX_RESENDS:
            return False
        with self._condition:
            self._resent += 1
        return True

    # Slots --------------------------------------------------------------------------------------

    def acquire(self) -> int:
        """Wait for a slot (and for any ``Retry-After`` pause); returns the window token for :meth:`release`."""
        with self._condition:
            while True:
                wait = self._wait_s()
                if wait == 0.0:
                    self._in_flight += 1
                    return self._window
                self._condition.wait(None if math.isinf(wait) else wait)

    def release(self, token: int, *, succeeded: bool = True, rate_limited: bool = False,
                retry_after: float | None = None) -> bool:
        """End one request. A success grows the limit, a 429 cuts it (once per window) and may pause new
        requests, another error does neither. Returns whether the gate answered a 429 itself (sent before the
        latest cut, or its cut lowered the limit), so the request may be sent again."""
        with self._condition:
            in_flight = self._in_flight
            self._in_flight -= 1
            answered = False
            if rate_limited:
                answered = self._on_rate_limit(token, in_flight, retry_after)
            elif succeeded and token == self._window and self._limit < self.ceiling:
                before = math.floor(self._limit)
                self._limit = min(float(self.ceiling), self._limit + 1.0 / self._limit)
                if math.floor(self._limit) > before:
                    self._condition.notify()
            self._condition.notify()
            return answered

    def settle(self, token: int, error: BaseException | None = None) -> bool:
        """:meth:`release` by how the request ended: ``error`` None (a success), a 429, or another error."""
        if isinstance(error, RateLimitError):
            return self.release(token, rate_limited=True, retry_after=error.retry_after)
        return self.release(token, succeeded=error is None)

    async def acquire_async(self) -> int:
        """:meth:`acquire` for an event loop: polls instead of blocking the loop's thread."""
        while True:
            with self._condition:
                wait = self._wait_s()
                if wait == 0.0:
                    self._in_flight += 1
                    return self._window
            await asyncio.sleep(min(wait, _POLL_S))

    # State --------------------------------------------------------------------------------------

    def stats(self) -> GateStats:
        with self._condition:
            return GateStats(limit=round(self._limit, 3), in_flight=self._in_flight, rate_limited=self._rate_limited,
                             cuts=self._cuts, lowest=round(self._lowest, 3), resent=self._resent)

    def _wait_s(self) -> float:
        """0 when a request may start now, else how long to wait (inf: until a slot frees). Lock held."""
        pause = self._resume_at - self._clock()
        if pause > 0:
            return pause
        return 0.0 if self._in_flight < max(1, math.floor(self._limit)) else math.inf

    def _on_rate_limit(self, token: int, in_flight: int, retry_after: float | None) -> bool:
        """Halve the limit below what the server just refused, unless this window was cut already. Whether the
        gate answered the 429: stale (an earlier cut did), or this cut let fewer requests through. Lock held."""
        self._rate_limited += 1
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            self._resume_at = max(self._resume_at, self._clock() + min(retry_after, MAX_PAUSE_S))
        if token != self._window:
            return True
        self._window += 1
        self._cuts += 1
        allowed = math.floor(self._limit)
        self._limit = max(1.0, min(self._limit, float(in_flight)) / 2.0)
        self._lowest = min(self._lowest, self._limit)
        log = logger.warning if self._cuts == 1 else logger.info
        log("the LM server rate-limits (HTTP 429): at most %d request(s) in flight now%s", math.floor(self._limit),
            f", none for {retry_after:g}s" if retry_after else "")
        return math.floor(self._limit) < allowed


_gates: dict[str, RateLimitGate] = {}
_gates_lock = threading.Lock()


def gate_for(key: str, *, ceiling: int) -> RateLimitGate:
    """The one gate of a server (``key``: its base URL, or the model for a provider's own API)."""
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None or gate.ceiling < ceiling:
            gate = _gates[key] = RateLimitGate(ceiling=ceiling) if gate is None else _raised(gate, ceiling)
        return gate


def _raised(gate: RateLimitGate, ceiling: int) -> RateLimitGate:
    """The same gate with a higher ceiling (an LM built later asked for more connections)."""
    with gate._condition:
        grow = gate._limit >= gate.ceiling
        gate.ceiling = ceiling
        if grow:
            gate._limit = float(ceiling)
        gate._condition.notify_all()
    return gate
