"""The control endpoint of ``icevault serve --test-controls``: clock, faults, seeding, reset.

It exists only when the server was started with ``--test-controls`` (otherwise its paths are
ordinary unknown Glacier paths: 404). It takes no credentials, like the rest of a test
server's plumbing, so it must never be enabled on a server that holds real data; the server
says so in its log when it starts with it.

    GET    /_icevault/test/clock                 {"now": ISO}
    POST   /_icevault/test/clock                 {"advance_seconds": N} -> {"now": ISO}
    POST   /_icevault/test/faults                a fault rule -> 201 {"rule": n}
    DELETE /_icevault/test/faults                remove every rule, forget what was injected
    GET    /_icevault/test/faults/seen           {"faults": [...]} in the order injected
    GET    /_icevault/test/requests              {"requests": {operation: count}}
    POST   /_icevault/test/vaults/{name}/seed    {"archives", "min_size", "max_size",
                                                  "descriptions", "seed", "years"}
    POST   /_icevault/test/reset                 delete every vault of the server's account,
                                                  every rule; the clock is kept
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from icevault.core.errors import GlacierError, InvalidParameterValueError
from icevault.core.faults import Fault
from icevault.core.models import VaultRef, iso8601, validate_vault_name
from icevault.core.parsing import load_json
from icevault.server.bodies import JSON_CAP, read_body
from icevault.server.ops import background
from icevault.server.runtime import RUNTIME, Runtime, TestControls
from icevault.service.seeding import SeedRequest, seed_vault

log = logging.getLogger("icevault.server")

PREFIX = "/_icevault/test"


def injected_error(fault: Fault) -> GlacierError:
    """The Glacier error an error fault answers with, in the one wire form of every error."""
    assert fault.code is not None and fault.status is not None
    kind = type("InjectedError", (GlacierError,),
                {"code": fault.code, "status": fault.status, "type": fault.error_type})
    error: GlacierError = kind(fault.message or f"{fault.code} (injected by a test fault)")
    return error


def _controls(runtime: Runtime) -> TestControls:
    assert runtime.controls is not None
    return runtime.controls


async def _json_body(request: web.Request, runtime: Runtime) -> dict[str, Any]:
    body = await read_body(request, runtime.limits, JSON_CAP)
    if not body:
        return {}
    value = load_json(body)
    if not isinstance(value, dict):
        raise InvalidParameterValueError("The body must be a JSON object")
    return value


def _reply(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), status=status,
                        content_type="application/json")


async def get_clock(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return _reply({"now": iso8601(_controls(runtime).clock.now_ms())})


async def advance_clock(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await _json_body(request, runtime)
    seconds = body.get("advance_seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise InvalidParameterValueError("advance_seconds is a number of seconds, 0 or more")
    _controls(runtime).clock.advance(int(seconds * 1000))
    # Everything due by the new time happens before the answer: the caller's next request
    # sees the jobs completed and the expired outputs and uploads gone.
    await background.complete_due_jobs(runtime)
    await background.send_notifications(runtime)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(runtime.executor, runtime.glacier.maintenance.expire)
    runtime.job_event.set()
    return _reply({"now": iso8601(_controls(runtime).clock.now_ms())})


async def add_fault(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    fault = Fault.from_json(await _json_body(request, runtime))
    number = _controls(runtime).faults.add(fault)
    log.warning("test controls: fault rule %d in force: %s", number, json.dumps(fault.to_json()))
    return _reply({"rule": number}, status=201)


async def clear_faults(request: web.Request) -> web.Response:
    _controls(request.app[RUNTIME]).faults.clear()
    return web.Response(status=204)


async def faults_seen(request: web.Request) -> web.Response:
    return _reply({"faults": _controls(request.app[RUNTIME]).faults.seen()})


def _int(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameterValueError(f"{name} is an integer")
    return value


async def requests_seen(request: web.Request) -> web.Response:
    return _reply({"requests": dict(_controls(request.app[RUNTIME]).requests)})


async def seed(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    name = validate_vault_name(request.match_info["name"])
    body = await _json_body(request, runtime)
    years = body.get("years", 5.0)
    if not isinstance(years, int | float) or isinstance(years, bool) or years < 0:
        raise InvalidParameterValueError("years is a number, 0 or more")
    descriptions = body.get("descriptions", "mixed")
    if not isinstance(descriptions, str):
        raise InvalidParameterValueError("descriptions is a string")
    seed_request = SeedRequest(
        archives=_int(body, "archives", 0), min_size=_int(body, "min_size", 1),
        max_size=_int(body, "max_size", 1 << 20), descriptions=descriptions,
        seed=_int(body, "seed", 0), years=float(years),
    )
    glacier = runtime.glacier
    ref = VaultRef(glacier.identity.default_account(), name)
    loop = asyncio.get_running_loop()
    report = await loop.run_in_executor(runtime.executor, seed_vault, glacier.ctx, ref,
                                        seed_request)
    return _reply({"vault": name, "archives": report.archives, "bytes": report.bytes})


async def reset(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    _controls(runtime).faults.clear()
    _controls(runtime).requests.clear()
    loop = asyncio.get_running_loop()
    removed = await loop.run_in_executor(runtime.executor, _delete_all_vaults, runtime)
    return _reply({"vaults_deleted": removed})


def _delete_all_vaults(runtime: Runtime) -> int:
    glacier = runtime.glacier
    removed = glacier.vaults.delete_all(glacier.identity.default_account())  # a test server's
    glacier.maintenance.collect_garbage()
    return removed


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/clock", get_clock)
    app.router.add_post(f"{PREFIX}/clock", advance_clock)
    app.router.add_post(f"{PREFIX}/faults", add_fault)
    app.router.add_delete(f"{PREFIX}/faults", clear_faults)
    app.router.add_get(f"{PREFIX}/faults/seen", faults_seen)
    app.router.add_get(f"{PREFIX}/requests", requests_seen)
    app.router.add_post(f"{PREFIX}/vaults/{{name}}/seed", seed)
    app.router.add_post(f"{PREFIX}/reset", reset)
