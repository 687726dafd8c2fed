"""The embedded SmolLM2 model through LlamaCppEngine: text, tokens, JSON, threads, long prompts."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dspy
import pytest
from dspy.lm15 import Config, ContextLengthError, Message, Request, Response, UnsupportedFeatureError
from dspy.utils.exceptions import ContextWindowExceededError

from autoevol_dspy.lm import make_lm
from autoevol_dspy.lm.local_engine import LlamaCppEngine, PromptTooLongError, request_to_chat

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
