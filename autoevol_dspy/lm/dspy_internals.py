"""The DSPy internals this package uses, in one place: each is checked by ``tests/test_dspy_internals.py``.

DSPy 3.4 has no public name for two things the server engine needs:

* :class:`StdlibTransport` (``dspy._vendor.lm15.transports``): the synchronous connection pool,
  built with our ``max_connections`` (hundreds of threads keep a request in flight) and a proxy
  resolved once per engine;
* :func:`declared_providers` (``dspy.lm15._definitions``): the provider declarations a
  ``RouterConfig`` routes with, the same ones ``dspy.LM`` uses.

Nothing else in the package imports a private DSPy name. A DSPy release that moves or
changes either fails that test before anything else; ``dspy-ai<3.5`` in ``pyproject.toml``
is for them, and lifting the pin starts with running that test against the new release.
"""

from __future__ import annotations

from dspy._vendor.lm15.transports import StdlibTransport

__all__ = ["StdlibTransport", "declared_providers"]


def declared_providers() -> tuple:
    """Every registered provider's declaration, for ``RouterConfig(providers=...)``."""
    from dspy.lm15 import _definitions, registered_providers

    return _definitions(registered_providers())
