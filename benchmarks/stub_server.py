"""A deterministic OpenAI-compatible stub LM server for orchestration benchmarks (stdlib only).

It answers ``POST /v1/chat/completions`` after a fixed latency L, serving at most C requests at
once (a semaphore: extra requests wait), and recognizes each kind of call from DSPy's
ChatAdapter messages: Auto Evol-Instruct's evolution / response / analysis / rewrite / judge
calls, a small question-answering program, and the proposal calls of GEPA and MIPROv2.

Quality is carried in the instruction texts as a marker ``[stub-level=N]``: an evolving method
at level N answers (instead of rewriting) every instruction whose stable hash bucket (0-99) is
below N, and a program at level N answers those questions wrongly. Rewrites and proposals
return new texts at other levels, some better, some worse, one a duplicate and one unchanged,
so selection, deduplication and early stop all have work to do.

Run standalone: ``python benchmarks/stub_server.py --latency-ms 50 --concurrency 8``; it prints
``READY <base url>`` and serves until stdin closes. ``GET /stats`` returns the call counts by
role and the peak number of requests in service; ``POST /stats/reset`` zeroes them and makes
the stub forget earlier requests, so a repeated run gets the same replies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["StubBehaviour", "StubProcess", "StubStats", "bucket", "level_of", "with_level", "serve"]

logger = logging.getLogger("benchmarks.stub_server")

LEVEL = re.compile(r"\s*\[stub-level=(\d+)\]")
#: Failure level of a method or program text without a marker.
DEFAULT_LEVEL = 60
#: Response failures: evolved instructions whose bucket is below this get a "please provide" reply.
RESPONSE_FAILURE_LEVEL = 10
#: How the k-th rewrite of the same text changes its level (a multiplier); 1.0 means "unchanged text".
REWRITE_FACTORS = (0.6, 0.85, 1.25, 0.85, 1.0, 0.7, 1.1)
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\n\nRespond with the corresponding|\Z)", re.DOTALL)
_OUTPUT_LINE = re.compile(r"^\d+\. `(\w+)` \(([^)]*)\)", re.MULTILINE)
_OBJECTIVE = "In adhering to this structure, your objective is: "
_FENCE = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)


def bucket(text: str, salt: str = "") -> int:
    """A stable 0-99 bucket of a text."""
    return int(hashlib.sha256(f"{salt}{text}".encode()).hexdigest()[:8], 16) % 100


def level_of(text: str, default: int) -> int:
    """The ``[stub-level=N]`` marker of a text, or ``default``."""
    found = LEVEL.search(text or "")
    return int(found.group(1)) if found else default


def with_level(text: str, level: int) -> str:
    """``text`` with its level marker replaced by ``level``."""
    return f"{LEVEL.sub('', text).rstrip()} [stub-level={level}]"


@dataclass(frozen=True)
class ParsedCall:
    """One chat request as the stub sees it."""

    system: str
    user: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    instructions: str


def parse_messages(messages: list[dict[str, Any]]) -> ParsedCall:
    """Split ChatAdapter messages into input fields, output fields (name -> type) and instructions."""
    system = "\n".join(_text(m) for m in messages if m.get("role") == "system")
    user = _text(messages[-1]) if messages else ""
    inputs = {name: value.strip() for name, value in _FIELD.findall(user)}
    head = system.split("All interactions will be structured", 1)[0]
    out_part = head.split("Your output fields are:", 1)[1] if "Your output fields are:" in head else ""
    outputs = dict(_OUTPUT_LINE.findall(out_part))
    instructions = system.split(_OBJECTIVE, 1)[1].strip() if _OBJECTIVE in system else ""
    instructions = "\n".join(line.strip() for line in instructions.splitlines())
    return ParsedCall(system=system, user=user, inputs=inputs, outputs=outputs, instructions=instructions)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _fields(values: dict[str, str]) -> str:
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]"


class StubBehaviour:
    """Decides the role and reply of each request; deterministic given the order of identical requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()

    def reset(self) -> None:
        """Forget earlier requests, so a repeated run gets the same replies."""
        with self._lock:
            self._seen.clear()

    def _occurrence(self, *parts: str) -> int:
        """How many identical requests came before this one (m samples of one prompt differ by this)."""
        key = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        with self._lock:
            index = self._seen[key]
            self._seen[key] += 1
        return index

    def reply(self, messages: list[dict[str, Any]]) -> tuple[str, str]:
        """Return ``(role, reply text)`` for one chat request."""
        call = parse_messages(messages)
        if not call.outputs:
            return "gepa_reflection", self._reflection(call.user)
        if "trajectory" in call.inputs:
            return "analysis", self._analysis(call)
        if "improved_instructions" in call.outputs:
            return "rewrite", self._rewrite(call)
        if "rewrite" in call.outputs:
            return "evolution", self._evolution(call)
        if "verdict" in call.outputs:
            return "judge", _fields({"verdict": "not equal"})
        if "response" in call.outputs:
            return "response", self._response(call)
        if "proposed_instruction" in call.outputs:
            return "mipro_proposal", self._mipro_proposal(call)
        if "answer" in call.outputs and "question" in call.inputs:
            return "program", self._program(call)
        return "other", _fields({name: _generic(kind) for name, kind in call.outputs.items()})

    def _evolution(self, call: ParsedCall) -> str:
        instruction = call.inputs.get("instruction", "")
        if bucket(instruction) < level_of(call.instructions, DEFAULT_LEVEL):
            return _fields({"rewrite": f"The answer is {len(instruction) % 97}."})
        evolved = f"{instruction} Solve it in at least three steps and state the units of every result."
        return _fields({"rewrite": f"Step 1 #Methods List#: add steps, add units\nStep 2 #Plan#: both\n"
                                   f"Step 4 #Finally Rewritten Instruction#: {evolved}"})

    def _response(self, call: ParsedCall) -> str:
        instruction = call.inputs.get("instruction", "")
        if bucket(instruction, "response") < RESPONSE_FAILURE_LEVEL:
            return _fields({"response": "Sure, could you please provide the missing numbers?"})
        return _fields({"response": "First, restate the quantities. Second, combine them step by step. "
                                    "Third, check the units. The result follows from these steps."})

    def _analysis(self, call: ParsedCall) -> str:
        sample = self._occurrence("analysis", call.inputs.get("current_instructions", ""), call.inputs["trajectory"])
        failed = call.inputs["trajectory"].count("Detected problem") + call.inputs["trajectory"].count("FAILED")
        return _fields({"feedback": f"Analysis variant {sample}: {failed} case(s) failed; the rewriter answered "
                                    "the instruction instead of rewriting it. Keep the step structure."})

    def _rewrite(self, call: ParsedCall) -> str:
        current = call.inputs.get("current_instructions", "")
        found = re.search(r"Analysis variant (\d+)", call.inputs.get("feedback", ""))
        variant = int(found.group(1)) if found else self._occurrence("rewrite", current)
        return _fields({"improved_instructions": _revised(current, variant)})

    def _program(self, call: ParsedCall) -> str:
        question = call.inputs["question"]
        correct = _sum_answer(question)
        wrong = bucket(question) < level_of(call.instructions, DEFAULT_LEVEL)
        return _fields({"answer": str(correct + 1 if wrong else correct)})

    def _reflection(self, prompt: str) -> str:
        blocks = _FENCE.findall(prompt)
        current = blocks[0].strip() if blocks else ""
        variant = self._occurrence("reflection", current)
        return f"```\n{_revised(current, variant, force_change=True)}\n```"

    def _mipro_proposal(self, call: ParsedCall) -> str:
        basic = call.inputs.get("basic_instruction", "Answer the question.")
        variant = self._occurrence("mipro", basic, call.inputs.get("tip", ""))
        tip = bucket(call.inputs.get("tip", ""), "tip") % len(REWRITE_FACTORS)
        text = _revised(basic, variant + tip, force_change=True)
        return _fields({"proposed_instruction": text})


