"""One check under a time limit: a check that overruns (a user's detector, an LLM judge) never holds a run.

The check runs in a daemon thread that carries the caller's context (DSPy's overrides, the
usage role); the caller waits at most ``seconds`` and then goes on with
:class:`TimeLimitExceeded`, which callers record as the case's failure. Python cannot stop a
thread, so an overrunning check finishes (or not) in the background: the built-in checks
never get there (their patterns are linear, :mod:`autoevol_dspy.text` bounds what they
read), so the limit is a backstop, not a way of working.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["TimeLimitExceeded", "call_with_time_limit"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TimeLimitExceeded(TimeoutError):
    """A check ran past its time limit; it may still be running in the background."""


def call_with_time_limit(function: Callable[..., T], /, *args: Any, seconds: float | None, **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, or :class:`TimeLimitExceeded` after ``seconds`` (``None``: no limit).

    Exceptions of ``function`` are raised here, in the caller's thread.
    """
    if seconds is None:
        return function(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(run,), daemon=True, name="autoevol-check")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        name = getattr(function, "__qualname__", type(function).__name__)
        logger.warning("%s ran past its time limit of %g s; it goes on in the background", name, seconds)
        raise TimeLimitExceeded(f"ran past its time limit of {seconds:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
