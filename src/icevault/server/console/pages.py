"""The web console's HTTP side: sign-in, the session cookie and CSRF checks, and one handler
per page or action, rendered with Jinja2 templates shipped in the package.

Console pages are HTML for people, so their errors are HTML pages too (the Glacier JSON
error form is for SDKs); each handler turns a Glacier error into one.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web

from icevault.config import parse_size
from icevault.core.errors import AccessDeniedError, GlacierError, InvalidParameterValueError
from icevault.core.identity import KeyStatus, Principal
from icevault.core.models import JobAction, JobStatus, Tier
from icevault.core.parsing import MAX_LONG, parse_decimal
from icevault.diskio import BLOCK
from icevault.server import requestlog
from icevault.server.bodies import FORM_CAP, SIGN_IN_CAP, read_body
from icevault.server.console import PREFIX
from icevault.server.console import session as sessions
from icevault.server.console.render import (
    TEMPLATES,
    human_bytes,
    storage_chart,
    words_for_metrics,
)
from icevault.server.errors import close_if_body_unread
from icevault.server.runtime import RUNTIME, Runtime
from icevault.service.console import Viewer
from icevault.service.integrity import CorruptBytesError
from icevault.store.metadata.base import ArchiveFilter

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Auth off (local testing): any key signs in, as the first account's root; sessions are
# signed with this process's own secret.
_AUTH_OFF_SECRET = secrets.token_hex(32)
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A download's file name: plain characters only (it goes into a quoted header value).
_FILE_NAME = re.compile(r"[A-Za-z0-9._ ()+-]{1,200}")


class _RedirectError(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _RefusedError(Exception):
    """A console request refused before reaching Glacier's services (401 or 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Page:
    """One request to the console: its runtime, viewer and CSRF token once signed in."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.runtime: Runtime = request.app[RUNTIME]
        self.views = self.runtime.glacier.console
        self.viewer: Viewer | None = None
        self.session: sessions.Session | None = None
        self.csrf = ""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.runtime.executor, partial(fn, *args))

    async def key_secret(self, key_id: str) -> tuple[str, Principal] | None:
        """The secret sessions of this key are signed with, and who it is; None when the
        key does not exist or is disabled."""
        glacier = self.runtime.glacier
        if self.runtime.settings.auth == "off":
            account = await self.run(glacier.identity.default_account)
            return _AUTH_OFF_SECRET, Principal(account, None, None)
        key = await self.run(glacier.identity.lookup_key, key_id)
        if key is None or key.status is not KeyStatus.ACTIVE:
            return None
        return key.secret, Principal(key.account_id, key.user, key.id)

    async def sign_in_required(self) -> Viewer:
        cookie = self.request.cookies.get(sessions.COOKIE)
        parts = sessions.parse(cookie)
        found = None if parts is None else await self.key_secret(parts[0])
        now = self.runtime.glacier.sessions.now_s()
        session = None if parts is None or found is None else sessions.verify(
            parts, found[0], now)
        if session is None or found is None or cookie is None or await self.run(
                self.runtime.glacier.sessions.has_ended, session.key_id, session.issued, cookie):
            raise _RedirectError(f"{PREFIX}/sign-in")
        self.session = session
        secret, principal = found
        self.viewer = Viewer(principal, self.request.remote, self.request.secure)
        self.csrf = session.csrf_token(secret)
        self.request[requestlog.ACCOUNT_KEY] = principal.account_id
        self.request[requestlog.PRINCIPAL_KEY] = principal.arn
        return self.viewer

    async def form(self) -> dict[str, str]:
        """A POSTed form of a signed-in session, its CSRF token checked."""
        await self.sign_in_required()
        fields = await self.fields(FORM_CAP)
        if not sessions.same_token(self.csrf, fields.get("csrf")):
            raise _RefusedError(403, "The form's security token is missing or stale: reload the "
                                "page and try again.")
        return fields

    async def fields(self, cap: int) -> dict[str, str]:
        """The fields of a URL-encoded form of at most ``cap`` bytes, read by the one body
        reader of every route."""
        if self.request.content_type != "application/x-www-form-urlencoded":
            raise InvalidParameterValueError(
                "A console form is sent as application/x-www-form-urlencoded")
        raw = await read_body(self.request, self.runtime.limits, cap)
        try:
            pairs = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True,
                                           max_num_fields=16)
        except (UnicodeDecodeError, ValueError):
            raise InvalidParameterValueError("The form is not URL-encoded UTF-8") from None
        return dict(pairs)

    def render(self, template: str, status: int = 200, **values: Any) -> web.Response:
        html = TEMPLATES.get_template(template).render(
            viewer=self.viewer, csrf=self.csrf, prefix=PREFIX, **values)
        return web.Response(text=html, status=status, content_type="text/html",
                            headers=_HEADERS)


def _page(handler: Callable[[Page], Awaitable[web.StreamResponse]]) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        request[requestlog.OPERATION_KEY] = f"console:{handler.__name__.strip('_')}"
        page = Page(request)
        try:
            return await handler(page)
        except _RedirectError as redirect:
            return web.Response(status=303, headers={**_HEADERS, "Location": redirect.location})
        except _RefusedError as refused:
            response = page.render("error.html", refused.status, message=refused.message)
        except GlacierError as error:
            response = page.render("error.html", error.status, message=error.message,
                                   code=error.code)
            response.headers.update(error.headers)  # Retry-After, for one
        close_if_body_unread(request, response)
        return response

    return run


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


# -- sign-in --------------------------------------------------------------------------------
async def _sign_in_form(page: Page, status: int = 200, failed: bool = False,
                        key_id: str = "") -> web.Response:
    token = secrets.token_urlsafe(24)
    response = page.render("sign_in.html", status, token=token, failed=failed, key_id=key_id)
    response.set_cookie(sessions.SIGN_IN_COOKIE, token, path=PREFIX, httponly=True,
                        samesite="Strict", secure=page.request.secure, max_age=3600)
    return response


async def sign_in_page(page: Page) -> web.StreamResponse:
    return await _sign_in_form(page)


async def sign_in(page: Page) -> web.StreamResponse:
    fields = await page.fields(SIGN_IN_CAP)
    expected = page.request.cookies.get(sessions.SIGN_IN_COOKIE)
    if expected is None or not sessions.same_token(expected, fields.get("token")):
        raise _RefusedError(403, "The sign-in form's security token is missing or stale: reload "
                            "the page and try again.")
    key_id = fields.get("access_key_id", "").strip()
    given = fields.get("secret_access_key", "").strip()
    limits = page.runtime.glacier.sessions
    address = page.request.remote
    await page.run(limits.check_sign_in, address, key_id)
    found = await page.key_secret(key_id) if key_id and given else None
    auth_off = page.runtime.settings.auth == "off"
    if found is None or not (auth_off or hmac.compare_digest(found[0].encode(), given.encode())):
        # One answer for an unknown key and a wrong secret: nothing to probe keys with.
        await page.run(limits.note_failure, address, key_id)
        return await _sign_in_form(page, 401, failed=True, key_id=key_id)
    if auth_off:
        key_id = sessions.session_key_id(key_id)  # "x" signs in too
    _, cookie = sessions.issue(key_id, found[0], limits.now_s())
    response = web.Response(status=303, headers={**_HEADERS, "Location": f"{PREFIX}/"})
    response.set_cookie(sessions.COOKIE, cookie, path=PREFIX, httponly=True,
                        samesite="Strict", secure=page.request.secure,
                        max_age=sessions.LIFETIME_S)
    response.del_cookie(sessions.SIGN_IN_COOKIE, path=PREFIX)
    return response


async def sign_out(page: Page) -> web.StreamResponse:
    await page.form()
    cookie = page.request.cookies.get(sessions.COOKIE)
    if cookie is not None and page.session is not None:
        # Ended in the store, for every server: the cookie no longer works even if kept.
        await page.run(page.runtime.glacier.sessions.sign_out, cookie, page.session.expires)
    response = web.Response(status=303,
                            headers={**_HEADERS, "Location": f"{PREFIX}/sign-in"})
    response.del_cookie(sessions.COOKIE, path=PREFIX)
    return response


# -- pages ----------------------------------------------------------------------------------
async def vaults(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    try:
        listed = await page.run(page.views.vaults, viewer)
        history = await page.run(page.views.storage_history, viewer)
    except AccessDeniedError:
        # A user allowed some vaults but not ListVaults opens them by name.
        return page.render("vaults.html", vaults=None, chart=None, stored=None)
    stored = human_bytes(history[-1].total_bytes) if history else None
    return page.render("vaults.html", vaults=listed, chart=storage_chart(history),
                       stored=stored)


async def open_vault(page: Page) -> web.StreamResponse:
    await page.sign_in_required()
    name = page.request.query.get("name", "").strip()
    raise _RedirectError(f"{PREFIX}/vaults/{_quote(name)}" if name else f"{PREFIX}/")


async def confirm_delete(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    described = await page.run(page.views.vault, viewer, page.request.match_info["vault"])
    return page.render("confirm_delete.html", vault=described)


async def not_found(page: Page) -> web.StreamResponse:
    return page.render("error.html", 404, message="There is no such page in the console.",
                       code="ResourceNotFoundException")


def _archive_filter(query: Any) -> tuple[ArchiveFilter, int | None, int | None]:
    def size(name: str) -> int | None:
        text = query.get(name, "").strip()
        if not text:
            return None
        try:
            size = parse_size(text)
        except ValueError:
            raise InvalidParameterValueError(f"Not a size: {text[:40]} (e.g. 10MiB)") from None
        if size > MAX_LONG:
            raise InvalidParameterValueError(f"Not a size: {text[:40]} (at most {MAX_LONG} bytes)")
        return size

    def day(name: str) -> int | None:
        text = query.get(name, "").strip()
        if not text:
            return None
        if not _DATE.fullmatch(text):
            raise InvalidParameterValueError(f"Not a date: {text} (YYYY-MM-DD)")
        try:
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidParameterValueError(f"Not a date: {text} (YYYY-MM-DD)") from None
        return int(moment.timestamp() * 1000)

    end = day("to")
    return (ArchiveFilter(query.get("q", "").strip() or None, size("min"), size("max")),
            day("from"), None if end is None else end + 24 * 3600 * 1000)


async def vault(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    name = page.request.match_info["vault"]
    query = page.request.query
    described = await page.run(page.views.vault, viewer, name)
    matching, start, end = _archive_filter(query)
    after = parse_decimal(query.get("after", "0"), "after")
    number = max(1, parse_decimal(query.get("page", "1"), "page"))
    listed = await page.run(page.views.archives, viewer, name, after, matching, start, end)
    kept = {k: query[k] for k in ("q", "min", "max", "from", "to") if query.get(k)}
    next_url = None
    if listed.next_after is not None:
        next_url = "?" + urllib.parse.urlencode(
            {**kept, "after": listed.next_after, "page": number + 1})
    first_url = "?" + urllib.parse.urlencode(kept) if kept else "?"
    return page.render("vault.html", vault=described, archives=listed.archives,
                       page_number=number, next_url=next_url, first_url=first_url,
                       filters=kept, tiers=[tier.value for tier in Tier])


async def jobs(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    name = page.request.match_info["vault"]
    described = await page.run(page.views.vault, viewer, name)
    listed = await page.run(page.views.jobs, viewer, name)
    waiting = any(view.job.status is JobStatus.IN_PROGRESS for view in listed)
    started = next((view.job for view in listed
                    if view.job.id == page.request.query.get("started")), None)
    return page.render("jobs.html", vault=described, jobs=listed, refresh=waiting,
                       archive_action=JobAction.ARCHIVE_RETRIEVAL, started=started)


async def uploads(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    name = page.request.match_info["vault"]
    described = await page.run(page.views.vault, viewer, name)
    listed = await page.run(page.views.uploads, viewer, name)
    return page.render("uploads.html", vault=described, uploads=listed)


async def account(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    found = await page.run(page.views.account, viewer)
    return page.render("account.html", account=found)


async def status(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    stats, whole_store = await page.run(page.views.store_stats, viewer)
    metrics = page.runtime.metrics
    # This server's request counters cover every account: the operator's to see.
    registry = None if metrics is None or not whole_store else metrics.registry
    return page.render("status.html", lines=words_for_metrics(stats, registry, whole_store),
                       whole_store=whole_store)


# -- actions --------------------------------------------------------------------------------
async def create_vault(page: Page) -> web.StreamResponse:
    fields = await page.form()
    name = fields.get("name", "").strip()
    assert page.viewer is not None
    await page.run(page.views.create_vault, page.viewer, name)
    raise _RedirectError(f"{PREFIX}/vaults/{_quote(name)}")


async def delete_vault(page: Page) -> web.StreamResponse:
    await page.form()
    assert page.viewer is not None
    await page.run(page.views.delete_vault, page.viewer, page.request.match_info["vault"])
    raise _RedirectError(f"{PREFIX}/")


async def start_job(page: Page) -> web.StreamResponse:
    fields = await page.form()
    assert page.viewer is not None
    name = page.request.match_info["vault"]
    if fields.get("type") == "inventory-retrieval":
        job = await page.run(page.views.start_inventory, page.viewer, name)
    else:
        try:
            tier = Tier(fields.get("tier", Tier.STANDARD.value))
        except ValueError:
            raise InvalidParameterValueError("Unknown tier") from None
        job = await page.run(page.views.start_retrieval, page.viewer, name,
                             fields.get("archive_id", ""), tier)
    page.runtime.job_event.set()
    raise _RedirectError(f"{PREFIX}/vaults/{_quote(name)}/jobs?started={_quote(job.id)}")


async def job_output(page: Page) -> web.StreamResponse:
    viewer = await page.sign_in_required()
    name, job_id = page.request.match_info["vault"], page.request.match_info["job"]
    job = await page.run(page.views.job, viewer, name, job_id)
    output = await page.run(page.views.open_output, viewer, name, job_id)
    if job.action is JobAction.INVENTORY_RETRIEVAL:
        filename = "inventory.json" if output.content_type == "application/json" else \
            "inventory.csv"
    else:
        filename = _file_name(output.archive_description) or \
            f"archive-{(job.archive_id or 'output')[:16]}.bin"
    response = web.StreamResponse(headers={
        **_HEADERS, "Content-Type": output.content_type,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(output.length),
        **({"x-amz-sha256-tree-hash": output.checksum} if output.checksum else {}),
    })
    try:
        await response.prepare(page.request)
        while chunk := await page.run(output.reader.read, BLOCK):
            await response.write(chunk)
        await response.write_eof()
    except CorruptBytesError:
        # The archive is marked corrupt by now (and logged). The connection is dropped
        # short of Content-Length, so the browser reports a failed download rather than
        # keep a file with bad bytes in it.
        raise ConnectionResetError("stopped serving bytes that failed verification") from None
    finally:
        output.reader.close()
    return response


def _file_name(description: str | None) -> str | None:
    """The file name an archive's description gives (``photos/2024/img 1.jpg`` gives
    ``img 1.jpg``), when it looks like one; None otherwise."""
    if not description:
        return None
    name = description.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not _FILE_NAME.fullmatch(name) or name in (".", ".."):
        return None
    return name


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    body = resources.files("icevault.server.console").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=_STATIC[name],
                        headers={"Cache-Control": "max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})


async def root(request: web.Request) -> web.StreamResponse:
    return web.Response(status=303, headers={"Location": f"{PREFIX}/"})


# The console's routes: (method, path under PREFIX, handler). The server registers them from
# icevault.server.console without importing this module until the first console request.
HANDLERS: dict[str, Handler] = {
    "root": root,
    "vaults": _page(vaults),
    "sign_in_page": _page(sign_in_page),
    "sign_in": _page(sign_in),
    "sign_out": _page(sign_out),
    "status": _page(status),
    "account": _page(account),
    "create_vault": _page(create_vault),
    "vault": _page(vault),
    "open_vault": _page(open_vault),
    "confirm_delete": _page(confirm_delete),
    "not_found": _page(not_found),
    "delete_vault": _page(delete_vault),
    "start_job": _page(start_job),
    "jobs": _page(jobs),
    "job_output": _page(job_output),
    "uploads": _page(uploads),
    "static": static,
}
