"""Building what a command runs from its options: its LMs, and the evolution task that optimize runs and a
worker rebuilds."""

from __future__ import annotations

from typing import Any

__all__ = ["LOCAL_CONTEXT_TOKENS", "add_request_options", "command_lm", "evolution_task", "is_local_spec"]

LOCAL_CONTEXT_TOKENS = 4096


def add_request_options(group: Any) -> None:
    """``--timeout`` and ``--retries``, shared by every command that calls LMs (an argparse group or parser)."""
    group.add_argument("--timeout", type=float, metavar="SECONDS", help="how long one request to an LM server "
                       "may wait before it is retried (default 120; in-process local models ignore it)")
    group.add_argument("--retries", type=int, metavar="N", help="retries of a request that timed out, was "
                       "rate-limited (429), failed on the server (5xx) or came back malformed (default 3)")


def is_local_spec(spec: str) -> bool:
    """Whether ``spec`` names an in-process llama.cpp model."""
    return spec == "local" or spec.startswith("local:")


def command_lm(spec: str, *, api_base: str | None, n_threads: int | None = None, timeout: float | None = None,
               retries: int | None = None, **kwargs: Any):
    """An LM for a command: local models get a larger context (and ``n_threads``), others ``api_base`` and
    ``timeout`` (seconds per request); ``retries`` is DSPy's ``num_retries`` for both."""
    from autoevol_dspy.lm import make_lm

    if retries is not None:
        kwargs["num_retries"] = retries
    if is_local_spec(spec):
        threads = {"n_threads": n_threads} if n_threads is not None else {}
        return make_lm(spec, n_ctx=LOCAL_CONTEXT_TOKENS, **threads, **kwargs)
    return make_lm(spec, api_base=api_base, **({"timeout": timeout} if timeout is not None else {}), **kwargs)


def evolution_task(evol_lm: Any, response_lm: Any, *, rounds: int, judge: bool):
    """The task of ``autoevol optimize`` (and of its workers): the default detectors, plus the evol LM as a judge
    when ``judge``."""
    from autoevol_dspy.evolution.detectors import LLMJudge, default_detectors
    from autoevol_dspy.tasks.evolution import EvolutionTask

    detectors = default_detectors() + ([LLMJudge(lm=evol_lm)] if judge else [])
    return EvolutionTask(lm=evol_lm, response_lm=response_lm, detectors=detectors, rounds=rounds)
