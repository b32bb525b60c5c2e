"""The web console at /console (see pages.py).

Its routes are registered here, and its modules (Jinja2 with them) imported at the first
console request: a server, or a test's server, that nobody opens the console on starts
without them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

PREFIX = "/console"
ROUTES = (
    ("GET", "", "root"),
    ("GET", "/", "vaults"),
    ("GET", "/sign-in", "sign_in_page"),
    ("POST", "/sign-in", "sign_in"),
    ("POST", "/sign-out", "sign_out"),
    ("GET", "/status", "status"),
    ("GET", "/account", "account"),
    ("POST", "/vaults", "create_vault"),
    ("GET", "/vaults/{vault}", "vault"),
    ("GET", "/open", "open_vault"),
    ("GET", "/vaults/{vault}/delete", "confirm_delete"),
    ("POST", "/vaults/{vault}/delete", "delete_vault"),
    ("POST", "/vaults/{vault}/jobs", "start_job"),
    ("GET", "/vaults/{vault}/jobs", "jobs"),
    ("GET", "/vaults/{vault}/jobs/{job}/output", "job_output"),
    ("GET", "/vaults/{vault}/uploads", "uploads"),
    ("GET", "/static/{name}", "static"),
    # Last: any other path under the console is the console's page "not found", in HTML.
    ("*", "/{tail:.*}", "not_found"),
)


def _lazy(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        from icevault.server.console import pages

        return await pages.HANDLERS[name](request)

    return handle


def add_routes(app: web.Application) -> None:
    for method, path, name in ROUTES:
        app.router.add_route(method, PREFIX + path, _lazy(name))
