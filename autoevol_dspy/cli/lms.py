"""Building the LMs a command needs from its options."""

from __future__ import annotations

from typing import Any

__all__ = ["LOCAL_CONTEXT_TOKENS", "command_lm", "is_local_spec"]

LOCAL_CONTEXT_TOKENS = 4096


def is_local_spec(spec: str) -> bool:
    """Whether ``spec`` names an in-process llama.cpp model."""
    return spec == "local" or spec.startswith("local:")


def command_lm(spec: str, *, api_base: str | None, n_threads: int | None = None, **kwargs: Any):
    """An LM for a command: local models get a larger context (and ``n_threads``), others ``api_base``."""
    from autoevol_dspy.lm import make_lm

    if is_local_spec(spec):
        threads = {"n_threads": n_threads} if n_threads is not None else {}
        return make_lm(spec, n_ctx=LOCAL_CONTEXT_TOKENS, **threads, **kwargs)
    return make_lm(spec, api_base=api_base, **kwargs)
