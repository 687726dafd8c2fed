"""The DSPy internals this package uses, in one place: each is checked by ``tests/test_dspy_internals.py``.

DSPy 3.4 has no public name for three things the package needs:

* :class:`StdlibTransport` (``dspy._vendor.lm15.transports``): the synchronous connection pool,
  built with our ``max_connections`` (hundreds of threads keep a request in flight) and a proxy
  resolved once per engine;
* :func:`declared_providers` (``dspy.lm15._definitions``): the provider declarations a
  ``RouterConfig`` routes with, the same ones ``dspy.LM`` uses;
* :func:`forget_cached_reply` (``dspy.clients.execution.prepare``, the cache's key and lock):
  taking one LM call's reply out of DSPy's cache, so a rerun asks a server again instead of
  replaying the garbage it answered (``lm/health.py``).

Nothing else in the package imports a private DSPy name. A DSPy release that moves or
changes any of them fails that test before anything else; ``dspy-ai<3.5`` in ``pyproject.toml``
is for them, and lifting the pin starts with running that test against the new release.
"""

from __future__ import annotations

from dspy._vendor.lm15.transports import StdlibTransport

__all__ = ["StdlibTransport", "declared_providers", "forget_cached_reply"]


def declared_providers() -> tuple:
    """Every registered provider's declaration, for ``RouterConfig(providers=...)``."""
    from dspy.lm15 import _definitions, registered_providers

    return _definitions(registered_providers())


def forget_cached_reply(lm: object, inputs: dict) -> bool:
    """Take out of DSPy's cache (memory and disk) the reply to the call ``lm(**inputs)`` (the arguments an LM
    callback's ``on_lm_start`` sees: ``prompt``, ``messages``, ``kwargs``); whether the LM caches at all."""
    import dspy
    from dspy.clients.execution import IGNORED_CACHE_KEYS, prepare

    call = prepare(lm, inputs.get("prompt"), inputs.get("messages"), inputs.get("kwargs") or {})
    if not call.cache:
        return False
    cache = dspy.cache
    key = cache.cache_key(call.key(lm, False), IGNORED_CACHE_KEYS)
    if cache.enable_memory_cache:
        with cache._lock:
            cache.memory_cache.pop(key, None)
    if cache.enable_disk_cache:
        cache.disk_cache.delete(key)
    return True
