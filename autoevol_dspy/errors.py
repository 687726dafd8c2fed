"""Exceptions with one-line messages a user can act on.

Every error the library raises on purpose derives from :class:`AutoEvolError`, so the
command line can print its message alone, without a traceback.
"""

from __future__ import annotations

__all__ = [
    "AutoEvolError",
    "ConfigurationError",
    "DataError",
    "IncompleteRunError",
    "LMSpecError",
    "LMUnavailableError",
    "NothingUsableError",
    "RunConflictError",
    "at_least",
]


class AutoEvolError(Exception):
    """Base class of the errors this package raises deliberately."""


class ConfigurationError(AutoEvolError, ValueError):
    """An option or a combination of options is invalid."""


class DataError(AutoEvolError, ValueError):
    """A dataset, an example file or a prompt file cannot be used as given."""


class LMSpecError(ConfigurationError):
    """An LM spec string cannot be turned into an LM (unknown form, missing extra, key or file)."""


class RunConflictError(AutoEvolError):
    """A run directory or study already holds a run made with different settings."""


class LMUnavailableError(AutoEvolError):
    """An LM call failed for a reason outside the run (a server down or timing out, a key refused, rate limits
    past the retries); every finished result is saved and a rerun continues. Not the user's input: exit code 3."""


class IncompleteRunError(LMUnavailableError):
    """A run ended with work left undone (LM errors); its finished part is saved and a rerun continues it."""


class NothingUsableError(AutoEvolError):
    """A run finished but made nothing usable (every evolution failed, a training export without a row):
    exit code 4, so a pipeline does not go on with an empty file."""


def at_least(name: str, value: object, minimum: int = 1) -> int:
    """``value`` when it is an integer (not a bool) of at least ``minimum``; otherwise a one-line
    :class:`ConfigurationError` naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value
