"""Small text helpers for prompts, logs and trial records."""

from __future__ import annotations

__all__ = ["clip", "short_error"]


def short_error(exc: BaseException) -> str:
    """The first line of an exception's message, for logs and trial records."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def clip(text: object, limit: int) -> str:
    """Collapse whitespace and cut to ``limit`` characters, for prompts and reports."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
