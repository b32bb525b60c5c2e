"""The admin API: ``icevault admin``'s operations over HTTP, SigV4-signed like any Glacier
request.

``POST /_icevault/admin/{Action}`` with a JSON object of parameters (see
:data:`icevault.service.admin.PARAMETERS`); the answer is the JSON the command prints (204
when it prints nothing), or a Glacier error.

Who may do what:

* the server's operator, the root of its first account (whose key the server writes to
  ``<data-dir>/credentials`` at first start), may do everything, in any account, and is the
  only one who may create accounts or scrub or list the corrupt archives of the whole store;
* an account's root may do everything else within its own account;
* a user needs an identity policy that allows the action ``icevault:{Action}``;
* nobody acts in another account (but the operator).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from icevault.core.errors import AccessDeniedError
from icevault.core.identity import Principal
from icevault.server import requestlog
from icevault.server.authn import authenticate
from icevault.server.runtime import RUNTIME
from icevault.server.wire import read_json_object
from icevault.service.access import AccessRequest
from icevault.service.admin import ACTIONS, AdminOperations

PREFIX = "/_icevault/admin"
_WHOLE_STORE = frozenset({"CreateAccount"})
_KEY_ACTIONS = frozenset({"DisableAccessKey", "EnableAccessKey", "DeleteAccessKey"})


def _denied(principal: Principal, action: str, why: str) -> AccessDeniedError:
    return AccessDeniedError(
        f"User: {principal.arn} is not authorized to perform: icevault:{action} ({why})")


async def handle(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    action = request.match_info["action"]
    request[requestlog.OPERATION_KEY] = f"icevault:{action}"
    caller = await authenticate(runtime, request, streamed=False)
    principal = caller.principal
    request[requestlog.ACCOUNT_KEY] = principal.account_id
    request[requestlog.PRINCIPAL_KEY] = principal.arn
    params: dict[str, Any] = read_json_object(caller.body) if caller.body else {}
    glacier = runtime.glacier
    operations = AdminOperations(glacier.ctx, glacier.identity)
    loop = asyncio.get_running_loop()

    def authorize_and_run() -> dict[str, Any] | None:
        if action not in ACTIONS:
            return operations.run(action, params)  # refused there, with its name
        meta = glacier.ctx.meta
        operator = principal.is_root and principal.account_id == meta.default_account()
        if action in _WHOLE_STORE:
            if not operator:
                raise _denied(principal, action, "only the server's operator may")
            return operations.run(action, params)
        if action in _KEY_ACTIONS:
            key_id = params.get("key_id")
            account = operations.key_account(key_id) if isinstance(key_id, str) else None
        elif action == "ListCorrupt":
            account = params.get("account_id") or (None if operator else principal.account_id)
            params["account_id"] = account
        elif action == "Scrub":
            account = params.get("account_id") or principal.account_id
            if params.get("vault") is None:
                account = None  # the whole store
            params["account_id"] = account
        else:
            account = params.get("account_id") or principal.account_id
            params["account_id"] = account
        if operator:
            return operations.run(action, params)
        if account is None:
            raise _denied(principal, action, "only the server's operator may act on the "
                                             "whole store")
        if account != principal.account_id:
            raise _denied(principal, action, f"account {account} is not yours")
        glacier.access.authorize(AccessRequest(
            principal=principal, operation=f"icevault:{action}", account_id=account,
            vault=None, source_ip=request.remote, secure_transport=request.secure))
        return operations.run(action, params)

    result = await loop.run_in_executor(runtime.executor, authorize_and_run)
    if result is None:
        return web.Response(status=204)
    return web.Response(body=json.dumps(result).encode(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post(PREFIX + "/{action}", handle)

