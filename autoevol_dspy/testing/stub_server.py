"""A loopback OpenAI-compatible ``/v1/chat/completions`` server with latency, capacity and fault injection.

It parses each DSPy-formatted request into a :class:`~autoevol_dspy.testing.fake_lm.Call`
and answers with a responder, so a command-line run or a benchmark talks real HTTP to a
deterministic LM. ``latency_s`` delays every reply, ``capacity`` bounds the requests
served at once (extra ones wait), and :class:`Fault` injects what a bad day brings: HTTP
429 with ``Retry-After``, HTTP 500, an empty 200 body, a 200 body that is not JSON, a 200
whose content is garbage, or a hang longer than the client waits, at a rate or for the
first N requests. ``rate_limit_per_s`` makes it a rate-limited API: requests beyond that
rate (a token bucket holding one second's worth) get HTTP 429 with the ``Retry-After`` of the
next free token, as a provider's limit would. Counters (requests, answers by call kind,
faults by kind, peak concurrency) come from :meth:`StubServer.stats` or ``GET /stats``.

In-process: ``with StubServer(responder) as server: ... server.base_url``. In its own
process (so it does not share the client's GIL): :class:`StubProcess`, or
``python -m autoevol_dspy.testing --responder module:name``, which prints
``READY <base url>`` and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from autoevol_dspy.testing.fake_lm import (
    Responder,
    format_answer,
    generic_answer,
    parse_call,
)

__all__ = ["FAULT_KINDS", "Fault", "StubProcess", "StubServer", "load_responder"]

logger = logging.getLogger(__name__)

FaultKind = Literal["rate_limit", "server_error", "empty_body", "invalid_json", "garbage", "hang"]
#: Every fault the stub can inject.
FAULT_KINDS: tuple[str, ...] = ("rate_limit", "server_error", "empty_body", "invalid_json", "garbage", "hang")
#: The content of a ``garbage`` reply: valid HTTP and JSON, but no adapter can read an answer from it.
GARBAGE = "\u0000~~ lorem ipsum ]] ## [[ {not: an answer ~~"


@dataclass(frozen=True)
class Fault:
    """One kind of fault, injected with probability ``rate`` per request and/or for the ``first`` N requests.

    ``after`` healthy requests come before any of it (to fail one phase of a run). ``only``
    limits it to calls of these kinds (``analysis``, ``evolution``, ... see ``Call.kind``);
    its requests are then counted among those calls alone. ``retry_after_s`` is the
    ``Retry-After`` of a 429; ``hang_s`` how long a hang holds the request before dropping
    the connection (longer than the client's timeout).
    """

    kind: FaultKind
    _: KW_ONLY
    rate: float = 0.0
    first: int = 0
    after: int = 0
    retry_after_s: float = 0.0
    hang_s: float = 30.0
    only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0 or self.first < 0 or self.after < 0:
            raise ValueError(f"a fault needs 0 <= rate <= 1 and non-negative first/after: {self!r}")

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """``KIND[:key=value,...]``, e.g. ``hang:rate=0.1,hang_s=5`` (the command-line form)."""
        kind, _, rest = text.partition(":")
        options: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, _, value = (part.strip() for part in item.partition("="))
            if key == "only":
                options[key] = tuple(value.split("+"))
            else:
                options[key] = int(value) if key in ("first", "after") else float(value)
        return cls(kind=kind.strip(), **options)  # type: ignore[arg-type]

    def spec(self) -> str:
        """The command-line form of this fault (``only`` kinds joined by ``+``)."""
        options = {k: ("+".join(v) if k == "only" else v) for k, v in asdict(self).items()
                   if k != "kind" and v != getattr(Fault, k)}
        return self.kind + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")

    def hits(self, index: int, draw: float) -> bool:
        """Whether request number ``index`` (0-based) gets this fault, given a uniform ``draw``."""
        if index < self.after:
            return False
        return index - self.after < self.first or draw < self.rate


class _Injector:
    """Decides each request's fault; seeded, so a run with the same request order gets the same faults."""

    def __init__(self, faults: Sequence[Fault], seed: int) -> None:
        self.faults = list(faults)
        self.seed = seed
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._counts = [0] * len(self.faults)

    def next(self, call_kind: str) -> Fault | None:
        """The fault for the next request, a call of ``call_kind``, or None."""
        found = None
        with self._lock:
            for position, fault in enumerate(self.faults):
                if fault.only and call_kind not in fault.only:
                    continue
                index, draw = self._counts[position], self._random.random()
                self._counts[position] += 1
                if found is None and fault.hits(index, draw):
                    found = fault
        return found


@dataclass
class _Stats:
    """Server-side counters, guarded by ``lock``."""

    requests: int = 0
    by_role: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    in_service: int = 0
    peak_in_service: int = 0
    service_s: float = 0.0
    cpu_mark: float = field(default_factory=time.process_time)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"total": sum(self.by_role.values()), "requests": self.requests, "by_role": dict(self.by_role),
                    "faults": dict(self.faults), "peak_in_service": self.peak_in_service,
                    "service_s": self.service_s, "cpu_s": time.process_time() - self.cpu_mark}

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.by_role.clear()
            self.faults.clear()
            self.peak_in_service = self.in_service
            self.service_s = 0.0
            self.cpu_mark = time.process_time()


