"""DSPy's native HTTP engine for LM servers, holding the API key itself and retrying malformed replies.

``make_lm`` builds server LMs on :class:`ServerEngine` instead of putting ``api_key`` and
``api_base`` into ``dspy.LM``'s kwargs, for two reasons:

* the key stays out of everything that copies an LM's state: ``lm.kwargs``, ``repr``,
  ``dump_state`` and any pickle (``program.save(..., save_program=True)``). A pickled engine
  records the name of the environment variable the key came from and reads it again
  when loaded; an explicit key is never written anywhere;
* a 200 reply whose body is empty or not JSON (a proxy's error page, a cut connection)
  becomes lm15's ``ServerError``, which DSPy retries like a 5xx with its ``num_retries``,
  instead of a provider error that ends the call at once.

The requests themselves go through DSPy's own ``LM15Engine`` with the same routing as
``dspy.LM(model, api_base=..., api_key=..., timeout=...)``, with three differences for
throughput: the connection pool holds ``max_connections`` (default 512, lm15's is 100) so
hundreds of threads each keep a request in flight; an ``api_base``'s proxy (from the
environment, as every HTTP client reads it) is resolved once per engine rather than by
scanning the environment on every request; and every attempt passes a shared
:class:`~autoevol_dspy.lm.backpressure.RateLimitGate`, which slows all threads down on 429.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from dspy.clients.engines.lm15_engine import AsyncLM15Engine, LM15Engine, timeouts_for
from dspy.lm15 import (
    ProviderError,
    Request,
    Response,
    RouterConfig,
    ServerError,
)

from autoevol_dspy.lm.backpressure import RateLimitGate, gate_for
from autoevol_dspy.lm.dspy_internals import StdlibTransport, declared_providers

__all__ = ["DEFAULT_MAX_CONNECTIONS", "PLACEHOLDER_KEY", "AsyncServerEngine", "ServerEngine", "routes_natively"]

logger = logging.getLogger(__name__)

_MALFORMED = "is not JSON"
#: Sent to a server (``api_base``) when no key is configured: llama.cpp and a vLLM without --api-key need none.
PLACEHOLDER_KEY = "not-needed"
#: Connections one engine may hold open to its server: more than any thread count a run asks for.
DEFAULT_MAX_CONNECTIONS = 512


def _malformed_reply(exc: ProviderError) -> bool:
    """A 2xx reply that could not be read: the server answered, but not with a completion."""
    return type(exc) is ProviderError and exc.status is not None and 200 <= exc.status < 300 and (
        _MALFORMED in (exc.message or ""))


def _as_server_error(exc: ProviderError) -> ServerError:
    error = ServerError(f"malformed reply, retried like a 5xx: {exc.message}", provider=exc.provider,
                        status=exc.status, request_id=exc.request_id)
    return error


class _Settings:
    """Where and how to reach the server; the key is read from ``key_env`` unless given."""

    def __init__(self, model: str, *, api_base: str | None, key_env: str | None, api_key: str | None,
                 timeout: float | None, max_connections: int | None = None) -> None:
        self.model = model
        self.api_base = api_base
        self.key_env = key_env
        self._explicit_key = api_key
        self.timeout = timeout
        self.max_connections = max_connections or DEFAULT_MAX_CONNECTIONS

    def key(self) -> str | None:
        """The explicit key, else the variable's value, else a placeholder for a keyless server."""
        if self._explicit_key:
            return self._explicit_key
        from_env = os.environ.get(self.key_env) if self.key_env else None
        return from_env or (PLACEHOLDER_KEY if self.api_base else None)

    def router_config(self, provider: str, *, transport: StdlibTransport | None = None) -> RouterConfig:
        """The routing of one engine; with ``transport`` (sync engines) its connections are that transport's."""
        key = self.key()
        sizing: dict[str, Any] = ({"transport": transport} if transport is not None else
                                  {"timeouts": timeouts_for(self.timeout), "max_connections": self.max_connections})
        return RouterConfig(api_keys={provider: key} if key else None,
                            base_urls={provider: self.api_base} if self.api_base else None,
                            providers=declared_providers(), **sizing)

    def transport(self) -> StdlibTransport:
        """A connection pool of ``max_connections`` with the timeouts, its proxy resolved now for ``api_base``."""
        sizing = RouterConfig(timeouts=timeouts_for(self.timeout), max_connections=self.max_connections)
        return StdlibTransport(**sizing.transport_kwargs(), **_proxy_settings(self.api_base))

    def gate(self) -> RateLimitGate:
        """The back-pressure gate of this server, shared with every engine that talks to it."""
        return gate_for(self.api_base or self.model, ceiling=self.max_connections)

    def dump_state(self) -> dict[str, Any]:
        """Everything but the key: an explicit key is not recorded at all, an env key by its variable's name."""
        state = {"model": self.model, "api_base": self.api_base, "key_env": self.key_env, "timeout": self.timeout}
        if self.max_connections != DEFAULT_MAX_CONNECTIONS:
            state["max_connections"] = self.max_connections
        return state


