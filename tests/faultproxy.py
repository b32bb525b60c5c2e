"""A test-only HTTP proxy in front of icevault that injects faults into GetJobOutput.

It forwards requests unchanged (Host included, so SigV4 signatures stay valid) and, for the
next job-output responses, applies queued faults: drop the connection mid-body, corrupt a
byte, strip the checksum header, answer 503 or throttle.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque

import aiohttp
from aiohttp import web

FAULTS = ("drop", "corrupt", "strip-checksum", "503", "throttle")


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = f"http://127.0.0.1:{upstream_port}"
        self.faults: deque[str] = deque()
        self.seen: list[tuple[str, str | None, str | None]] = []  # (fault, range, checksum)
        self.lock = threading.Lock()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def inject(self, *faults: str) -> None:
        for fault in faults:
            assert fault in FAULTS, fault
        with self.lock:
            self.faults.extend(faults)

    def always(self, fault: str, times: int = 1000) -> None:
        self.inject(*([fault] * times))

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        await self.runner.cleanup()
        await self.session.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        self.session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = self.runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()

    def _next_fault(self, request: web.Request) -> str | None:
        if request.method != "GET" or not request.path.endswith("/output"):
            return None
        with self.lock:
            return self.faults.popleft() if self.faults else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._next_fault(request)
        if fault in ("503", "throttle"):
            code, status = (
                ("ServiceUnavailableException", 503) if fault == "503" else ("ThrottlingException", 400)
            )
            with self.lock:
                self.seen.append((fault, request.headers.get("Range"), None))
            return web.Response(
                status=status, content_type="application/json",
                headers={"x-amzn-ErrorType": code},
                body=json.dumps({"code": code, "message": f"injected {fault}",
                                 "type": "Server" if status >= 500 else "Client"}).encode(),
            )
        # Content-Length goes along with a streamed body (Glacier needs it; no chunking).
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() != "content-length" or request.body_exists}
        async with self.session.request(
            # The body streams through (uploads can be large: never held whole).
            request.method, self.upstream + request.raw_path, headers=headers,
            data=request.content if request.body_exists else None,
        ) as upstream:
            out_headers = {
                k: v for k, v in upstream.headers.items()
                if k.lower() not in ("transfer-encoding", "content-length", "date", "server")
            }
            if fault == "strip-checksum":
                out_headers.pop("x-amz-sha256-tree-hash", None)
                out_headers.pop("X-Amz-Sha256-Tree-Hash", None)
            with self.lock:
                self.seen.append((fault or "none", request.headers.get("Range"),
                                  upstream.headers.get("x-amz-sha256-tree-hash")))
            response = web.StreamResponse(status=upstream.status, headers=out_headers)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            try:
                return await self._relay(request, response, upstream, fault)
            except ConnectionResetError:  # the client went away; nothing to relay to
                return response

    async def _relay(self, request: web.Request, response: web.StreamResponse,
                 upstream: aiohttp.ClientResponse, fault: str | None) -> web.StreamResponse:
        sent = 0
        corrupted = False
        async for data in upstream.content.iter_chunked(256 * 1024):
            if fault == "corrupt" and not corrupted:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                corrupted = True
            if fault == "drop" and sent + len(data) > (upstream.content_length or 0) // 2:
                await response.write(data[: max(1, len(data) // 2)])
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(data)
            sent += len(data)
        await response.write_eof()
        return response


__all__ = ["FaultProxy"]
