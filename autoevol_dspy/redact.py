"""Keeping credentials out of what the package prints and writes.

URLs are shown without user:password, and :func:`scrub` also hides the values of
environment variables that hold secrets (``OPENAI_API_KEY`` and the like), for error
messages and log lines that quote a library's text verbatim.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit, urlunsplit

import regex

__all__ = [
    "ScrubbingFormatter",
    "has_credentials",
    "redact_text",
    "redact_url",
    "scrub",
    "scrub_log_handlers",
    "secret_values",
]

#: Environment variables whose values are secrets, by the end of their names.
_SECRET_NAMES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_PASS")
#: Values shorter than this are not hidden (too likely to occur by chance, too short to be a real key).
_MIN_SECRET = 8

#: ``scheme://user:password@`` (or ``scheme://user@``) anywhere in a text, such as an error message. The search
#: starts only at "://" and each part matches one way, so it is linear in the text (no scheme is re-scanned).
_USERINFO = regex.compile(r"(?<=[a-zA-Z0-9+.-])://[^/@\s:]*+(?::[^/@\s]*+)?+@")


def has_credentials(url: str | None) -> bool:
    """Whether ``url`` carries a user name or password (``scheme://user:pass@host``)."""
    if not url or "@" not in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return parts.username is not None or parts.password is not None


def redact_url(url: str | None) -> str | None:
    """``url`` with any user name and password replaced by ``***`` (host, port and path kept)."""
    if not has_credentials(url):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return redact_text(url)
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with the user:password part of every URL in it replaced by ``***``."""
    return _USERINFO.sub("://***@", text)


def secret_values() -> list[str]:
    """The values of environment variables named like secrets (``*_KEY``, ``*_TOKEN``, ...), longest first."""
    values = {value for name, value in os.environ.items()
              if name.upper().endswith(_SECRET_NAMES) and len(value) >= _MIN_SECRET}
    return sorted(values, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with URL credentials and the values of secret environment variables replaced by ``***``."""
    text = redact_text(text)
    for value in secret_values():
        text = text.replace(value, "***")
    return text


class ScrubbingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments and traceback alike) went through :func:`scrub`.

    It wraps the handler's own formatter (``inner``), so the format stays as it was.
    """

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.inner.format(record))


def scrub_log_handlers() -> None:
    """Make every log handler installed so far (root's and each logger's) scrub what it writes."""
    loggers = [logging.getLogger(), *(item for item in logging.root.manager.loggerDict.values()
                                      if isinstance(item, logging.Logger))]
    for found in loggers:
        for handler in found.handlers:
            if not isinstance(handler.formatter, ScrubbingFormatter):
                handler.setFormatter(ScrubbingFormatter(handler.formatter))
