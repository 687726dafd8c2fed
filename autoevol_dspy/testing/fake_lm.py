"""A scripted LM for fast, deterministic tests: DSPy-formatted requests in, answers from a Python function out.

A request formatted by DSPy's ChatAdapter or JSONAdapter is parsed into a :class:`Call`
(the signature's input values, its output fields with their types, its instructions);
a *responder* maps the call to output values, which are formatted back the way the
adapter that asked expects. Answers depend on what is asked, not on call order, so
threaded runs stay deterministic. :func:`scripted_lm` serves a responder in-process as a
real ``dspy.LM``; :mod:`autoevol_dspy.testing.stub_server` serves it over HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

__all__ = [
    "Answer",
    "Call",
    "Responder",
    "ScriptedEngine",
    "format_answer",
    "generic_answer",
    "parse_call",
    "scripted_lm",
]

#: What a responder returns: output values by field name (formatted for the adapter), or raw reply text.
Answer = dict[str, Any] | str
Responder = Callable[["Call"], Answer]

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with |\Z)", re.DOTALL)
_OUTPUT_LINE = re.compile(r"^\d+\. `(\w+)` \((.*?)\):", re.MULTILINE)
_OBJECTIVE = "In adhering to this structure, your objective is:"
_JSON_MARKERS = ("Outputs will be a JSON object", "Respond with a JSON object")


@dataclass(frozen=True)
class Call:
    """One request as a fake LM sees it.

    ``inputs``: the signature's input values (text as DSPy rendered it); ``outputs``: the
    output field names with their type text (``str``, ``Literal['a', 'b']``, ...);
    ``prompt``: the last user message; ``adapter``: the format the reply must use.
    """

    system: str
    inputs: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)
    prompt: str = ""
    adapter: Literal["chat", "json"] = "chat"

    @property
    def instructions(self) -> str:
        """The signature's instructions (the text being optimized), whitespace-normalized per line."""
        if _OBJECTIVE not in self.system:
            return ""
        text = self.system.split(_OBJECTIVE, 1)[1].strip()
        return "\n".join(line.strip() for line in text.splitlines())

    @property
    def kind(self) -> str:
        """Which call of the optimizer (or the program) this is, from the fields it names."""
        names, outputs = set(self.inputs), set(self.outputs)
        if "trajectory" in names:
            return "analysis"
        if "improved_instructions" in outputs or {"feedback", "current_instructions"} <= names:
            return "rewrite"
        if {"first", "second"} <= names:
            return "judge"
        if "evolved_instruction" in outputs or "`evolved_instruction`" in self.system:
            return "evolution"
        if ("response" in outputs or "`response`" in self.system) and "instruction" in names:
            return "response"
        if "proposed_instruction" in outputs:
            return "proposal"
        if not outputs and not names:
            return "text"
        return "program"

    def options(self, name: str) -> list[str]:
        """The allowed values of a ``Literal`` output field, in order."""
        return re.findall(r"'([^']*)'", self.outputs.get(name, ""))


def parse_call(system: str, prompt: str) -> Call:
    """The :class:`Call` of a system message and the last user message, in either adapter's format."""
    head = system.split("All interactions will be structured", 1)[0]
    outputs: dict[str, str] = {}
    if "Your output fields are:" in head:
        outputs = dict(_OUTPUT_LINE.findall(head.split("Your output fields are:", 1)[1]))
    inputs = {name: value.strip() for name, value in _FIELD.findall(prompt)}
    adapter: Literal["chat", "json"] = "json" if any(m in system or m in prompt for m in _JSON_MARKERS) else "chat"
    return Call(system=system, inputs=inputs, outputs=outputs, prompt=prompt, adapter=adapter)


def format_answer(call: Call, answer: Answer) -> str:
    """Reply text for ``answer``: output values in the asking adapter's format, raw text unchanged."""
    if not isinstance(answer, dict):
        return str(answer)
    if call.adapter == "json":
        return json.dumps(answer, ensure_ascii=False)
    return "".join(f"[[ ## {key} ## ]]\n{value}\n\n" for key, value in answer.items()) + "[[ ## completed ## ]]"


def generic_answer(call: Call, overrides: dict[str, Any] | None = None) -> Answer:
    """A plausible answer to any signature: a Literal's first option, 0, True, [] or a sentence by type."""
    if not call.outputs:
        return "```\nRead the input carefully and answer with exactly one of the allowed labels.\n```"
    answer: dict[str, Any] = {}
    for name, kind in call.outputs.items():
        if overrides and name in overrides:
            answer[name] = overrides[name]
        elif kind.startswith("Literal"):
            answer[name] = (call.options(name) or [""])[0]
        elif kind.startswith(("int", "float")):
            answer[name] = 0
        elif kind.startswith("bool"):
            answer[name] = True
        elif kind.startswith(("list", "dict")):
            answer[name] = [] if kind.startswith("list") else {}
        else:
            answer[name] = "Read the input carefully and answer with exactly one of the allowed labels."
    return answer


def _text(parts: Any) -> str:
    if isinstance(parts, str):
        return parts
    return "".join(getattr(part, "text", "") or "" for part in parts or ())


class ScriptedEngine:
    """A DSPy engine answering each request with ``responder(call)``; it records every call (thread-safe)."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.lock = threading.Lock()
        self.calls: list[Call] = []

    def complete(self, request: Any) -> Response:
        system = _text(request.system)
        prompt = (request.messages[-1].text or "") if request.messages else ""
        call = parse_call(system, prompt)
        with self.lock:
            self.calls.append(call)
        text = format_answer(call, self.responder(call))
        words_in, words_out = len(system.split()) + len(prompt.split()), len(text.split())
        return Response(
            id=None,
            model="scripted",
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=words_in, output_tokens=words_out, total_tokens=words_in + words_out),
        )

    def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        """Nothing to free."""

    def count(self, kind: str) -> int:
        """How many recorded calls were of this :attr:`Call.kind`."""
        with self.lock:
            return sum(1 for call in self.calls if call.kind == kind)


class AsyncScriptedEngine:
    """The async face of a :class:`ScriptedEngine` (for ``acall`` and async-only programs)."""

    def __init__(self, engine: ScriptedEngine) -> None:
        self.engine = engine

    async def complete(self, request: Any) -> Response:
        return self.engine.complete(request)

    async def stream(self, request: Any) -> Any:
        from dspy.lm15 import response_to_events

        for event in response_to_events(self.engine.complete(request)):
            yield event

    async def aclose(self) -> None:
        """Nothing to free."""


def scripted_lm(responder: Responder, **kwargs: Any) -> tuple[dspy.LM, ScriptedEngine]:
    """A real ``dspy.LM`` (no cache unless asked) whose answers come from ``responder``, and its engine."""
    engine = ScriptedEngine(responder)
    kwargs.setdefault("cache", False)
    lm = dspy.LM("openai/scripted", engine=engine, async_engine=AsyncScriptedEngine(engine), **kwargs)
    return lm, engine
