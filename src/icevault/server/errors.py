"""The one place where errors become HTTP responses.

A :class:`~icevault.core.errors.GlacierError` becomes Glacier's JSON body ``{code, message,
type}`` with its status and ``x-amzn-ErrorType``; anything unexpected is logged with its
traceback and answered as a 500 ServiceUnavailableException, never shown to the client.
"""

from __future__ import annotations

import errno
import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from icevault.core.errors import (
    GlacierError,
    InvalidParameterValueError,
    RequestTimeoutError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    StorageUnavailableError,
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
    if exc.status == 404:
        return ResourceNotFoundError("No Glacier resource at this path")
    if 400 <= exc.status < 500:
        return InvalidParameterValueError(exc.text or exc.reason)
    return ServiceUnavailableError("The service is unavailable; try again")


def storage_error(exc: OSError) -> GlacierError | None:
    """The Glacier error for a storage failure a client can act on, if it is one."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageUnavailableError("The store is out of space; the request changed nothing")
    if exc.errno == errno.EROFS:
        return StorageUnavailableError("The store is read-only now; the request changed nothing")
    if exc.errno == errno.EFBIG:
        return InvalidParameterValueError(
            "The archive would be larger than this store's file system allows for one file "
            "(ext4: 16 TiB). Use an S3-compatible blob store (--blob-url) for larger archives."
        )
    return None


ERROR_KEY = "icevault.error"  # the GlacierError a request was answered with (for metrics)


def close_if_body_unread(request: web.Request, response: web.StreamResponse) -> None:
    """A body we refused is not read on: closing the connection frees what aiohttp
    buffered of it at once, instead of draining (or waiting for) the rest."""
    if not request.content.at_eof():
        response.force_close()
        # Let go of what is buffered now, not when the request object is collected.
        while request.content.exception() is None and request.content.read_nowait():
            pass


def _refusal(request: web.Request, error: GlacierError) -> web.Response:
    # Kept on the request for the log line and metrics, without its traceback: the frames
    # hold the request, and such a cycle (with whatever the request buffered) waits for
    # the cyclic collector, which large byte strings do not prompt.
    request[ERROR_KEY] = error.with_traceback(None)
    response = error_response(error)
    close_if_body_unread(request, response)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GlacierError as error:
        if error.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.path, error.code, error.message)
        else:
            log.info("%s %s -> %s: %s", request.method, request.path, error.code, error.message)
        return _refusal(request, error)
    except web.HTTPException as exc:
        return _refusal(request, _from_http_exception(exc))
    except (ConnectionResetError, ConnectionError):
        raise
    except OSError as exc:
        failure = storage_error(exc)
        if failure is None:
            log.exception("internal error in %s %s", request.method, request.path)
            failure = ServiceUnavailableError(
                "The service encountered an internal error; try again"
            )
        else:
            log.warning("%s %s -> %s: %s", request.method, request.path, failure.code,
                        failure.message)
        return _refusal(request, failure)
    except Exception:
        log.exception("internal error in %s %s", request.method, request.path)
        return error_response(
            ServiceUnavailableError("The service encountered an internal error; try again")
        )
