"""Back-pressure on 429: the gate halves what it lets through once per window, pauses on Retry-After, grows back;
against a rate-limited server, many threads slow down to its rate instead of hammering it."""

from __future__ import annotations

import asyncio
import threading
import time

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


def test_a_call_whose_429_another_threads_cut_answered_is_sent_again() -> None:
    gate = RateLimitGate(ceiling=8)
    calls = []

    def stale_then_ok() -> str:
        calls.append(1)
        if len(calls) == 1:
            gate.release(gate.acquire(), rate_limited=True)  # another thread's 429 cuts while this one is out
            raise RateLimitError("slow down")
        return "ok"

    assert gate.call(stale_then_ok) == "ok" and len(calls) == 2 and gate.stats().resent == 1
    assert gate.stats().in_flight == 0


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


def test_errors_other_than_429_neither_cut_nor_grow_the_limit_and_free_their_slot() -> None:
    gate = RateLimitGate(ceiling=8)
    gate.release(gate.acquire(), rate_limited=True)
    limit = gate.stats().limit

    def broken() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        gate.call(broken)
    assert gate.stats().limit == limit and gate.stats().in_flight == 0


def test_the_async_path_passes_the_same_gate() -> None:
    with StubServer(latency_s=1.5) as server:  # long enough for 150 requests to start on a loaded machine
        lm = make_lm("openai/stub", api_base=server.base_url, cache=False)

        async def many() -> list:
            return await asyncio.gather(*(lm.acall(f"hello {i}") for i in range(150)))

        replies = asyncio.run(many())
        assert len(replies) == 150 and server.stats()["peak_in_service"] > 100
    assert lm._async_engine_spec.gate is lm.engine.gate and lm.engine.gate.stats().in_flight == 0


@pytest.fixture(autouse=True)
def _no_dspy_lm(monkeypatch):
    monkeypatch.setattr(backpressure, "_gates", {})  # a port reused by a later server must not inherit a cut
    with dspy.context(lm=None):
        yield


def test_max_connections_bounds_the_requests_in_flight_and_survives_a_pickle(monkeypatch) -> None:
    import pickle

    with StubServer(latency_s=0.2) as server:
        lm = make_lm("openai/stub", api_base=server.base_url, cache=False, max_connections=6)
        threads = [threading.Thread(target=lm, args=(f"hello {i}",)) for i in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.stats()["peak_in_service"] == 6
    assert pickle.loads(pickle.dumps(lm.engine)).dump_state()["max_connections"] == 6
    with pytest.raises(LMSpecError, match="max_connections applies to LMs on the server engine"):
        make_lm("anthropic/claude-x", max_connections=4)
    keyed = make_lm("anthropic/claude-x", api_key="sk-test", max_connections=4)  # an explicit key: the server engine
    assert keyed.engine.dump_state()["max_connections"] == 4


def test_many_threads_through_one_gate_never_exceed_its_limit_and_leave_it_empty() -> None:
    import random

    gate, lock = RateLimitGate(ceiling=16), threading.Lock()
    state = {"now": 0, "peak": 0}

    def attempt(rng: random.Random) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(rng.random() / 2000)
        with lock:
            state["now"] -= 1
        if rng.random() < 0.05:
            raise RateLimitError("slow down", retry_after=0.001)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            try:
                gate.call(lambda: attempt(rng))
            except RateLimitError:
                pass

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck at the gate"
    stats = gate.stats()
    assert stats.in_flight == 0 and stats.cuts >= 1 and stats.resent >= 1 and 1 <= stats.limit <= 16
    assert state["peak"] <= 16


def test_settle_reads_how_a_request_ended_429_other_error_or_success() -> None:
    gate = RateLimitGate(ceiling=8)
    tokens = [gate.acquire() for _ in range(8)]
    assert gate.settle(tokens.pop(), RateLimitError("slow down", retry_after=None)) is True  # lowers the limit
    assert gate.stats().limit == 4 and gate.stats().cuts == 1
    assert gate.settle(tokens.pop(), RateLimitError("slow down")) is True  # sent before the cut: stale
    gate.settle(tokens.pop(), ValueError("broken reply"))  # neither cuts nor grows
    assert gate.stats().limit == 4 and gate.stats().cuts == 1
    for token in tokens:
        gate.settle(token)
    fresh = gate.acquire()
    gate.settle(fresh)  # a success of the current window grows the limit
    assert gate.stats().limit > 4 and gate.stats().in_flight == 0
    floor = RateLimitGate(ceiling=1)
    assert floor.settle(floor.acquire(), RateLimitError("slow down")) is False  # one request allowed: raised
