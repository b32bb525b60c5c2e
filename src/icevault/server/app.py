"""The aiohttp application: the Glacier API's request pipeline (route, authenticate,
authorize, hand to a handler), the other surfaces' routes, and the background tasks' life.
The stores come from :mod:`icevault.stores`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware

from icevault import stores
from icevault.config import ServerSettings
from icevault.core.errors import (
    InvalidParameterValueError,
)
from icevault.core.faults import Fault, FaultKind
from icevault.core.models import (
    ACCOUNT_ID_RE,
    AdjustableClock,
    Clock,
    validate_vault_name,
)
from icevault.core.netpolicy import AddressPolicy
from icevault.server import console, parse, requestlog, routes
from icevault.server.authn import authenticate
from icevault.server.bodypump import BodyPumps, close_after_response
from icevault.server.call import Call
from icevault.server.errors import error_middleware
from icevault.server.handlers import account, archives, jobs, policies, uploads, vaults
from icevault.server.ops import adminapi, background, health, metrics, testcontrols
from icevault.server.routes import Op
from icevault.server.runtime import RUNTIME, Runtime, TestControls
from icevault.server.transfer import TransferLimits
from icevault.server.wire import job_json
from icevault.service.access import IMPORT_ACTION, AccessRequest
from icevault.service.context import Context, Timing
from icevault.service.faults import FaultPlan
from icevault.service.foreground import Foreground
from icevault.service.glacier import Glacier
from icevault.service.notifications import Notifier
from icevault.store.paths import make_private_dir
from icevault.webhooks import HttpWebhookSender

log = logging.getLogger("icevault.server")

GLACIER_VERSION = "2012-06-01"

Handler = Callable[[Call], Awaitable[web.StreamResponse]]

HANDLERS: dict[Op, Handler] = {
    Op.CREATE_VAULT: vaults.create_vault,
    Op.DESCRIBE_VAULT: vaults.describe_vault,
    Op.LIST_VAULTS: vaults.list_vaults,
    Op.DELETE_VAULT: vaults.delete_vault,
    Op.ADD_TAGS_TO_VAULT: vaults.add_tags,
    Op.REMOVE_TAGS_FROM_VAULT: vaults.remove_tags,
    Op.LIST_TAGS_FOR_VAULT: vaults.list_tags,
    Op.UPLOAD_ARCHIVE: archives.upload_archive,
    Op.DELETE_ARCHIVE: archives.delete_archive,
    Op.INITIATE_MULTIPART_UPLOAD: uploads.initiate_multipart_upload,
    Op.UPLOAD_MULTIPART_PART: uploads.upload_multipart_part,
    Op.COMPLETE_MULTIPART_UPLOAD: uploads.complete_multipart_upload,
    Op.ABORT_MULTIPART_UPLOAD: uploads.abort_multipart_upload,
    Op.LIST_PARTS: uploads.list_parts,
    Op.LIST_MULTIPART_UPLOADS: uploads.list_multipart_uploads,
    Op.INITIATE_JOB: jobs.initiate_job,
    Op.DESCRIBE_JOB: jobs.describe_job,
    Op.LIST_JOBS: jobs.list_jobs,
    Op.GET_JOB_OUTPUT: jobs.get_job_output,
    Op.SET_VAULT_ACCESS_POLICY: policies.set_vault_access_policy,
    Op.GET_VAULT_ACCESS_POLICY: policies.get_vault_access_policy,
    Op.DELETE_VAULT_ACCESS_POLICY: policies.delete_vault_access_policy,
    Op.INITIATE_VAULT_LOCK: policies.initiate_vault_lock,
    Op.COMPLETE_VAULT_LOCK: policies.complete_vault_lock,
    Op.ABORT_VAULT_LOCK: policies.abort_vault_lock,
    Op.GET_VAULT_LOCK: policies.get_vault_lock,
    Op.SET_VAULT_NOTIFICATIONS: policies.set_vault_notifications,
    Op.GET_VAULT_NOTIFICATIONS: policies.get_vault_notifications,
    Op.DELETE_VAULT_NOTIFICATIONS: policies.delete_vault_notifications,
    Op.GET_DATA_RETRIEVAL_POLICY: account.get_data_retrieval_policy,
    Op.SET_DATA_RETRIEVAL_POLICY: account.set_data_retrieval_policy,
    Op.PURCHASE_PROVISIONED_CAPACITY: account.purchase_provisioned_capacity,
    Op.LIST_PROVISIONED_CAPACITY: account.list_provisioned_capacity,
}




def build_glacier(settings: ServerSettings, clock: Clock | None = None) -> Glacier:
    data_dir = settings.data_dir
    make_private_dir(data_dir)
    meta = stores.open_metadata(data_dir, settings.metadata_url)
    blobs = stores.open_blobs(data_dir, settings.blob_url)
    timing = Timing.of(settings)
    copies = stores.open_copies(settings.copy_urls)
    stores.warn_of_shared_disks(blobs, copies)
    ctx = Context(meta=meta, blobs=blobs, region=settings.region, timing=timing,
                  copies=copies,
                  copies_before_ack=settings.copies_before_ack, copy_rate=settings.copy_rate,
                  foreground=Foreground(settings.background_share))
    if clock is not None:
        ctx.clock = clock
    return Glacier(ctx)


def resolve_account(segment: str, caller_account: str) -> str:
    """'-' is the caller's own account; otherwise a 12-digit id names the account that owns
    the resource (whether the caller may act there is for the access policies to say)."""
    if segment == "-":
        return caller_account
    if not ACCOUNT_ID_RE.fullmatch(segment):
        raise InvalidParameterValueError(
            f"Invalid account id: {segment!r}. Use '-' or a 12-digit account id without hyphens"
        )
    return segment


async def dispatch(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    version = request.headers.get("x-amz-glacier-version")
    if version is not None and version != GLACIER_VERSION:
        raise InvalidParameterValueError(
            f"Invalid x-amz-glacier-version: {version}. This service speaks {GLACIER_VERSION}"
        )
    route = routes.match(request.method, request.raw_path, dict(request.query))
    request[requestlog.OPERATION_KEY] = route.op.value
    request[requestlog.VAULT_KEY] = route.vault
    if runtime.controls is not None:
        runtime.controls.requests[route.op.value] += 1
    caller = await authenticate(runtime, request, streamed=route.op in _STREAMED)
    principal = caller.principal
    account = resolve_account(route.account, principal.account_id)
    request[requestlog.ACCOUNT_KEY] = account
    request[requestlog.PRINCIPAL_KEY] = principal.arn
    if route.vault is not None:
        validate_vault_name(route.vault)
    access = AccessRequest(
        principal=principal,
        operation=route.op.value,
        account_id=account,
        vault=route.vault,
        source_ip=request.remote,
        secure_transport=request.secure,
        archive_id=route.resource_id if route.op is Op.DELETE_ARCHIVE else None,
    )
    checks = [access]
    if route.op in _IMPORTING and (
        parse.IMPORT_ID_HEADER in request.headers or parse.IMPORT_DATE_HEADER in request.headers
    ):
        # Naming the new archive's ID and date needs a permission of its own.
        checks.append(replace(access, operation=IMPORT_ACTION))
    access_service = runtime.glacier.access
    for check in checks:
        if access_service.decidable_without_io(check):
            access_service.authorize(check)  # pure computation on cached state
        else:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(runtime.executor, access_service.authorize, check)
    body_fault = None
    if runtime.controls is not None:
        body_fault = _injected(runtime.controls, route)
    handler = HANDLERS[route.op]
    call = Call(
        request=request,
        route=route,
        account=account,
        glacier=runtime.glacier,
        executor=runtime.executor,
        limits=runtime.limits,
        wake_jobs=runtime.job_event.set,
        body=caller.body,
        tree_hash_binds_body=caller.tree_hash_binds_body,
        body_fault=body_fault,
        pumps=runtime.body_pumps,
    )
    return await handler(call)


def _injected(controls: TestControls, route: routes.Route) -> Fault | None:
    """Raise the error a test fault injects into this request; return a body fault."""
    job = route.resource_id if route.op in _JOB_OPS else None
    fault = controls.faults.for_request(route.op.value, route.vault, job)
    if fault is not None and fault.kind is FaultKind.ERROR:
        raise testcontrols.injected_error(fault)
    return fault


_JOB_OPS = frozenset({Op.DESCRIBE_JOB, Op.GET_JOB_OUTPUT})
_IMPORTING = frozenset({Op.UPLOAD_ARCHIVE, Op.INITIATE_MULTIPART_UPLOAD})


# Bodies of these operations stream to storage; the client must declare their SHA-256 in
# x-amz-content-sha256 (botocore always does) and the upload path checks the bytes against it.
_STREAMED = frozenset({Op.UPLOAD_ARCHIVE, Op.UPLOAD_MULTIPART_PART})


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    # Every response, error or not, streamed or not, carries a request id (the one in the
    # request's log line).
    response.headers["x-amzn-RequestId"] = requestlog.request_id(request)
    close_after_response(request, response)


def _counted_in(foreground: Foreground) -> Middleware:
    """Each request counted while it is handled: background work gives way meanwhile.
    Not the admin API's: an admin call may run a scrub or a backfill for its whole length,
    which would then give way to itself."""

    @web.middleware
    async def count(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        if request.path.startswith(adminapi.PREFIX):
            return await handler(request)
        foreground.started()
        try:
            return await handler(request)
        finally:
            foreground.finished()

    return count


def create_app(settings: ServerSettings, glacier: Glacier | None = None,
               listening: tuple[str, int] | None = None) -> web.Application:
    """The application; ``listening`` is the (host, port) it serves on, which webhooks may
    never reach."""
    controls = None
    if settings.test_controls:
        clock = AdjustableClock()
        controls = TestControls(clock, FaultPlan(clock))
        for fault in settings.faults:
            controls.faults.add(fault)
    built = glacier or build_glacier(settings, controls.clock if controls else None)
    if controls is not None:
        built.ctx.injected_job_failure = controls.faults.job_failure
    server_metrics = metrics.ServerMetrics(built.maintenance) if settings.metrics != "off" \
        else None
    if server_metrics is not None:
        built.ctx.observe = server_metrics.observe
    app = web.Application(
        # Metrics outermost: they see every answer, errors included, as sent.
        middlewares=[requestlog.request_log, _counted_in(built.ctx.foreground),
                     *([server_metrics.middleware()] if server_metrics else []),
                     error_middleware],
        client_max_size=1024 * 1024,
    )
    limits = TransferLimits(settings.io_timeout_s, settings.min_rate)
    runtime = Runtime(
        settings=settings,
        glacier=built,
        executor=ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="icevault"),
        job_event=asyncio.Event(),
        notify_event=asyncio.Event(),
        notifier=Notifier(
            built.ctx, lambda job: job_json(job, settings.region),
            HttpWebhookSender(AddressPolicy(
                allow_private=settings.webhook_allow_private,
                own=frozenset() if listening is None else frozenset({listening}))),
            settings.notification_url,
            on_delivery=server_metrics.notification if server_metrics else None,
        ),
        limits=limits,
        body_pumps=BodyPumps(settings.body_threads, limits),
        controls=controls,
        metrics=server_metrics,
    )
    app[RUNTIME] = runtime
    # Before the catch-all below, which would shadow them.
    health.add_routes(app)
    adminapi.add_routes(app)
    console.add_routes(app)
    if server_metrics is not None:
        executor = runtime.executor

        async def run(fn: Callable[[], bytes]) -> bytes:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)

        token = None
        if settings.metrics == "token":
            token = metrics.scrape_token(
                settings.metrics_token_file or settings.data_dir / metrics.TOKEN_FILE)
        app.router.add_get("/metrics", metrics.handler(server_metrics, run, token))
    if controls is not None:
        testcontrols.add_routes(app)
        log.warning("test controls are on: %s changes the clock, injects faults and "
                    "deletes vaults without credentials; never use them with real data",
                    testcontrols.PREFIX)
    # Every path, newlines included, so that no request falls through to aiohttp's own
    # (plain-text) handling.
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch)
    app.on_response_prepare.append(_stamp)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        maintenance = runtime.glacier.maintenance
        key = await loop.run_in_executor(
            runtime.executor, runtime.glacier.identity.bootstrap, settings.data_dir
        )
        if key is not None:
            path = settings.data_dir / "credentials"
            log.warning(
                "first start: created account %s and its root access key %s; credentials are in "
                "%s (profile icevault). Use them with: AWS_SHARED_CREDENTIALS_FILE=%s "
                "AWS_PROFILE=icevault",
                key.account_id, key.id, path, path.resolve(),
            )
        await loop.run_in_executor(runtime.executor, maintenance.start_up,
                                   settings.orphan_grace_s)
        tasks = [
            asyncio.create_task(background.job_worker(runtime), name="icevault-jobs"),
            asyncio.create_task(background.notification_worker(runtime),
                                name="icevault-notifications"),
            asyncio.create_task(background.housekeeping(runtime), name="icevault-housekeeping"),
            asyncio.create_task(background.scrub_periodically(runtime), name="icevault-scrub"),
            *[asyncio.create_task(background.copy_worker(runtime, store),
                                  name=f"icevault-copies-{n}")
              for n, store in enumerate(runtime.glacier.copies.stores)],
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runtime.body_pumps.shutdown()
        runtime.executor.shutdown(wait=True)
        maintenance.close()

    app.cleanup_ctx.append(lifecycle)
    return app
