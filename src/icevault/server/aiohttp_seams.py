"""Where the server depends on aiohttp beyond its documented API, in one place.

- :func:`wrap_request_handler`: aiohttp answers an ``Expect`` header it does not know in
  plain text before any middleware runs, from the connection handler's private
  ``_request_handler``; the server wraps that attribute so the refusal is Glacier's JSON.
- ``server/bodypump.py`` takes a large upload's socket over: ``transport.pause_reading``,
  ``get_extra_info("socket")`` and the body stream's ``read_nowait``/``total_bytes`` are
  public, but that aiohttp reads nothing more from a paused transport is behaviour, not
  API.

pyproject pins aiohttp to the minor versions tested (``>=3.9,<3.15``).
``tests/unit/test_library_seams.py`` fails with the attribute's name when a release moves
any of these, before a user meets it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class AiohttpChangedError(RuntimeError):
    """A private part of aiohttp the server relies on is not where it was."""


def wrap_request_handler(connection: RequestHandler, wrap: Callable[[Handler], Handler]) -> None:
    """Put ``wrap`` around the function ``connection`` hands each request to."""
    inner = getattr(connection, "_request_handler", None)
    if not callable(inner):
        raise AiohttpChangedError(
            "aiohttp.web_protocol.RequestHandler._request_handler is gone: "
            "icevault.server.aiohttp_seams needs updating for this aiohttp release")
    connection._request_handler = wrap(inner)
