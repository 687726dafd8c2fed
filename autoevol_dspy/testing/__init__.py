"""Test helpers for code that uses autoevol-dspy (like ``optuna.testing``): a scripted LM and a stub server.

:func:`scripted_lm` is a real ``dspy.LM`` whose answers come from a Python function of the
parsed request (:class:`Call`); :class:`StubServer` serves the same function over HTTP as
an OpenAI-compatible server on loopback, with latency, a capacity limit and injected
faults (:class:`Fault`). The project's own tests and benchmarks use both.
"""

from autoevol_dspy.testing.fake_lm import (
    Answer,
    Call,
    Responder,
    ScriptedEngine,
    format_answer,
    generic_answer,
    parse_call,
    scripted_lm,
)
from autoevol_dspy.testing.stub_server import (
    FAULT_KINDS,
    Fault,
    StubProcess,
    StubServer,
    load_responder,
)

__all__ = [
    "FAULT_KINDS",
    "Answer",
    "Call",
    "Fault",
    "Responder",
    "ScriptedEngine",
    "StubProcess",
    "StubServer",
    "format_answer",
    "generic_answer",
    "load_responder",
    "parse_call",
    "scripted_lm",
]
