"""``GET /health/live`` and ``GET /health/ready``: for load balancers and orchestrators.

Neither needs credentials and neither tells more than whether the server can serve: the
reason a server is not ready names the store that does not answer and the kind of error;
the details (which may name hosts or paths) go to the server's log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiohttp import web

from icevault.server.runtime import RUNTIME

log = logging.getLogger("icevault.server")

PROBE_TIMEOUT_S = 5.0


def _reply(status: int, payload: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(),
                        content_type="application/json",
                        headers={"Cache-Control": "no-store"})


async def live(_request: web.Request) -> web.Response:
    return _reply(200, {"status": "live"})


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    maintenance = runtime.glacier.maintenance
    loop = asyncio.get_running_loop()
    checks: list[tuple[str, Callable[[], None]]] = [
        ("metadata store", maintenance.ping_metadata), ("blob store", maintenance.ping_blobs)]
    for name, probe in checks:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await loop.run_in_executor(runtime.executor, probe)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said below
            kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.warning("not ready: the %s does not answer: %s", name, exc)
            return _reply(503, {"status": "unready",
                                "reason": f"the {name} does not answer ({kind})"})
    # Copy stores (--copy-url) never make a server unready: uploads and retrievals go on
    # without them, and the copies wait. The answer says so.
    silent: list[str] = []
    for store in maintenance.copy_store_names():
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await loop.run_in_executor(runtime.executor, maintenance.ping_copy_store, store)
        except Exception as exc:  # noqa: BLE001 - any failure means "does not answer"
            kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.warning("a copy store does not answer: %s: %s", store, exc)
            silent.append(kind)
    if silent:
        return _reply(200, {"status": "ready", "copies": (
            f"{len(silent)} of {len(maintenance.copy_store_names())} copy stores do not "
            f"answer ({', '.join(sorted(set(silent)))}); the copies they are owed wait")})
    return _reply(200, {"status": "ready"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
