"""make_lm("openai/...", api_base=...) against a real OpenAI-compatible server (llama.cpp's, loopback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import dspy
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llama_cpp.server")
pytestmark = pytest.mark.embedded

from autoevol_dspy.lm.local_engine import default_model_path
from autoevol_dspy.lm import make_lm  # noqa: E402

STARTUP_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = log_path.open("wb")
    # One thread: llama.cpp's spinning workers slow down 5-15x when another process holds a core.
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
               "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
               "--n_threads", "1", "--n_threads_batch", "1"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}: "
                            f"{log_path.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT_S:.0f}s")
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def server_lm(server_url: str, monkeypatch: pytest.MonkeyPatch) -> dspy.LM:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a keyless local server: placeholder key
    return make_lm("openai/smollm2", api_base=server_url, temperature=0.0, max_tokens=16, cache=False)


def test_lm_call_through_server(server_lm: dspy.LM) -> None:
    outputs = server_lm("Tell me a long story about a cat.")
    assert len(outputs) == 1 and isinstance(outputs[0], str) and outputs[0].strip()
    usage = server_lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 16


def test_predict_through_server(server_lm: dspy.LM) -> None:
    with dspy.context(lm=server_lm.copy(max_tokens=48)):
        prediction = dspy.Predict("question -> answer")(question="What is 2 + 2?")
    assert isinstance(prediction.answer, str)