class _Bucket:
    """A token bucket: ``rate`` requests a second, at most ``rate`` (one second's worth) at once."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate_limit_per_s must be positive, got {rate!r}")
        self.rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a request may pass now (a token is taken), else the seconds until the next token."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    stub: "StubServer"


class StubServer:
    """The stub on ``127.0.0.1`` in background threads of this process; a context manager.

    ``responder`` answers each parsed call (default: :func:`generic_answer`); it may be
    swapped at any time, as may the faults (:meth:`set_faults`), so a test can heal the
    server between two runs. A responder that raises gets an HTTP 500 with its message.
    ``rate_limit_per_s`` answers requests beyond that rate with 429 (see the module docstring).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        capacity: int | None = None,
        faults: Iterable[Fault] = (),
        seed: int = 0,
        port: int = 0,
        rate_limit_per_s: float | None = None,
    ) -> None:
        self.responder: Responder = responder or generic_answer
        self.rate_limit_per_s = rate_limit_per_s
        self._bucket = _Bucket(rate_limit_per_s) if rate_limit_per_s else None
        self.latency_s = latency_s
        self.capacity = capacity
        self._slots = threading.BoundedSemaphore(capacity) if capacity else None
        self._injector = _Injector(list(faults), seed)
        self._stats = _Stats()
        self._stopping = threading.Event()
        self._authorizations: Counter = Counter()
        self._port = port
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Life cycle ---------------------------------------------------------------------------------

    def start(self) -> "StubServer":
        self._http = _HTTPServer(("127.0.0.1", self._port), _Handler)
        self._http.stub = self
        self._thread = threading.Thread(target=self._http.serve_forever, name="stub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a hang are released at once."""
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> "StubServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("the stub server is not running")
        return self._http.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    # Control ------------------------------------------------------------------------------------

    def set_faults(self, faults: Iterable[Fault], *, seed: int = 0) -> None:
        """Replace the faults (an empty list heals the server); request numbering starts again."""
        self._injector = _Injector(list(faults), seed)

    def stats(self) -> dict[str, Any]:
        """Requests, answers by call kind (``total``), faults by kind, peak concurrency, service and CPU seconds."""
        return self._stats.snapshot()

    def authorizations(self) -> Counter:
        """The ``Authorization`` headers of the chat requests so far, counted (in-process only: never over HTTP)."""
        with self._stats.lock:
            return Counter(self._authorizations)

    def reset(self) -> None:
        """Zero the counters, restart fault numbering, and ``reset()`` the responder if it has one."""
        self._stats.reset()
        self._injector = _Injector(self._injector.faults, self._injector.seed)
        reset = getattr(self.responder, "reset", None)
        if callable(reset):
            reset()

    # Serving ------------------------------------------------------------------------------------

    def complete(self, body: dict[str, Any]) -> tuple[Fault | None, dict[str, Any] | None]:
        """The fault for this request, or the chat-completion payload answering it."""
        stats = self._stats
        with stats.lock:
            stats.requests += 1
        messages = body.get("messages") or []
        system = "\n".join(_content(m) for m in messages if m.get("role") == "system")
        prompt = _content(messages[-1]) if messages else ""
        call = parse_call(system, prompt)
        fault = self._injector.next(call.kind)
        wait = self._bucket.take() if fault is None and self._bucket is not None else 0.0
        if wait > 0:
            fault = Fault("rate_limit", retry_after_s=round(wait, 3))
        if fault is not None:
            with stats.lock:
                stats.faults[fault.kind] += 1
            return fault, None
        if self._slots is not None:
            self._slots.acquire()
        try:
            with stats.lock:
                stats.in_service += 1
                stats.peak_in_service = max(stats.peak_in_service, stats.in_service)
            started = time.perf_counter()
            text = format_answer(call, self.responder(call))
            remaining = self.latency_s - (time.perf_counter() - started)
            if remaining > 0:
                time.sleep(remaining)
            with stats.lock:
                stats.in_service -= 1
                stats.by_role[call.kind] += 1
                stats.service_s += time.perf_counter() - started
        except Exception:
            with stats.lock:
                stats.in_service -= 1
            raise
        finally:
            if self._slots is not None:
                self._slots.release()
        words_in, words_out = len(system.split()) + len(prompt.split()), len(text.split())
        return None, {
            "id": f"stub-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": words_in, "completion_tokens": words_out, "total_tokens": words_in + words_out},
        }


