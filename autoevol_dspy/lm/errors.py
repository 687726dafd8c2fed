"""Telling an LM outage from a failure of the instructions, by exception type.

An outage (the server is down, times out, rate-limits past its retries, refuses the key)
says nothing about the instructions: it must stop the evaluation and never be saved as a
result. A prompt too long for the model's context is the case's own problem.
"""

from __future__ import annotations

from dspy.utils.exceptions import ContextWindowExceededError, LMError

__all__ = ["LMOutageError", "is_context_overflow", "is_lm_error"]

# Errors from HTTP stacks that can escape an engine unwrapped (a custom engine, a test fake).
_TRANSPORT = (ConnectionError, TimeoutError)


class LMOutageError(Exception):
    """An LM call failed for a reason outside the instructions (raised with the first such error's message)."""


def is_context_overflow(exc: BaseException) -> bool:
    """The prompt did not fit the model's context window: a failure of that case, not an outage."""
    return isinstance(exc, ContextWindowExceededError)


def is_lm_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the LM service failing (DSPy's LM errors, connection and timeout errors)."""
    if is_context_overflow(exc):
        return False
    return isinstance(exc, (LMError, *_TRANSPORT))
