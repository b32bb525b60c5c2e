"""One request after routing: who is calling, on what, and how to run blocking work."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from icevault.core.faults import Fault
from icevault.core.models import VaultRef
from icevault.diskio import BLOCK
from icevault.server.bodypump import BlockSink, BodyPumps
from icevault.server.routes import Route
from icevault.server.transfer import StepClock, TransferLimits
from icevault.service.glacier import Glacier

T = TypeVar("T")


def _write_pieces(sink: BlockSink, pieces: list[bytes]) -> None:
    for piece in pieces:
        sink.write(piece)


@dataclass(slots=True)
class Call:
    request: web.Request
    route: Route
    account: str
    glacier: Glacier
    executor: Executor
    limits: TransferLimits
    wake_jobs: Callable[[], None]
    body: bytes = b""  # a JSON operation's body, read and checked at the edge
    tree_hash_binds_body: bool = False  # see authn.Caller
    body_fault: Fault | None = None  # --test-controls: corrupt or cut this response's body
    pumps: BodyPumps | None = None  # large bodies read straight from the socket

    @property
    def vault(self) -> VaultRef:
        assert self.route.vault is not None
        return VaultRef(self.account, self.route.vault)

    @property
    def region(self) -> str:
        return self.glacier.ctx.region

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(fn, *args, **kwargs))

    async def lookup(self, fn: Callable[..., T], *args: Any, opens_blob: bool = False) -> T:
        """Run a lookup of a few indexed reads (and, with ``opens_blob``, the opening of a
        blob range) where it costs least.

        The one rule for what may run on the event loop: work that touches only embedded,
        local storage (SQLite pages, a local file's open) takes microseconds, less than a
        hop to a worker thread; anything that waits on a network (PostgreSQL, an object
        store) goes to a worker thread, so the loop never waits on it."""
        if self.glacier.lookups_are_local(opens_blob=opens_blob):
            return fn(*args)
        return await self.run(fn, *args)

    async def stream_body(self, sink: BlockSink) -> None:
        """Feed the request body to ``sink``: a large one from a thread that reads the socket
        itself (see :mod:`~icevault.server.bodypump`), any other in blocks from aiohttp's
        stream, the next block read while the previous one is hashed and written in a worker
        thread."""
        if self.pumps is not None and await self.pumps.pump(self.request, sink):
            return
        content = self.request.content
        # The caller is authenticated by now: its body may be read ahead in larger pieces
        # than an unknown peer's (the listener's default), for fewer reading pauses per GiB.
        content.set_read_chunk_size(BLOCK)
        clock = StepClock(self.limits, "request body")
        pending: asyncio.Future[None] | None = None
        pieces: list[bytes] = []
        gathered = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(clock.remaining_s()):
                        # One received piece at a time: readany() would join (copy) all that
                        # is buffered.
                        data, chunk_end = await content.readchunk()
                except TimeoutError:
                    raise clock.too_slow() from None
                if not data and chunk_end:
                    continue  # the end of a transfer-encoding chunk, not of the body
                clock.advance(len(data))
                if data:
                    pieces.append(data)
                    gathered += len(data)
                if gathered >= BLOCK or (not data and pieces):
                    if pending is not None:
                        await pending
                    # The pieces go as they are: joining them would copy every byte once more.
                    batch, pieces, gathered = pieces, [], 0
                    pending = loop.run_in_executor(self.executor, _write_pieces, sink, batch)
                if not data:
                    break
            if pending is not None:
                await pending
        finally:
            # Never let the caller abort the sink while a write still runs in a thread.
            if pending is not None and not pending.done():
                await asyncio.wait([pending])
