"""The one place where errors become HTTP responses.

A :class:`~icevault.core.errors.GlacierError` becomes Glacier's JSON body ``{code, message,
type}`` with its status and ``x-amzn-ErrorType``; anything unexpected is logged with its
traceback and answered as a 500 ServiceUnavailableException, never shown to the client.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from icevault.core.errors import (
    GlacierError,
    InvalidParameterValueError,
    RequestTimeoutError,
    ServiceUnavailableError,
)

log = logging.getLogger("icevault.server")


def error_response(error: GlacierError) -> web.Response:
    body = {"code": error.code, "message": error.message, "type": error.type}
    headers = {"x-amzn-ErrorType": error.code, **error.headers}
    return web.Response(
        body=json.dumps(body).encode(),
        status=error.status,
        content_type="application/json",
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException) -> GlacierError:
    if exc.status == 408:
        return RequestTimeoutError(exc.text or "The request timed out")
    if 400 <= exc.status < 500:
        return InvalidParameterValueError(exc.text or exc.reason)
    return ServiceUnavailableError("The service is unavailable; try again")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GlacierError as error:
        if error.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, error.code, error.message)
        else:
            log.info("%s %s -> %s: %s", request.method, request.path, error.code, error.message)
        return error_response(error)
    except web.HTTPException as exc:
        return error_response(_from_http_exception(exc))
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:
        log.exception("internal error in %s %s", request.method, request.path)
        return error_response(
            ServiceUnavailableError("The service encountered an internal error; try again")
        )
