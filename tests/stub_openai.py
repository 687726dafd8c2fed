"""A scripted OpenAI-compatible server on loopback, for end-to-end tests of the command line.

It answers ``POST /v1/chat/completions`` by parsing the DSPy-formatted messages into a
:class:`fakes.Call` and asking a responder, so a CLI run in a subprocess talks real HTTP
to deterministic LMs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fakes import Call, parse_inputs


def _handler(responder: Callable[[Call], dict | str], counter: dict) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            messages = body.get("messages", [])
            system = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
            last = messages[-1].get("content", "") if messages else ""
            if isinstance(last, list):
                last = "".join(part.get("text", "") for part in last)
            call = Call(system=system, inputs=parse_inputs(last))
            counter["calls"] = counter.get("calls", 0) + 1
            answer = responder(call)
            if isinstance(answer, dict):
                answer = "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in answer.items()) + "[[ ## completed ## ]]"
            payload = {
                "id": f"chatcmpl-{counter['calls']}", "object": "chat.completion", "created": 0,
                "model": body.get("model", "stub"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": {"prompt_tokens": len(last.split()), "completion_tokens": len(answer.split()),
                          "total_tokens": len(last.split()) + len(answer.split())},
            }
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serve(responder: Callable[[Call], dict | str]) -> Iterator[tuple[str, dict]]:
    """Run the stub on a free loopback port; yields (api_base, counter) and stops it afterwards."""
    counter: dict = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(responder, counter))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", counter
    finally:
        server.shutdown()
        server.server_close()