def _revised(current: str, variant: int, *, force_change: bool = False) -> str:
    """The ``variant``-th rewrite of ``current``: a new level, or the same text for factor 1.0."""
    factor = REWRITE_FACTORS[variant % len(REWRITE_FACTORS)]
    if factor == 1.0 and not force_change:
        return current
    level = max(2, min(95, round(level_of(current, DEFAULT_LEVEL) * factor)))
    return with_level(current or "Answer the question.", level)


def _sum_answer(question: str) -> int:
    return sum(int(n) for n in re.findall(r"\d+", question))


def _generic(kind: str) -> str:
    kind = kind.lower()
    if kind.startswith("bool"):
        return "True"
    if kind.startswith(("int", "float")):
        return "1"
    if kind.startswith(("list", "dict")):
        return "[]" if kind.startswith("list") else "{}"
    return "The data are short arithmetic questions answered with a single number."


@dataclass
class StubStats:
    """Server-side counters: requests by role and the peak number served at once."""

    by_role: Counter = field(default_factory=Counter)
    in_service: int = 0
    peak_in_service: int = 0
    service_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, Any]:
        """Counts by role, their total, the peak concurrency and the summed time calls held a slot."""
        with self.lock:
            return {"total": sum(self.by_role.values()), "by_role": dict(self.by_role),
                    "peak_in_service": self.peak_in_service, "service_s": self.service_s}

    def reset(self) -> None:
        with self.lock:
            self.by_role.clear()
            self.peak_in_service = self.in_service
            self.service_s = 0.0


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], latency_s: float, concurrency: int) -> None:
        super().__init__(address, _Handler)
        self.latency_s = latency_s
        self.slots = threading.BoundedSemaphore(concurrency)
        self.behaviour = StubBehaviour()
        self.stats = StubStats()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # with one write per reply, no 40 ms delayed-ACK stalls
    server: _StubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
        elif self.path == "/stats":
            self._send(200, self.server.stats.snapshot())
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/stats/reset":
            self.server.stats.reset()
            self.server.behaviour.reset()
            self._send(200, {"ok": True})
        elif self.path.endswith("/chat/completions"):
            self._send(200, self._complete(body))
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        stats = self.server.stats
        with self.server.slots:
            with stats.lock:
                stats.in_service += 1
                stats.peak_in_service = max(stats.peak_in_service, stats.in_service)
            started = time.perf_counter()
            role, text = self.server.behaviour.reply(body.get("messages") or [])
            time.sleep(max(0.0, self.server.latency_s - (time.perf_counter() - started)))
            with stats.lock:
                stats.in_service -= 1
                stats.by_role[role] += 1
                stats.service_s += time.perf_counter() - started
        prompt_tokens = sum(len(_text(m).split()) for m in body.get("messages") or [])
        completion_tokens = len(text.split())
        return {
            "id": f"stub-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + data)  # headers and body in one segment
        self._headers_buffer = []


def serve(latency_s: float, concurrency: int, port: int = 0) -> _StubServer:
    """Start a stub server on 127.0.0.1 in background threads; ``server.shutdown()`` stops it."""
    server = _StubServer(("127.0.0.1", port), latency_s, concurrency)
    threading.Thread(target=server.serve_forever, name="stub-server", daemon=True).start()
    return server


class StubProcess:
    """The stub server in its own process (so it does not share the client's GIL); a context manager."""

    def __init__(self, latency_s: float, concurrency: int) -> None:
        self.latency_s = latency_s
        self.concurrency = concurrency
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> "StubProcess":
        command = [sys.executable, __file__, "--latency-ms", str(self.latency_s * 1000),
                   "--concurrency", str(self.concurrency)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("READY "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the stub server did not start: {line!r}")
        self.base_url = line.split()[1]
        logger.info("stub server at %s (L=%.0f ms, C=%d)", self.base_url, self.latency_s * 1000, self.concurrency)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()

    def _root(self) -> str:
        return self.base_url.rsplit("/v1", 1)[0]

    def stats(self) -> dict[str, Any]:
        """The server's counters."""
        with urllib.request.urlopen(f"{self._root()}/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def reset(self) -> None:
        """Zero the server's counters."""
        request = urllib.request.Request(f"{self._root()}/stats/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


def main() -> None:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency of every call (default 50)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests served at once (default 8)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    server = serve(args.latency_ms / 1000, args.concurrency, args.port)
    print(f"READY http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
