"""A command's log output: lines that never cut through a progress bar, DSPy's repeats collapsed.

On a terminal a log line written while a bar is drawn would share its line (the bar's
``\\r`` then eats the start of the next line); :class:`BarSafeStream` clears the bars, writes
the line and draws them again. DSPy warns once per reply cut at ``max_tokens``; a run makes
hundreds of them, so :class:`TruncationNotes` lets the first one through, saying what it
means, and counts the rest for one line at the end. Only the command line installs these:
the library leaves the caller's logging alone.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

__all__ = ["BarSafeStream", "TruncationNotes", "configure_command_logging"]

#: The logger DSPy warns on when a reply stopped at ``max_tokens``, and the warning's start.
TRUNCATION_LOGGER = "dspy.clients.lm"
TRUNCATION_TEXT = "LM response was truncated"

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"


class BarSafeStream:
    """A stream for log handlers that writes around any progress bar on stderr.

    ``target``: where the text goes (default: ``sys.stderr`` as it is at each write, so a
    redirected stderr is followed).
    """

    def __init__(self, target: TextIO | None = None) -> None:
        self.target = target

    def write(self, text: str) -> int:
        from tqdm import tqdm

        stream = self.target if self.target is not None else sys.stderr
        with tqdm.external_write_mode(file=sys.stderr):
            written = stream.write(text)
            stream.flush()
        return written if isinstance(written, int) else len(text)

    def flush(self) -> None:
        (self.target if self.target is not None else sys.stderr).flush()


class TruncationNotes(logging.Filter):
    """Passes DSPy's first truncation warning, with what it means, and counts the others."""

    def __init__(self) -> None:
        super().__init__(name="")
        self.count = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(TRUNCATION_TEXT):
            return True
        with self._lock:
            self.count += 1
            first = self.count == 1
        if first:
            record.msg = (f"{TRUNCATION_TEXT}: a reply stopped at its token limit (its field may be cut or "
                          "missing, and the case then fails); raise --max-tokens if this is frequent. Further "
                          "truncated replies are counted, not shown")
            record.args = ()
        return first

    def summary(self) -> str | None:
        """One line on how many replies were cut, or ``None`` when none was after the first."""
        if self.count <= 1:
            return None
        return (f"{self.count} LM replies were truncated at their token limit; raise --max-tokens "
                "(--optimizer-max-tokens, --response-max-tokens) if cases failed for it")


def configure_command_logging(*, debug: bool, verbose: bool = False, quiet: bool = False) -> TruncationNotes:
    """Log lines for the ``autoevol`` command: ours at INFO (DEBUG with ``--debug``/``--verbose``, WARNING
    with ``--quiet``), every handler bar-safe, DSPy's truncation warnings collapsed; returns their counter."""
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig: a process that configured logging keeps its handlers
        handler = logging.StreamHandler(BarSafeStream())
        handler.setFormatter(logging.Formatter(FORMAT, datefmt=DATE_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if debug else logging.WARNING)
    level = logging.DEBUG if debug or verbose else (logging.WARNING if quiet else logging.INFO)
    logging.getLogger("autoevol_dspy").setLevel(level)
    for noisy in ("LiteLLM", "litellm", "httpx", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import dspy  # noqa: F401 - DSPy adds its own log handler on import: make it bar-safe too

    for existing in logging.getLogger("dspy").handlers:
        if isinstance(existing, logging.StreamHandler) and not isinstance(existing.stream, BarSafeStream):
            existing.setStream(BarSafeStream(existing.stream))  # DSPy's stream (it can be disabled) stays inside
    notes = TruncationNotes()
    truncation = logging.getLogger(TRUNCATION_LOGGER)
    for old in [f for f in truncation.filters if isinstance(f, TruncationNotes)]:
        truncation.removeFilter(old)  # a second main() in one process counts afresh
    truncation.addFilter(notes)
    if quiet:
        truncation.setLevel(logging.ERROR)
    return notes
