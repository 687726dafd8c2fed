"""The shared fakes of ``autoevol_dspy.testing``: request parsing for both adapters, the stub server and its faults."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import dspy
import pytest

from autoevol_dspy.testing import FAULT_KINDS, Call, Fault, StubProcess, StubServer, generic_answer, scripted_lm


class Pick(dspy.Signature):
    """Pick the best label for the text."""

    text: str = dspy.InputField()
    notes: list[str] = dspy.InputField()
    label: Literal["good", "bad"] = dspy.OutputField()
    score: int = dspy.OutputField()


@pytest.mark.parametrize("adapter", [dspy.ChatAdapter(), dspy.JSONAdapter()], ids=["chat", "json"])
def test_both_adapters_parse_into_one_call_and_get_replies_in_their_own_format(adapter):
    seen: list[Call] = []

    def respond(call: Call):
        seen.append(call)
        return {"label": call.options("label")[-1], "score": 7}

    lm, engine = scripted_lm(respond)
    with dspy.context(lm=lm, adapter=adapter):
        prediction = dspy.Predict(Pick)(text="First line.\n\nSecond paragraph.", notes=["a", "b"])
    assert prediction.label == "bad" and prediction.score == 7
    call = seen[0]
    assert call.inputs["text"] == "First line.\n\nSecond paragraph."
    assert json.loads(call.inputs["notes"]) == ["a", "b"]
    assert list(call.outputs) == ["label", "score"] and call.outputs["score"] == "int"
    assert call.options("label") == ["good", "bad"]
    assert call.instructions == "Pick the best label for the text."
    assert call.adapter == ("json" if isinstance(adapter, dspy.JSONAdapter) else "chat")
    assert call.kind == "program" and engine.count("program") == 1


def test_generic_answer_fills_every_output_field_by_type():
    call = Call(system="", inputs={"text": "x"}, outputs={"label": "Literal['good', 'bad']", "score": "int",
                                                         "ok": "bool", "items": "list[str]", "why": "str"})
    answer = generic_answer(call, {"why": "because"})
    assert answer == {"label": "good", "score": 0, "ok": True, "items": [], "why": "because"}


def _post(url: str, body: dict, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


CHAT = {"model": "stub", "messages": [{"role": "user", "content": "[[ ## question ## ]]\nWhat is 2 + 2?"}]}


def test_each_fault_looks_like_it_should_on_the_wire():
    with StubServer(faults=[Fault("rate_limit", first=1, retry_after_s=2)]) as server:
        url = f"{server.base_url}/chat/completions"
        status, headers, _ = _post(url, CHAT)
        assert status == 429 and headers["Retry-After"] == "2"
        status, _, body = _post(url, CHAT)
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"]
        server.set_faults([Fault("server_error", first=1)])
        assert _post(url, CHAT)[0] == 500
        server.set_faults([Fault("empty_body", first=1)])
        assert _post(url, CHAT)[:1] == (200,) and _post(url, CHAT)[2]  # empty once, then an answer
        server.set_faults([Fault("empty_body", first=1)])
        assert _post(url, CHAT)[2] == b""
        server.set_faults([Fault("invalid_json", first=1)])
        with pytest.raises(json.JSONDecodeError):
            json.loads(_post(url, CHAT)[2])
        server.set_faults([Fault("garbage", first=1)])
        content = json.loads(_post(url, CHAT)[2])["choices"][0]["message"]["content"]
        assert "[[ ## " not in content and "{" in content
        server.set_faults([Fault("hang", first=1, hang_s=3)])
        started = time.perf_counter()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            _post(url, CHAT, timeout=0.5)
        assert time.perf_counter() - started < 2.5
        stats = server.stats()
    assert stats["faults"] == {kind: 1 for kind in FAULT_KINDS} | {"empty_body": 2}
    assert stats["requests"] == stats["total"] + sum(stats["faults"].values())


def test_a_fault_rate_is_seeded_and_first_n_and_after_count_requests():
    with StubServer(faults=[Fault("server_error", rate=0.3)], seed=4) as server:
        url = f"{server.base_url}/chat/completions"
        first = [_post(url, CHAT)[0] for _ in range(40)]
        server.reset()
        again = [_post(url, CHAT)[0] for _ in range(40)]
    assert first == again and 5 <= first.count(500) <= 20
    with StubServer(faults=[Fault("server_error", first=2, after=3)]) as server:
        url = f"{server.base_url}/chat/completions"
        assert [_post(url, CHAT)[0] for _ in range(7)] == [200, 200, 200, 500, 500, 200, 200]


def test_a_fault_can_target_one_kind_of_call_and_has_a_command_line_form():
    fault = Fault("server_error", rate=1.0, only=("analysis", "rewrite"))
    assert Fault.parse(fault.spec()) == fault and fault.spec() == "server_error:rate=1.0,only=analysis+rewrite"
    analysis = {"model": "stub", "messages": [
        {"role": "system", "content": "Your input fields are:\n1. `trajectory` (str):\nYour output fields are:\n"
                                      "1. `feedback` (str):\nAll interactions will be structured"},
        {"role": "user", "content": "[[ ## trajectory ## ]]\nCase 1 FAILED"}]}
    with StubServer(faults=[fault]) as server:
        url = f"{server.base_url}/chat/completions"
        assert [_post(url, CHAT)[0], _post(url, analysis)[0], _post(url, CHAT)[0]] == [200, 500, 200]
        assert server.stats()["by_role"] == {"program": 2}


def test_latency_capacity_and_counts_by_role():
    with StubServer(lambda call: {"answer": "4"}, latency_s=0.1, capacity=2) as server:
        url = f"{server.base_url}/chat/completions"
        threads = [threading.Thread(target=_post, args=(url, CHAT)) for _ in range(6)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        stats = server.stats()
    assert elapsed >= 0.3  # 6 requests of 0.1 s on 2 slots
    assert stats["peak_in_service"] == 2 and stats["by_role"] == {"program": 6} and stats["total"] == 6


def test_a_responder_error_is_a_500_and_the_stub_runs_in_its_own_process(tmp_path: Path):
    def broken(call):
        raise RuntimeError("scripted outage")

    with StubServer(broken) as server:
        status, _, body = _post(f"{server.base_url}/chat/completions", CHAT)
    assert status == 500 and b"scripted outage" in body

    (tmp_path / "fixed_reply.py").write_text("def respond(call):\n    return {'answer': 'from the child'}\n")
    with StubProcess("fixed_reply:respond", path=[str(tmp_path)], faults=[Fault("server_error", first=1)]) as child:
        url = f"{child.base_url}/chat/completions"
        assert _post(url, CHAT)[0] == 500
        assert "from the child" in json.loads(_post(url, CHAT)[2])["choices"][0]["message"]["content"]
        child.set_faults([Fault("rate_limit", first=1)])
        assert _post(url, CHAT)[0] == 429
        stats = child.stats()
        assert stats["faults"] == {"server_error": 1, "rate_limit": 1} and stats["total"] == 1  # counters kept
        child.reset()
        assert child.stats()["requests"] == 0
    assert child.process is None


def test_the_orchestration_report_writes_only_what_its_run_measured():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import orchestration
    finally:
        sys.path.pop(0)
    run = orchestration.Measurement(optimizer="AutoEvolInstruct (evolution)", concurrency=4, latency_s=0.05,
                                    wall_s=2.0, calls=100, cpu_s=0.25, server_cpu_s=0.04)
    text = orchestration.notes({("AutoEvolInstruct (evolution)", 0.05, 4): [run]}, None)
    assert "client 2.5 ms" in text and "stub server 0.4 ms" in text and "No CPU profile" in text
    profile = orchestration.CpuProfile(label="x", calls=10, cpu_s=1.0,
                                       by_component={"DSPy cost estimation": 0.25, "autoevol_dspy (the rest)": 0.75})
    text = orchestration.notes({("x", 0.05, 4): [run]}, profile)
    assert "DSPy cost estimation 25%" in text and "autoevol_dspy (the rest) 75%" in text
    assert not hasattr(orchestration, "NOTES")
