"""The admin API: ``icevault admin``'s operations over HTTP, SigV4-signed like any Glacier
request.

``POST /_icevault/admin/{Action}`` with a JSON object of parameters (see
:data:`icevault.service.admin.PARAMETERS`); the answer is the JSON the command prints (204
when it prints nothing), or a Glacier error. Who may do what is decided by the service
(:class:`icevault.service.admin.AdminService`), with the same access service as the Glacier
API; the body is read by the one body reader, as part of authentication.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

from aiohttp import web

from icevault.server import requestlog
from icevault.server.authn import authenticate
from icevault.server.runtime import RUNTIME
from icevault.server.wire import read_json_object
from icevault.service.admin import ACTIONS

PREFIX = "/_icevault/admin"


async def handle(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    action = request.match_info["action"]
    # Logged and counted by its name only when it is one: the path is the caller's text.
    request[requestlog.OPERATION_KEY] = (
        f"icevault:{action}" if action in ACTIONS else "icevault:unknown")
    caller = await authenticate(runtime, request, streamed=False)
    principal = caller.principal
    request[requestlog.ACCOUNT_KEY] = principal.account_id
    request[requestlog.PRINCIPAL_KEY] = principal.arn
    params: dict[str, Any] = read_json_object(caller.body) if caller.body else {}
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(runtime.executor, partial(
        runtime.glacier.admin.call, principal, action, params, request.remote, request.secure))
    if result is None:
        return web.Response(status=204)
    return web.Response(body=json.dumps(result).encode(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post(PREFIX + "/{action}", handle)
