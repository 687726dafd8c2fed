"""The embedded SmolLM2 model through LlamaCppEngine: text, tokens, JSON, threads, long prompts, the pool."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
from dspy.lm15 import (
    Config,
    ContextLengthError,
    Message,
    Request,
    Response,
    UnsupportedFeatureError,
)
from dspy.utils.exceptions import ContextWindowExceededError

from autoevol_dspy.lm import local_engine, make_lm
from autoevol_dspy.lm.local_engine import (
    EMBEDDED_MODEL,
    LlamaCppEngine,
    PromptTooLongError,
    default_model_path,
    default_threads,
    pool_shape,
    request_to_chat,
)

embedded = pytest.mark.embedded

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


# -- request translation (no model needed) --------------------------------------------


def test_request_translation_maps_roles_settings_and_schema() -> None:
    request = Request(
        model="local/x", system="Be brief.",
        messages=(Message.user("Hi"), Message.assistant("Hello"), Message.developer("Answer in JSON.")),
        config=Config(max_tokens=12, temperature=0.6, top_p=0.95, stop=("###",), seed=7,
                      response_format={"type": "json_schema", "schema": CITY_SCHEMA}),
    )
    messages, kwargs = request_to_chat(request)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "system"]
    assert messages[0]["content"] == "Be brief."
    assert kwargs == {"max_tokens": 12, "temperature": 0.6, "top_p": 0.95, "seed": 7, "stop": ["###"],
                      "response_format": {"type": "json_object", "schema": CITY_SCHEMA}}
    plain = Request(model="local/x", messages=(Message.user("Hi"),),
                    config=Config(response_format={"type": "json_object"}))
    assert request_to_chat(plain)[1]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("config", [Config(logprobs=0), Config(service_tier="flex")])
def test_settings_a_local_model_cannot_honour_are_refused(config: Config) -> None:
    with pytest.raises(UnsupportedFeatureError):
        request_to_chat(Request(model="local/x", messages=(Message.user("Hi"),), config=config))


def test_engine_config_is_validated_without_loading() -> None:
    with pytest.raises(ValueError):
        LlamaCppEngine(model_path="x.gguf", n_ctx=0)
    with pytest.raises(ValueError):
        LlamaCppEngine(model_path="x.gguf", n_threads=0)
    error = PromptTooLongError(prompt_tokens=3000, n_ctx=2048, model="m.gguf")
    assert isinstance(error, ContextLengthError) and "\n" not in str(error)
    assert "3000" in str(error) and "2048" in str(error)


# -- the embedded model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lm() -> dspy.LM:
    pytest.importorskip("llama_cpp")
    return make_lm("local", temperature=0.0, max_tokens=32, cache=False)


@pytest.fixture(scope="module")
def engine(lm: dspy.LM) -> LlamaCppEngine:
    return lm.engine


@embedded
def test_generates_text_and_reports_usage(lm: dspy.LM) -> None:
    outputs = lm("Name one colour of the sky.")
    assert len(outputs) == 1 and isinstance(outputs[0], str) and outputs[0].strip()
    usage = lm.history[-1]["usage"]
    assert usage["prompt_tokens"] > 5
    assert 0 < usage["completion_tokens"] <= 32
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@embedded
def test_prompt_token_count_matches_llama_cpp(lm: dspy.LM, engine: LlamaCppEngine) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2 + 2?"}]
    counted = engine.count_prompt_tokens(messages)
    lm(messages=messages)
    assert lm.history[-1]["usage"]["prompt_tokens"] == counted
    assert engine.count_tokens("hello world") >= 2


@embedded
def test_predict_runs_on_the_embedded_model(lm: dspy.LM) -> None:
    with dspy.context(lm=lm):
        prediction = dspy.Predict("question -> answer")(question="What is the capital of France?")
    assert isinstance(prediction.answer, str)


class CityFacts(dspy.Signature):
    """Answer with the city and its approximate population."""

    question: str = dspy.InputField()
    city: str = dspy.OutputField()
    population: int = dspy.OutputField()


@embedded
def test_json_adapter_gets_schema_constrained_json(lm: dspy.LM) -> None:
    json_lm = lm.copy(max_tokens=64)
    with dspy.context(lm=json_lm, adapter=dspy.JSONAdapter()):
        prediction = dspy.Predict(CityFacts)(question="Which is the largest city in Japan?")
    assert isinstance(prediction.city, str)
    assert isinstance(prediction.population, int)
    # The raw completion itself is the schema's JSON (grammar-constrained), not text to repair.
    parsed = json.loads(json_lm.history[-1]["outputs"][0])
    assert set(parsed) == {"city", "population"}


@embedded
def test_direct_request_with_schema_returns_matching_json(lm: dspy.LM, engine: LlamaCppEngine) -> None:
    request = Request(
        model=lm.model,
        messages=(Message.user("Give a city in Italy and its population as JSON."),),
        config=Config(max_tokens=64, temperature=0.0,
                      response_format={"type": "json_schema", "name": "city", "schema": CITY_SCHEMA}),
    )
    for response in (engine.complete(request), lm(request)):
        assert isinstance(response, Response)
        data = json.loads(response.text)
        assert set(data) == {"city", "population"}
        assert isinstance(data["city"], str) and isinstance(data["population"], int)
        assert response.usage.output_tokens and response.usage.input_tokens


@embedded
def test_json_object_without_schema_parses(engine: LlamaCppEngine, lm: dspy.LM) -> None:
    request = Request(model=lm.model, messages=(Message.user("Describe a cat as a JSON object."),),
                      config=Config(max_tokens=48, temperature=0.0, response_format={"type": "json_object"}))
    response = engine.complete(request)
    if response.finish_reason == "stop":
        assert isinstance(json.loads(response.text), dict)
    else:  # cut at max_tokens: still JSON-shaped from the first character
        assert response.text.lstrip().startswith("{")


@embedded
def test_four_threads_at_once_are_serialized(lm: dspy.LM, engine: LlamaCppEngine, monkeypatch) -> None:
    llama = engine.llama
    original = llama.create_chat_completion
    active = 0
    peak = 0
    guard = threading.Lock()

    def watched(*args, **kwargs):
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        try:
            return original(*args, **kwargs)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(llama, "create_chat_completion", watched)
    small = lm.copy(max_tokens=16)
    prompts = [f"Write the number {i} in words." for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(small, prompts))
    assert all(len(r) == 1 and isinstance(r[0], str) for r in results)
    assert peak == 1


@embedded
def test_overlong_prompt_raises_clear_non_retried_error(lm: dspy.LM, engine: LlamaCppEngine, monkeypatch) -> None:
    calls = []
    llama = engine.llama
    original = llama.create_chat_completion
    monkeypatch.setattr(llama, "create_chat_completion", lambda *a, **k: calls.append(1) or original(*a, **k))
    prompt = "apple " * (engine.n_ctx + 100)
    started = time.perf_counter()
    with pytest.raises(ContextWindowExceededError) as excinfo:
        lm(prompt)
    assert time.perf_counter() - started < 5  # no retry back-off
    message = str(excinfo.value)
    assert "\n" not in message
    assert f"context window of {engine.n_ctx}" in message and "tokens" in message
    assert isinstance(excinfo.value.__cause__, PromptTooLongError)
    assert excinfo.value.__cause__.prompt_tokens > engine.n_ctx
    assert calls == []  # refused before llama.cpp saw it

    request = Request(model=lm.model, messages=(Message.user(prompt),), config=Config(max_tokens=8))
    with pytest.raises(ContextLengthError):
        engine.complete(request)


@embedded
def test_stream_and_async(lm: dspy.LM, engine: LlamaCppEngine) -> None:
    request = Request(model=lm.model, messages=(Message.user("Say hi."),), config=Config(max_tokens=8, temperature=0.0))
    kinds = [event.type for event in engine.stream(request)]
    assert kinds[0] == "start" and kinds[-1] == "end" and "delta" in kinds
    outputs = asyncio.run(lm.acall("Say hi."))
    assert isinstance(outputs[0], str)


# -- the pool of contexts --------------------------------------------------------------


def test_pool_is_sized_from_the_usable_cores(monkeypatch) -> None:
    monkeypatch.setattr(local_engine, "usable_cores", lambda: 2)
    assert pool_shape() == (2, 1)  # one single-thread context per core
    assert default_threads() == 1
    assert pool_shape(n_threads=2) == (1, 2)
    assert pool_shape(contexts=1) == (1, 2)
    assert default_threads(1) == 2
    assert pool_shape(contexts=3, n_threads=1) == (3, 1)
    engine = LlamaCppEngine(model_path="x.gguf")  # nothing loads before the first call
    assert (engine.pool_size, engine.context_threads, engine.loaded_contexts) == (2, 1, 0)
    monkeypatch.setattr(local_engine, "usable_cores", lambda: 32)
    assert pool_shape() == (local_engine.MAX_DEFAULT_CONTEXTS, 32 // local_engine.MAX_DEFAULT_CONTEXTS)
    monkeypatch.setattr(local_engine, "usable_cores", lambda: 1)
    assert pool_shape() == (1, 1)
    with pytest.raises(ValueError):
        LlamaCppEngine(model_path="x.gguf", contexts=0)


@pytest.fixture
def new_engine():
    """Dedicated engines on the embedded model (not the shared one), closed after the test."""
    pytest.importorskip("llama_cpp")
    made: list[LlamaCppEngine] = []

    def make(**settings) -> LlamaCppEngine:
        made.append(LlamaCppEngine(model_path=default_model_path(), **settings))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def _request(prompt: str, *, max_tokens: int = 12, system: str | None = None, schema: dict | None = None) -> Request:
    fmt = None if schema is None else {"type": "json_schema", "name": "city", "schema": schema}
    return Request(model="local/smollm2", system=system, messages=(Message.user(prompt),),
                   config=Config(max_tokens=max_tokens, temperature=0.0, response_format=fmt))


def _watch_calls(monkeypatch, *, wait_for: int = 1) -> dict:
    """Track generations per Llama; each waits (up to 30 s) until ``wait_for`` run at once or ``release`` is set."""
    from llama_cpp import Llama

    original = Llama.create_chat_completion
    seen = {"active": 0, "peak": 0, "per_llama": {}, "peak_per_llama": 0, "llamas": [], "messages": []}
    guard = threading.Lock()
    together = seen["release"] = threading.Event()

    def watched(self, *args, **kwargs):
        with guard:
            seen["active"] += 1
            seen["peak"] = max(seen["peak"], seen["active"])
            mine = seen["per_llama"][id(self)] = seen["per_llama"].get(id(self), 0) + 1
            seen["peak_per_llama"] = max(seen["peak_per_llama"], mine)
            seen["llamas"].append(self)
            seen["messages"].append(kwargs.get("messages"))
            if seen["active"] >= wait_for:
                together.set()
        together.wait(timeout=30)
        try:
            return original(self, *args, **kwargs)
        finally:
            with guard:
                seen["active"] -= 1
                seen["per_llama"][id(self)] -= 1

    monkeypatch.setattr(Llama, "create_chat_completion", watched)
    return seen


@embedded
def test_concurrent_calls_run_in_parallel_on_separate_contexts(new_engine, monkeypatch) -> None:
    engine = new_engine(contexts=2, n_threads=1)
    seen = _watch_calls(monkeypatch, wait_for=2)
    lm = dspy.LM("local/smollm2", engine=engine, cache=False, temperature=0.0, max_tokens=8)
    prompts = [f"Write the number {i} in words." for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lm, prompts))
    assert all(len(r) == 1 and isinstance(r[0], str) for r in results)
    assert seen["peak"] == 2  # two generations at once ...
    assert seen["peak_per_llama"] == 1  # ... never two on one context
    assert engine.loaded_contexts == 2


@embedded
def test_pool_outputs_match_one_context_at_temperature_zero(new_engine) -> None:
    requests = [_request("Name one colour of the sky."), _request("What is 2 + 2?", system="Be terse."),
                _request("Give a city in Italy and its population as JSON.", max_tokens=32, schema=CITY_SCHEMA),
                _request("Say hi.", max_tokens=6), _request("Name one colour of the sky.", system="Be terse.")]
    one = new_engine(contexts=1, n_threads=1)
    expected = [one.complete(request) for request in requests]
    pool = new_engine(contexts=3, n_threads=1)
    with ThreadPoolExecutor(max_workers=3) as executor:
        got = list(executor.map(pool.complete, requests * 2))
    assert [r.text for r in got] == [r.text for r in expected] * 2
    assert [r.usage.output_tokens for r in got] == [r.usage.output_tokens for r in expected] * 2
    assert set(json.loads(got[2].text)) == {"city", "population"}


@embedded
def test_concurrent_first_loads_run_one_at_a_time_and_keep_stdout(new_engine, monkeypatch) -> None:
    from llama_cpp import Llama

    # llama-cpp-python points fds 1 and 2 at /dev/null during a load: overlapping loads would
    # leave them there, so the engine loads one context at a time.
    original = Llama.__init__
    loads = {"active": 0, "peak": 0}
    guard = threading.Lock()

    def watched_init(self, *args, **kwargs):
        with guard:
            loads["active"] += 1
            loads["peak"] = max(loads["peak"], loads["active"])
        try:
            time.sleep(0.2)  # widen the window in which two loads could overlap
            original(self, *args, **kwargs)
        finally:
            with guard:
                loads["active"] -= 1

    def where(fd: int) -> tuple[int, int]:
        status = os.fstat(fd)
        return status.st_dev, status.st_ino

    monkeypatch.setattr(Llama, "__init__", watched_init)
    before = (where(1), where(2))
    engine = new_engine(contexts=2, n_threads=1)
    with ThreadPoolExecutor(max_workers=2) as pool:  # both contexts load on these first calls
        list(pool.map(engine.complete, [_request("Say hi.", max_tokens=2)] * 2))
    assert engine.loaded_contexts == 2 and loads["peak"] == 1
    assert (where(1), where(2)) == before


@embedded
def test_calls_route_to_the_context_that_read_the_same_prefix(new_engine, monkeypatch) -> None:
    systems = ("You rewrite instructions so that they are harder. " * 8, "You answer questions about science. " * 8)
    engine = new_engine(contexts=2, n_threads=1)
    seen = _watch_calls(monkeypatch, wait_for=2)
    with ThreadPoolExecutor(max_workers=2) as pool:  # one system prompt per context
        list(pool.map(engine.complete, [_request("Question one?", max_tokens=2, system=s) for s in systems]))
    by_system = {id(llama): messages[0]["content"] for llama, messages in zip(seen["llamas"], seen["messages"])}
    assert sorted(by_system.values()) == sorted(systems)
    for system in systems * 2 + systems[::-1]:
        engine.complete(_request("Another question?", max_tokens=2, system=system))
        assert by_system[id(seen["llamas"][-1])] == system


@embedded
def test_close_frees_idle_contexts_now_and_busy_ones_after_their_call(new_engine, monkeypatch) -> None:
    engine = new_engine(contexts=1, n_threads=1)
    assert engine.complete(_request("Say hi.", max_tokens=2)).text is not None
    engine.close()
    assert engine.loaded_contexts == 0
    seen = _watch_calls(monkeypatch, wait_for=2)  # holds the next call until the test releases it
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(engine.complete, _request("Say hi.", max_tokens=2))
        while not seen["llamas"]:
            time.sleep(0.01)
        engine.close()  # does not wait for the call
        seen["release"].set()
        assert isinstance(busy.result(timeout=60).text, str)
    assert seen["llamas"][0]._model.model is None  # freed by the call that held it
    assert engine.loaded_contexts == 0
    assert isinstance(engine.complete(_request("Say hi.", max_tokens=2)).text, str)  # loads again
    assert engine.loaded_contexts == 1
    local_engine._close_loaded()  # the exit hook frees every engine's contexts
    assert engine.loaded_contexts == 0


@embedded
def test_copies_and_pickles_reuse_the_shared_pool(lm: dspy.LM, engine: LlamaCppEngine) -> None:
    assert copy.deepcopy(engine) is engine and copy.copy(engine) is engine
    assert pickle.loads(pickle.dumps(engine)) is engine
    copied = copy.deepcopy(lm)
    assert copied.engine is engine and copied._async_engine_spec.engine is engine
    state = engine.dump_state()
    assert state["model_path"] == EMBEDDED_MODEL
    assert state["contexts"] is None and state["n_threads"] is None  # sized on the loading machine
    assert LlamaCppEngine.load_state(json.loads(json.dumps(state))) is engine
    with ThreadPoolExecutor(max_workers=2) as pool:  # copies share the pool's contexts
        list(pool.map(lambda m: m("Say hi."), [lm.copy(max_tokens=4), copied.copy(max_tokens=4)]))
    assert 1 <= engine.loaded_contexts <= engine.pool_size


@embedded
def test_the_same_request_twice_on_one_context_gets_the_same_reply(new_engine) -> None:
    # Reusing the whole prompt's KV cache re-reads only its last token, whose rounding differs on some CPUs:
    # without a full read this request got "Cirobasio" then "Cirolabio" at temperature 0 on an x86 machine.
    request = _request("Give a city in Italy and its population as JSON.", max_tokens=32, schema=CITY_SCHEMA)
    engine = new_engine(contexts=1, n_threads=1)
    first = engine.complete(request).text
    assert [engine.complete(request).text for _ in range(2)] == [first, first]