def _proxy_settings(api_base: str | None) -> dict[str, Any]:
    """The proxy for ``api_base`` as the environment names it (``*_PROXY`` minus ``NO_PROXY``), read once.

    Without an ``api_base`` (a provider's own API) the transport keeps reading the environment per request.
    """
    if not api_base:
        return {}
    target = urlsplit(api_base)
    proxies = getproxies()
    proxy = proxies.get(target.scheme) or proxies.get("all")
    try:
        bypass = bool(proxy) and bool(proxy_bypass(target.hostname or ""))
    except Exception:  # noqa: BLE001 - a platform lookup quirk bypasses nothing, as in urllib
        bypass = False
    return {"proxy": proxy, "trust_env": False} if proxy and not bypass else {"trust_env": False}


def routes_natively(model: str) -> bool:
    """Whether DSPy's own router (lm15) has a door for ``model``'s provider (others go through LiteLLM)."""
    from dspy.lm15 import UnknownModelError

    try:
        _provider(model)
    except UnknownModelError:
        return False
    return True


def _provider(model: str) -> str:
    return LM15Engine(RouterConfig(env={}, providers=declared_providers())).resolve(model).provider


class _Shared:
    """Behaviour common to both engines: capability hints, safe copies and pickles."""

    supports_function_calling = False
    supports_reasoning = False
    supports_response_schema = False
    supported_params: frozenset[str] = frozenset()

    _settings: _Settings

    def _describe(self) -> None:
        import dspy
        from dspy.clients.capabilities import capabilities

        found = capabilities(dspy.LM(self._settings.model, api_base=self._settings.api_base or None))
        self.supports_function_calling = found.function_calling
        self.supports_reasoning = found.reasoning
        self.supports_response_schema = found.response_schema
        self.supported_params = found.params

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def api_base(self) -> str | None:
        return self._settings.api_base

    @property
    def timeout(self) -> float | None:
        return self._settings.timeout

    def dump_state(self) -> dict[str, Any]:
        return self._settings.dump_state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> "_Shared":
        return cls(**state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, api_base={self.api_base!r}, timeout={self.timeout!r})"

    # A connection pool is a shared resource: copies of a program keep using it.
    def __copy__(self) -> "_Shared":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "_Shared":
        return self

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return (type(self).load_state, (self.dump_state(),))


class ServerEngine(_Shared):
    """One synchronous native attempt per call (DSPy owns retries); a malformed 200 becomes retryable.

    Every attempt passes the server's :class:`RateLimitGate`, which slows all threads down on a 429
    and sends again a request whose 429 an earlier cut already answered.
    """

    def __init__(self, model: str, *, api_base: str | None = None, key_env: str | None = None,
                 api_key: str | None = None, timeout: float | None = None, max_connections: int | None = None) -> None:
        self._settings = _Settings(model, api_base=api_base, key_env=key_env, api_key=api_key, timeout=timeout,
                                   max_connections=max_connections)
        self._transport = self._settings.transport()
        self._inner = LM15Engine(self._settings.router_config(_provider(model), transport=self._transport))
        self.gate = self._settings.gate()
        self._describe()

    def complete(self, request: Request) -> Response:
        return self.gate.call(lambda: self._attempt(request))

    def _attempt(self, request: Request) -> Response:
        try:
            return self._inner.complete(request)
        except ProviderError as exc:
            if _malformed_reply(exc):
                raise _as_server_error(exc) from exc
            raise

    def stream(self, request: Request) -> Iterator[Any]:
        token = self.gate.acquire()
        error: BaseException | None = None
        try:
            yield from self._inner.stream(request)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.gate.settle(token, error)

    def close(self) -> None:
        self._inner.close()
        self._transport.close()


class AsyncServerEngine(_Shared):
    """The async counterpart; one native engine per call, because lm15's async pools belong to one event loop."""

    def __init__(self, model: str, *, api_base: str | None = None, key_env: str | None = None,
                 api_key: str | None = None, timeout: float | None = None, max_connections: int | None = None) -> None:
        self._settings = _Settings(model, api_base=api_base, key_env=key_env, api_key=api_key, timeout=timeout,
                                   max_connections=max_connections)
        self._provider = _provider(model)
        self.gate = self._settings.gate()
        self._describe()

    async def complete(self, request: Request) -> Response:
        return await self.gate.acall(lambda: self._attempt(request))

    async def _attempt(self, request: Request) -> Response:
        inner = AsyncLM15Engine(self._settings.router_config(self._provider))
        try:
            return await inner.complete(request)
        except ProviderError as exc:
            if _malformed_reply(exc):
                raise _as_server_error(exc) from exc
            raise
        finally:
            await inner.aclose()

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        token = await self.gate.acquire_async()
        error: BaseException | None = None
        inner = AsyncLM15Engine(self._settings.router_config(self._provider))
        try:
            async for event in inner.stream(request):
                yield event
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.gate.settle(token, error)
            await inner.aclose()

    async def aclose(self) -> None:
        """Nothing held between calls."""
