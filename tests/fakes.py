"""Scripted fake LMs for fast, deterministic tests: a real ``dspy.LM`` over an in-memory engine.

A responder maps the parsed call (which signature, its inputs) to output fields, so
answers depend on what is asked, not on call order, and threads are safe.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with the corresponding|\Z)", re.DOTALL)


@dataclass(frozen=True)
class Call:
    """One request as the fake sees it."""

    system: str
    inputs: dict[str, str]

    @property
    def kind(self) -> str:
        if "trajectory" in self.inputs:
            return "analysis"
        if "feedback" in self.inputs and "current_instructions" in self.inputs:
            return "rewrite"
        if "first" in self.inputs and "second" in self.inputs:
            return "judge"
        if "`evolved_instruction`" in self.system:
            return "evolution"
        if "`response`" in self.system and "instruction" in self.inputs:
            return "response"
        return "program"


def parse_inputs(text: str) -> dict[str, str]:
    """The input fields of a ChatAdapter-formatted user message."""
    return {name: value.strip() for name, value in _FIELD.findall(text)}


class ScriptedEngine:
    """Answers each request with ``responder(call)``, formatted for DSPy's ChatAdapter."""

    def __init__(self, responder: Callable[[Call], dict[str, str] | str]) -> None:
        self.responder = responder
        self.lock = threading.Lock()
        self.calls: list[Call] = []

    def complete(self, request):
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system or [])
        last = request.messages[-1].text or ""
        inputs = parse_inputs(last)
        call = Call(system=system, inputs=inputs)
        with self.lock:
            self.calls.append(call)
        answer = self.responder(call)
        if isinstance(answer, dict):
            text = "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in answer.items()) + "[[ ## completed ## ]]"
        else:
            text = answer
        return Response(
            id=None,
            model="scripted",
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=len(system.split()) + len(last.split()), output_tokens=len(text.split()),
                        total_tokens=len(system.split()) + len(last.split()) + len(text.split())),
        )

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self):
        pass

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(1 for call in self.calls if call.kind == kind)


def scripted_lm(responder: Callable[[Call], dict[str, str] | str], **kwargs) -> tuple[dspy.LM, ScriptedEngine]:
    """A ``dspy.LM`` (no cache unless asked) whose answers come from ``responder``."""
    engine = ScriptedEngine(responder)
    kwargs.setdefault("cache", False)
    lm = dspy.LM("openai/scripted", engine=engine, **kwargs)
    return lm, engine
