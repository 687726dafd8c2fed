"""Back-pressure on 429: the gate halves what it lets through once per window, pauses on Retry-After, grows back;
against a rate-limited server, many threads slow down to its rate instead of hammering it."""

from __future__ import annotations

import asyncio
import threading

import dspy
import pytest
from dspy.lm15 import RateLimitError

from autoevol_dspy import LMSpecError
from autoevol_dspy.data import evolve_dataset
from autoevol_dspy.lm import backpressure, make_lm
from autoevol_dspy.lm.backpressure import RateLimitGate, gate_for
from autoevol_dspy.lm.server_engine import _proxy_settings
from autoevol_dspy.testing import StubServer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_429_halves_the_limit_once_per_window_and_successes_grow_it_back() -> None:
    gate = RateLimitGate(ceiling=64)
    tokens = [gate.acquire() for _ in range(40)]
    gate.release(tokens.pop(), rate_limited=True)  # 40 were in flight: the server took fewer
    assert gate.stats().limit == 20 and gate.stats().cuts == 1
    for token in tokens[:10]:  # 429s of requests sent before the cut say nothing new
        gate.release(token, rate_limited=True)
    assert gate.stats().limit == 20 and gate.stats().rate_limited == 11
    for token in tokens[10:]:  # successes of requests sent before the cut do not grow the limit either
        gate.release(token)
    assert gate.stats().limit == 20 and gate.stats().in_flight == 0
    fresh = [gate.acquire() for _ in range(20)]
    gate.release(fresh.pop(), rate_limited=True)  # a request sent after the cut: the next window
    assert gate.stats().cuts == 2 and gate.stats().limit == 10
    for token in fresh:
        gate.release(token)
    assert gate.stats().limit == 10
    for _ in range(10):
        gate.release(gate.acquire())
    assert 10.9 < gate.stats().limit < 11.1  # about one more slot per `limit` successes
    assert gate.stats().in_flight == 0


def test_the_limit_blocks_threads_beyond_it_until_a_slot_frees() -> None:
    gate = RateLimitGate(ceiling=4)
    gate.release(gate.acquire(), rate_limited=True)  # 1 in flight when limited: the floor of one
    assert gate.stats().limit == 1
    held = gate.acquire()
    entered = threading.Event()
    thread = threading.Thread(target=lambda: (gate.acquire(), entered.set()))
    thread.start()
    assert not entered.wait(0.2)
    gate.release(held)
    assert entered.wait(2)
    thread.join()


def test_retry_after_pauses_every_new_request() -> None:
    clock = Clock()
    gate = RateLimitGate(ceiling=8, clock=clock)
    gate.release(gate.acquire(), rate_limited=True, retry_after=2.0)
    assert gate._wait_s() == pytest.approx(2.0)
    clock.now += 2.5
    assert gate._wait_s() == 0.0


def test_servers_share_one_gate_and_a_larger_ceiling_raises_it() -> None:
    first = gate_for("http://127.0.0.1:1/v1#test-share", ceiling=16)
    again = gate_for("http://127.0.0.1:1/v1#test-share", ceiling=64)
    assert again is first and first.ceiling == 64 and first.stats().limit == 64


def test_the_proxy_of_an_api_base_is_read_from_the_environment_once(monkeypatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert _proxy_settings("http://10.1.2.3:8000/v1") == {"trust_env": False}
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert _proxy_settings("http://10.1.2.3:8000/v1") == {"proxy": "http://proxy.example:3128", "trust_env": False}
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert _proxy_settings("http://10.1.2.3:8000/v1") == {"trust_env": False}
    assert _proxy_settings(None) == {}


def test_hundreds_of_requests_are_in_flight_at_once() -> None:
    with StubServer(latency_s=1.5) as server:  # long enough for 160 threads to start on a loaded machine
        lm = make_lm("openai/stub", api_base=server.base_url, cache=False)
        threads = [threading.Thread(target=lm, args=(f"hello {i}",)) for i in range(160)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.stats()["peak_in_service"] > 100  # lm15's own pool stops at 100


def test_many_threads_slow_down_to_a_rate_limited_servers_rate(tmp_path) -> None:
    # 40 requests a second with a second's burst, 50 ms a reply: about 2 requests in flight fit, 64 threads ask.
    rate, seeds = 40.0, [f"Task {i}: add {i} and {i + 3}, then explain." for i in range(120)]
    with StubServer(latency_s=0.05, rate_limit_per_s=rate) as server:
        lm = make_lm("openai/stub", api_base=server.base_url, cache=False)
        summary = evolve_dataset(seeds, method="Rewrite the instruction into a harder one.", out_path=tmp_path / "o.jsonl",
                                 evol_lm=lm, with_response=False, num_threads=64, progress=False)
        stats = server.stats()
    gate = lm.engine.gate.stats()
    assert summary.complete and summary.rows == len(seeds)  # slowed down, nothing lost with DSPy's 3 retries
    assert gate.cuts >= 1 and gate.lowest < 8 and gate.resent >= 1, gate
    # Without back-pressure 64 threads get several 429s per answer (benchmarks/evolve_throughput.py: about 6);
    # here the gate converges in a few halvings, at most one per answer even on a loaded machine.
    assert stats["faults"].get("rate_limit", 0) <= len(seeds), stats


def _replies(*replies: object):
    """An attempt that raises or returns ``replies`` in turn."""
    queue = iter(replies)

    def attempt() -> object:
        reply = next(queue)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return attempt


def test_a_429_an_earlier_cut_answered_is_sent_again_and_one_at_the_floor_is_raised() -> None:
    gate = RateLimitGate(ceiling=8)
    early = gate.acquire()
    gate.release(gate.acquire(), rate_limited=True)  # the cut (2 in flight: down to 1): earlier requests are stale
    assert gate.stats().limit == 1
    assert gate.release(early, rate_limited=True)  # stale: answered by that cut
    attempt = _replies(RateLimitError("slow down"), "done")
    # The call below starts in the current window with one request allowed: its 429 cuts nothing, so it is raised
    # for DSPy to retry (with the Retry-After as its delay).
    with pytest.raises(RateLimitError):
        gate.call(attempt)
    assert gate.call(attempt) == "done" and gate.stats().in_flight == 0


def test_the_429_that_lowers_the_limit_is_sent_again_instead_of_using_a_retry() -> None:
    # The limit saws between one and two requests at a server's rate: each cut is the gate's answer, not an error,
    # so no call runs out of DSPy's retries however many cuts it meets (CI once lost a seed that met four).
    gate = RateLimitGate(ceiling=2)
    for _ in range(6):
        # The 429 cuts the limit from 2 to 1, the resend succeeds, and the success grows it back to 2.
        assert gate.call(_replies(RateLimitError("slow down"), "done")) == "done"
        assert gate.stats().limit == 2
    stats = gate.stats()
    assert stats.cuts == 6 and stats.resent == 6 and stats.in_flight == 0
