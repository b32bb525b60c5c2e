"""The listening socket: connection limits, idle and header timeouts, and what a peer that
does not speak HTTP properly gets.

aiohttp's own ``run_app`` is not used because a server exposed to hostile peers needs three
things it does not offer: a cap on concurrent connections (past it, a new connection gets a
503 in Glacier's JSON and is closed, instead of the process running out of file
descriptors), Glacier's JSON error for malformed HTTP (aiohttp answers in plain text and logs
a traceback per request), and ``accept()`` failures logged once per interval (asyncio logs
each one with a traceback, thousands a second when descriptors run out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from icevault.core.errors import GlacierError, InvalidParameterValueError, ServiceUnavailableError
from icevault.server.aiohttp_seams import wrap_request_handler
from icevault.server.errors import error_response

log = logging.getLogger("icevault.server")

# aiohttp buffers up to twice this much of a request body before it stops reading the
# socket. Per connection, so it bounds what a peer that sends and stalls can make us hold.
READ_BUFFER = 64 * 1024
# Descriptors kept back from the connection cap for files, the database and the log.
RESERVED_FDS = 128
MAX_DEFAULT_CONNECTIONS = 10_000
HANDSHAKE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    host: str
    port: int
    idle_timeout_s: float  # idle keep-alive, and the time to send a request's headers
    max_connections: int
    ssl_context: ssl.SSLContext | None = None
    shutdown_timeout_s: float = 10.0


class IntervalLog:
    """Logs a recurring event at most once per interval, with how often it happened."""

    def __init__(self, message: str, interval_s: float = 10.0) -> None:
        self._message = message
        self._interval = interval_s
        self._last = -interval_s
        self._count = 0

    def note(self, detail: str = "") -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self._interval:
            log.warning("%s (%d times in the last %.0f s)%s", self._message, self._count,
                        min(now - self._last, self._interval), f": {detail}" if detail else "")
            self._last = now
            self._count = 0


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def default_max_connections(open_files: int) -> int:
    # A connection can hold two descriptors: its socket and the file it is sending.
    return max(16, min(MAX_DEFAULT_CONNECTIONS, (open_files - RESERVED_FDS) // 2))


def _request_id() -> str:
    return os.urandom(16).hex()


def _refusal_bytes(request_id: str) -> bytes:
    body = json.dumps({
        "code": "ServiceUnavailableException",
        "message": "The server is at its connection limit; retry shortly",
        "type": "Server",
    }).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        "x-amzn-ErrorType: ServiceUnavailableException\r\n"
        "Retry-After: 1\r\n"
        f"x-amzn-RequestId: {request_id}\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Refusal(asyncio.Protocol):
    """A connection past the cap: answered 503 at once and closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_refusal_bytes(_request_id()))
        transport.close()


def _refusing_unknown_expectations(
    handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
) -> Callable[[BaseRequest], Awaitable[web.StreamResponse]]:
    async def handle(request: BaseRequest) -> web.StreamResponse:
        expect = request.headers.get("Expect")
        if expect is not None and not (
            request.version == HttpVersion11 and expect.lower() == "100-continue"
        ):
            response = error_response(
                InvalidParameterValueError(f"Unsupported Expect header: {expect[:64]}")
            )
            response.headers["x-amzn-RequestId"] = _request_id()
            response.force_close()
            return response
        return await handler(request)

    return handle


class GlacierRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering malformed HTTP with Glacier's JSON error and
    counting itself against the connection cap."""

    def __init__(self, listener: Listener, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listener = listener
        # aiohttp answers an Expect header it does not know in plain text before any
        # middleware runs; refused here instead, in Glacier's JSON, whatever the path.
        wrap_request_handler(self, _refusing_unknown_expectations)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._listener.made(self)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._listener.lost()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already started")
        if isinstance(exc, ConnectionResetError):
            # A peer gone mid-request (a body pump's ClientGoneError, or aiohttp's
            # "Connection lost" from any body reader): what aiohttp does when it sees a peer
            # vanish, no answer and no traceback. The request's own log line says "aborted".
            raise ConnectionError(str(exc)) from exc
        error: GlacierError
        if 400 <= status < 500:
            text = (message or "Malformed HTTP request").splitlines()[0][:200]
            log.info("malformed HTTP from %s: %s", request.remote, text)
            error = InvalidParameterValueError(f"Malformed HTTP request: {text}")
        else:
            log.error("internal error before routing a request from %s", request.remote,
                      exc_info=exc)
            error = ServiceUnavailableError("The service encountered an internal error; try again")
        response = error_response(error)
        response.headers["x-amzn-RequestId"] = _request_id()
        response.force_close()
        return response


class Listener:
    """The protocol factory given to ``loop.create_server``."""

    def __init__(self, server: web.Server, settings: ListenerSettings,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._settings = settings
        self._loop = loop
        # Plain connections are counted from the moment they are accepted (so that a burst
        # of accepts cannot overshoot the cap) until connection_lost. A TLS connection is
        # counted only from connection_made: one whose handshake fails never gets
        # connection_made nor connection_lost, and counting it would let garbage handshakes
        # hold the cap; handshakes in flight end within HANDSHAKE_TIMEOUT_S instead.
        self.open = 0
        self._pending: dict[int, float] = {}
        self._refusals = IntervalLog(
            f"refusing connections: {settings.max_connections} are open (--max-connections)"
        )

    @property
    def counted(self) -> int:
        if self._pending:
            stale = time.monotonic() - HANDSHAKE_TIMEOUT_S - 1
            for key in [k for k, accepted in self._pending.items() if accepted < stale]:
                del self._pending[key]
        return self.open + len(self._pending)

    def made(self, handler: GlacierRequestHandler) -> None:
        self._pending.pop(id(handler), None)
        self.open += 1

    def lost(self) -> None:
        self.open -= 1

    def __call__(self) -> asyncio.Protocol:
        if self.counted >= self._settings.max_connections:
            self._refusals.note()
            return _Refusal()
        handler = GlacierRequestHandler(
            self,
            manager=self._server,
            loop=self._loop,
            keepalive_timeout=self._settings.idle_timeout_s,
            read_bufsize=READ_BUFFER,
            access_log=None,
            # A body the handler did not read to its end (refused: over its cap, unsigned,
            # not allowed) closes the connection after the answer, instead of aiohttp reading
            # and discarding up to 10 s more of whatever the peer sends.
            lingering_time=0,
        )
        if self._settings.ssl_context is None:
            key = id(handler)
            self._pending[key] = time.monotonic()
            weakref.finalize(handler, self._pending.pop, key, None)
        return handler


def _exception_handler(accept_failures: IntervalLog) -> Callable[
    [asyncio.AbstractEventLoop, dict[str, Any]], None
]:
    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            accept_failures.note(str(context.get("exception", "")))
            return
        loop.default_exception_handler(context)

    return handle


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound but not yet listening (clients are refused until the
    server is ready)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


async def serve(app: web.Application, settings: ListenerSettings, sock: socket.socket,
                ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
    """Serve ``app`` on ``sock`` (from :func:`bind`) until SIGTERM or SIGINT, then stop
    gracefully."""
    loop = asyncio.get_running_loop()
    lifecycle = logging.getLogger("icevault.lifecycle")  # always logged (see logformat)
    loop.set_exception_handler(_exception_handler(
        IntervalLog("accept() is failing for lack of file descriptors or memory")
    ))
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.shutdown_timeout_s)
    try:
        await runner.setup()
        assert runner.server is not None
        listener = Listener(runner.server, settings, loop)
        # Listening starts only now: a client that can connect finds the server ready.
        server = await loop.create_server(
            listener, sock=sock, ssl=settings.ssl_context, backlog=1024,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if settings.ssl_context else None,
        )
        stop = asyncio.Event()
        received: list[str] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, partial(_stop, stop, received,
                                                    signal.Signals(signum).name))
        if ready is not None:
            result = ready()
            if result is not None:
                await result
        await stop.wait()
        lifecycle.info("%s received: stopping (requests in flight have %g s to finish)",
                       received[0], settings.shutdown_timeout_s,
                       extra={"event": "stopping", "signal": received[0]})
        server.close()
    finally:
        await runner.cleanup()
    lifecycle.info("icevault stopped", extra={"event": "stopped"})


def _stop(stop: asyncio.Event, received: list[str], name: str) -> None:
    received.append(name)
    stop.set()