def _content(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one write per reply: no delayed-ACK stalls
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        logger.debug(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
        elif self.path == "/stats":
            self._send(200, self.server.stub.stats())
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "the request body is not JSON"}})
            return
        stub = self.server.stub
        if self.path == "/stats/reset":
            stub.reset()
            self._send(200, {"ok": True})
        elif self.path == "/faults":
            faults = [Fault(**{**item, "only": tuple(item.get("only") or ())}) for item in body.get("faults", [])]
            stub.set_faults(faults, seed=int(body.get("seed", 0)))
            self._send(200, {"ok": True})
        elif self.path.endswith("/chat/completions"):
            self._chat(stub, body)
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _chat(self, stub: StubServer, body: dict[str, Any]) -> None:
        with stub._stats.lock:
            stub._authorizations[self.headers.get("Authorization") or ""] += 1
        try:
            fault, payload = stub.complete(body)
        except Exception as exc:  # noqa: BLE001 - a responder's error is the server's 500
            self._send(500, {"error": {"message": f"responder failed: {exc}", "type": "server_error"}})
            return
        if fault is None:
            self._send(200, payload)
        elif fault.kind == "rate_limit":
            self._send(429, {"error": {"message": "rate limited (stub)", "type": "rate_limit_error"}},
                       headers={"Retry-After": f"{fault.retry_after_s:g}"})
        elif fault.kind == "server_error":
            self._send(500, {"error": {"message": "internal error (stub)", "type": "server_error"}})
        elif fault.kind == "empty_body":
            self._send_raw(200, b"")
        elif fault.kind == "invalid_json":
            self._send_raw(200, b'{"id": "stub", "choices": [{"index": 0, "message": {"content": "cut sh')
        elif fault.kind == "garbage":
            self._send(200, _garbage_payload(body))
        else:  # hang: hold the request past the client's timeout, then drop the connection
            stub._stopping.wait(fault.hang_s)
            self.close_connection = True

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self._headers_buffer.append(b"\r\n")
        try:
            self.wfile.write(b"".join(self._headers_buffer) + data)  # headers and body in one segment
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self._headers_buffer = []


