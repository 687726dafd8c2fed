"""Small text helpers for prompts, logs and trial records."""

from __future__ import annotations

__all__ = ["MAX_CHECKED_CHARS", "bounded", "clip", "short_error"]

#: The most characters of one text that a check reads (detectors, the proposal guard, the marker
#: parser): about 1,500 words, far beyond a real instruction or a short answer. A longer text is read
#: as its first and last halves, so that checks of how a text opens and ends still see both ends and
#: no pattern or word alignment ever runs on megabytes of a model's loop.
MAX_CHECKED_CHARS = 10_000


def short_error(exc: BaseException) -> str:
    """The first line of an exception's message, for logs and trial records."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def clip(text: object, limit: int) -> str:
    """Collapse whitespace and cut to ``limit`` characters, for prompts and reports."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def bounded(text: str, limit: int = MAX_CHECKED_CHARS) -> str:
    """``text`` itself, or its first and last ``limit // 2`` characters when longer (what a check reads)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n…\n{text[-half:]}"
