"""The private parts of libraries the server relies on (server/aiohttp_seams.py) are still
where they were: a release that moves one fails here, by name, before a user meets it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from icevault.server.aiohttp_seams import AiohttpChangedError, wrap_request_handler


def test_the_connection_handler_still_hands_requests_to_one_function() -> None:
    seen: list[Any] = []

    def wrap(inner: Any) -> Any:
        seen.append(inner)
        return inner

    async def make_connection() -> None:
        server = web.Server(lambda _request: None)  # type: ignore[arg-type, return-value]
        wrap_request_handler(RequestHandler(server, loop=asyncio.get_running_loop()), wrap)

    asyncio.run(make_connection())
    assert len(seen) == 1 and callable(seen[0])


def test_a_release_without_it_is_named() -> None:
    class Moved:
        pass

    with pytest.raises(AiohttpChangedError, match="_request_handler is gone"):
        wrap_request_handler(Moved(), lambda inner: inner)  # type: ignore[arg-type]
