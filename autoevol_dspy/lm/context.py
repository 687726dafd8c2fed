"""Running a block of DSPy calls on a given LM, or on the configured one."""

from __future__ import annotations

import contextlib

import dspy

__all__ = ["use_lm"]


def use_lm(lm: dspy.LM | None) -> contextlib.AbstractContextManager:
    """``dspy.context(lm=lm)``, or nothing when no LM was given (the configured one applies)."""
    return dspy.context(lm=lm) if lm is not None else contextlib.nullcontext()
