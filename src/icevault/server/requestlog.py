"""One log line per request, in place of aiohttp's access log.

Each line carries what an operator searches by: the request id the client was given
(``x-amzn-RequestId``), account, principal, operation, vault, status, Glacier error code,
bytes in and out, and duration, as the record's fields (see :mod:`icevault.server.logformat`
for how they are written). Credentials and signatures are
never among them (and every line still passes the redacting filter).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from icevault.server.errors import ERROR_KEY

log = logging.getLogger("icevault.access")

REQUEST_ID_KEY = "icevault.request_id"
OPERATION_KEY = "icevault.operation"  # set by dispatch once the request is routed
ACCOUNT_KEY = "icevault.account"
PRINCIPAL_KEY = "icevault.principal"
VAULT_KEY = "icevault.vault"
QUIET_PATHS = ("/metrics", "/health/")  # scraped and probed every few seconds


def request_id(request: web.Request) -> str:
    """The id of this request (made on first use), sent as ``x-amzn-RequestId``."""
    found = request.get(REQUEST_ID_KEY)
    if found is None:
        found = request[REQUEST_ID_KEY] = os.urandom(16).hex()
    return str(found)


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    request_id(request)
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        return response
    finally:
        if not request.path.startswith(QUIET_PATHS):
            _log(request, response, time.monotonic() - started)


def _log(request: web.Request, response: web.StreamResponse | None, duration: float) -> None:
    error = request.get(ERROR_KEY)
    fields: dict[str, Any] = {
        "event": "request",
        "request_id": request_id(request),
        "method": request.method,
        "operation": request.get(OPERATION_KEY),
        "account": request.get(ACCOUNT_KEY),
        "principal": request.get(PRINCIPAL_KEY),
        "vault": request.get(VAULT_KEY),
        "status": "aborted" if response is None else response.status,
        "error_code": None if error is None else error.code,
        "bytes_in": request.content_length or 0,
        "bytes_out": 0 if response is None else (response.content_length or 0),
        "duration_ms": round(duration * 1000, 3),
        "remote": request.remote,
    }
    log.info("request", extra=fields)