def _garbage_payload(body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "stub-garbage", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": GARBAGE}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


# In its own process ---------------------------------------------------------------------------


def load_responder(spec: str) -> Responder:
    """``module:name`` as a responder: a callable, or a class instantiated without arguments."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"a responder is given as module:name, got {spec!r}")
    target = getattr(importlib.import_module(module_name), attribute)
    return target() if isinstance(target, type) else target


class StubProcess:
    """The stub server in a child process, started and stopped as a context manager.

    ``responder`` is a ``module:name`` spec importable in the child (``path`` entries are
    put on its ``sys.path`` first); counters and faults are read and set over HTTP.
    """

    def __init__(
        self,
        responder: str | None = None,
        *,
        latency_s: float = 0.0,
        capacity: int | None = None,
        faults: Iterable[Fault] = (),
        seed: int = 0,
        path: Sequence[str] = (),
        rate_limit_per_s: float | None = None,
    ) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.capacity = capacity
        self.rate_limit_per_s = rate_limit_per_s
        self.faults = list(faults)
        self.seed = seed
        self.path = list(path)
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "autoevol_dspy.testing", "--latency-ms",
                   f"{self.latency_s * 1000:g}", "--seed", str(self.seed)]
        if self.responder:
            command += ["--responder", self.responder]
        if self.capacity:
            command += ["--capacity", str(self.capacity)]
        if self.rate_limit_per_s:
            command += ["--rate-limit-per-s", f"{self.rate_limit_per_s:g}"]
        for entry in self.path:
            command += ["--path", entry]
        for fault in self.faults:
            command += ["--fault", fault.spec()]
        return command

    def __enter__(self) -> "StubProcess":
        self.process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("READY "):
            self.__exit__(None, None, None)
            raise RuntimeError(f"the stub server did not start: {line!r}")
        self.base_url = line.split()[1]
        logger.info("stub server at %s (latency %.0f ms, capacity %s)", self.base_url, self.latency_s * 1000,
                    self.capacity or "unbounded")
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
        self.process = None

    def _post(self, path: str, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(f"{self._root()}{path}", data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _root(self) -> str:
        return self.base_url.rsplit("/v1", 1)[0]

    def stats(self) -> dict[str, Any]:
        """The server's counters (see :meth:`StubServer.stats`); ``cpu_s`` is the child's own CPU time."""
        with urllib.request.urlopen(f"{self._root()}/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def reset(self) -> None:
        """Zero the counters and reset the responder."""
        self._post("/stats/reset", {})

    def set_faults(self, faults: Iterable[Fault], *, seed: int = 0) -> None:
        """Replace the faults (an empty list heals the server)."""
        self._post("/faults", {"faults": [asdict(f) for f in faults], "seed": seed})


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responder", help="module:name of the responder (default: a generic answer per field)")
    parser.add_argument("--path", action="append", default=[], help="a directory to import the responder from")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency of every reply (default 0)")
    parser.add_argument("--capacity", type=int, default=None, help="requests served at once (default: unbounded)")
    parser.add_argument("--fault", action="append", default=[], help=f"KIND[:rate=R,first=N,after=N,...]; "
                        f"KIND is one of {', '.join(FAULT_KINDS)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default 0)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--rate-limit-per-s", type=float, default=None,
                        help="answer requests beyond this rate with 429 (default: no limit)")
    args = parser.parse_args(argv)
    sys.path[:0] = args.path
    responder = load_responder(args.responder) if args.responder else None
    server = StubServer(responder, latency_s=args.latency_ms / 1000, capacity=args.capacity,
                        faults=[Fault.parse(text) for text in args.fault], seed=args.seed, port=args.port,
                        rate_limit_per_s=args.rate_limit_per_s).start()
    print(f"READY {server.base_url}", flush=True)
    sys.stdin.read()
    server.stop()
