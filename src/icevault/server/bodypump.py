"""Large upload bodies read straight from the socket by a thread, past aiohttp's body path.

aiohttp hands a request body to its handler as one ``bytes`` object per socket read (at most
256 KiB): its HTTP parser copies every byte once more, and each piece costs tens of
microseconds of Python on the event loop (waking the reader, arming a timeout, handing the
piece on). For a signed UploadArchive that came to about 0.4 s of server CPU per GiB beside
the 0.8 s of the tree hash itself (``python -m bench``, "server CPU per GiB of SigV4
UploadArchive"). No asyncio HTTP server library lets a handler take the socket for a body of
known length, so this is done by hand, for the one case where it matters: an authenticated
upload body with a Content-Length of at least :data:`PUMP_MIN` bytes, on plain TCP.

1. What aiohttp has already read of the body is taken from the request's stream, and the
   transport stops reading the socket. Both happen without yielding to the event loop, so no
   byte can fall between them.
2. A thread of a small pool receives the rest with ``recv_into`` into one reused buffer, on a
   duplicate of the connection's descriptor, and feeds each block to the sink (hash and
   write) itself: a GiB costs one kernel copy, one hash and no Python per network read.
3. The body is then marked ended and the response closes the connection: aiohttp's parser
   never saw those bytes, so the connection cannot carry another request. Clients reconnect
   for their next request; a TCP connect is nothing beside a body of megabytes.

The pool is bounded. When all its threads are busy (with slow clients, say), a body takes the
event-loop path as before. :class:`~icevault.server.transfer.StepClock`'s stall rules hold on
both paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from aiohttp import web

from icevault.diskio import BLOCK
from icevault.server.transfer import StepClock, TransferLimits

PUMP_MIN = 8 * 1024 * 1024  # smaller bodies keep their keep-alive connection
# Bodies reach their sink in blocks this large, on either path: one tree-hash leaf, big
# enough that a hand-off costs nothing, small enough to keep memory flat.

_TAKEN = "icevault.body_socket_taken"


class ClientGoneError(ConnectionResetError):
    """The connection ended before the body did: there is nobody to answer."""


class BlockSink(Protocol):
    """Where a request body goes. ``write`` must not keep ``data`` after it returns: the
    caller reuses the buffer."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...


def close_after_response(request: web.Request, response: web.StreamResponse) -> None:
    """Make the response close its connection if the body was read past aiohttp's parser
    (called for every response before its headers go out)."""
    if request.get(_TAKEN):
        response.force_close()
        # aiohttp has chosen the Connection header by now; say it is closing.
        response.headers["Connection"] = "close"


class BodyPumps:
    """A bounded pool of threads, each reading one large request body from its socket."""

    def __init__(self, threads: int, limits: TransferLimits) -> None:
        self._threads = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="icevault-body")
            if threads > 0 else None
        )
        self._slots = threading.BoundedSemaphore(max(threads, 1))
        self._limits = limits

    def shutdown(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)

    async def pump(self, request: web.Request, sink: BlockSink) -> bool:
        """Feed the rest of ``request``'s body to ``sink`` from a pool thread. Returns False,
        having read nothing, when this body must take the event-loop path instead."""
        raw = self._socket_for(request)
        if raw is None or not self._slots.acquire(blocking=False):
            return False
        transport = request.transport
        assert transport is not None and request.content_length is not None
        content = request.content
        try:
            conn = socket.socket(fileno=os.dup(raw.fileno()))
        except OSError:
            self._slots.release()
            return False
        # From here to pause_reading nothing yields: no byte reaches the stream meanwhile.
        # Draining can make aiohttp resume a paused parser, which feeds the stream again at
        # once; the loop takes that too.
        buffered: list[bytes] = []
        while piece := content.read_nowait():
            buffered.append(piece)
        transport.pause_reading()
        remaining = request.content_length - content.total_bytes
        request[_TAKEN] = True
        assert self._threads is not None
        thread = asyncio.wrap_future(self._threads.submit(
            _receive, conn, buffered, remaining, sink, self._limits, self._slots))
        # aiohttp gives a request up (at shutdown, past its grace) by failing its body
        # stream. A read of that stream, which gets no data now, is how this side hears it.
        given_up: asyncio.Future[bytes] = asyncio.ensure_future(content.readany())
        try:
            first: list[asyncio.Future[Any]] = [thread, given_up]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not thread.done():
                await _stop(conn, thread)
                failure = given_up.exception()
                if failure is not None:
                    raise failure
            thread.result()
        except asyncio.CancelledError:
            await _stop(conn, thread)
            raise
        finally:
            given_up.cancel()
            if thread.done():
                conn.close()
            else:
                thread.add_done_callback(lambda _: conn.close())
            content.feed_eof()
        return True

    def _socket_for(self, request: web.Request) -> socket.socket | None:
        """The connection's socket, if this request's body may be read from it directly."""
        length = request.content_length
        transport = request.transport
        if (self._threads is None or length is None or length < PUMP_MIN
                or "Transfer-Encoding" in request.headers or transport is None
                or transport.is_closing() or transport.get_extra_info("sslcontext") is not None
                or request.content.is_eof() or request.content.exception() is not None):
            return None
        raw = transport.get_extra_info("socket")
        if raw is None or raw.type != socket.SOCK_STREAM:
            return None
        return raw  # type: ignore[no-any-return]  # asyncio's TransportSocket


async def _stop(conn: socket.socket, thread: asyncio.Future[None]) -> None:
    """End the thread's work early: its read of ``conn`` returns at once, finding the body cut
    short. Returns when the thread is done, for the sink must not be aborted while it is
    written; what the thread raised then is of no interest."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    await asyncio.wait([thread])
    if not thread.cancelled():
        thread.exception()  # retrieved, so asyncio does not log it as lost


def _receive(conn: socket.socket, buffered: Sequence[bytes], remaining: int, sink: BlockSink,
             limits: TransferLimits, slots: threading.BoundedSemaphore) -> None:
    """In a pool thread: feed what was buffered, then ``remaining`` bytes from ``conn``."""
    try:
        for piece in buffered:
            sink.write(piece)
        clock = StepClock(limits, "request body")
        view = memoryview(bytearray(min(BLOCK, remaining)))
        while remaining:
            want = min(len(view), remaining)
            filled = 0
            while filled < want:
                wait_s = clock.remaining_s()
                if wait_s <= 0:
                    raise clock.too_slow()
                conn.settimeout(wait_s)
                try:
                    count = conn.recv_into(view[filled:want])
                except TimeoutError:
                    raise clock.too_slow() from None
                except OSError as exc:
                    raise ClientGoneError(f"the connection failed mid-body: {exc}") from exc
                if count == 0:
                    raise ClientGoneError("the client closed the connection before the end of "
                                         "its body")
                clock.advance(count)
                filled += count
            sink.write(view[:want])
            remaining -= want
    finally:
        slots.release()
