"""Running a block of DSPy calls on a given LM and adapter, or on the configured ones."""

from __future__ import annotations

import contextlib

import dspy

__all__ = ["adapter_context", "is_local_lm", "use_lm"]


def use_lm(lm: dspy.LM | None) -> contextlib.AbstractContextManager:
    """``dspy.context(lm=lm)``, or nothing when no LM was given (the configured one applies)."""
    return dspy.context(lm=lm) if lm is not None else contextlib.nullcontext()


def is_local_lm(lm: object) -> bool:
    """Whether ``lm`` runs in-process with llama.cpp (``make_lm('local...')``)."""
    return str(getattr(lm, "model", "")).startswith("local/")


@contextlib.contextmanager
def adapter_context(adapter: dspy.Adapter | None):
    """Use ``adapter``; without one, JSON for an in-process model (llama.cpp then decodes only JSON
    that fits the signature, so even a 135M model fills every field) and the configured adapter otherwise."""
    if adapter is None and dspy.settings.adapter is None and is_local_lm(dspy.settings.lm):
        adapter = dspy.JSONAdapter()
    if adapter is None:
        yield
    else:
        with dspy.context(adapter=adapter):
            yield
