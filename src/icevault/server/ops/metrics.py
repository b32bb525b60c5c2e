"""Prometheus metrics (``GET /metrics``), with prometheus-client.

Every metric is described in docs/operations.md with what a healthy value looks like. Label values
come only from fixed sets the server defines (:data:`OPERATIONS`, the status codes it
answers with, job states, delivery outcomes), never from a URL, a header or a name a client
chose: whatever is not in a set is counted as ``unknown``, so no request can add a series.
What the store holds is read at scrape time, so every server behind a balancer reports the
same totals; those are every account's together, which is why a scrape needs the
operator's token (``--metrics token``, the default) unless the operator opens it.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from icevault.core.errors import AccessDeniedError, BodyChecksumMismatchError
from icevault.core.models import JobStatus
from icevault.server import console
from icevault.server.errors import ERROR_KEY
from icevault.server.requestlog import OPERATION_KEY, QUIET_PATHS
from icevault.server.routes import Op
from icevault.service.admin import ACTIONS
from icevault.service.context import Event
from icevault.service.maintenance import Maintenance
from icevault.service.notifications import Delivery

# Every operation label: the Glacier API's, the admin API's and the console's.
OPERATIONS = frozenset(
    {op.value for op in Op} | {f"icevault:{action}" for action in ACTIONS}
    | {f"console:{name}" for _, _, name in console.ROUTES})
UNKNOWN = "unknown"


def operation_label(operation: str) -> str:
    return operation if operation in OPERATIONS else UNKNOWN


def status_label(status: int) -> str:
    # The server chooses its statuses, but a label set must not rest on that staying so.
    return str(status) if 100 <= status <= 599 else UNKNOWN

# Request durations from a fast lookup to a large transfer.
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                     30, 60, 300, 900)
_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
# Restores: Expedited minutes, Standard hours, Bulk up to two days.
_RESTORE_BUCKETS = (60, 300, 900, 3600, 3 * 3600, 5 * 3600, 12 * 3600, 24 * 3600, 48 * 3600)


class _StoreCollector(Collector):
    """Gauges of what the store holds, read when Prometheus scrapes."""

    def __init__(self, maintenance: Maintenance) -> None:
        self.maintenance = maintenance

    def collect(self) -> Iterator[Metric]:
        now = self.maintenance.now_ms()
        stats = self.maintenance.store_stats()
        yield GaugeMetricFamily("icevault_archives", "Archives stored (live).",
                                value=stats.archives)
        yield GaugeMetricFamily("icevault_archive_bytes", "Bytes of the archives stored.",
                                value=stats.archive_bytes)
        yield GaugeMetricFamily(
            "icevault_corrupt_archives",
            "Archives whose stored bytes failed verification (SHOULD BE ZERO).",
            value=stats.corrupt_archives)
        jobs = GaugeMetricFamily("icevault_jobs", "Jobs by state.", labels=["state"])
        for status in JobStatus:
            jobs.add_metric([status.value], stats.jobs.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily("icevault_multipart_uploads_open", "Multipart uploads open.",
                                value=stats.open_uploads)
        lag = 0.0 if stats.oldest_due_job_at is None else (now - stats.oldest_due_job_at) / 1000
        yield GaugeMetricFamily(
            "icevault_job_queue_lag_seconds",
            "How long the longest-waiting due job has waited to be completed.", value=lag)
        # Copy stores are the operator's --copy-url names: a fixed set, never a client's.
        owed_archives = GaugeMetricFamily(
            "icevault_copies_owed_archives", "Archives a copy store has no verified copy of.",
            labels=["store"])
        owed_bytes = GaugeMetricFamily("icevault_copies_owed_bytes",
                                       "Bytes of the archives a copy store is owed.",
                                       labels=["store"])
        owed_age = GaugeMetricFamily(
            "icevault_copies_owed_oldest_seconds",
            "Age of the oldest archive a copy store is owed (0: none owed).", labels=["store"])
        for owed in self.maintenance.copy_backlog():
            owed_archives.add_metric([owed.store], owed.archives)
            owed_bytes.add_metric([owed.store], owed.bytes)
            owed_age.add_metric([owed.store], 0 if owed.oldest_created_at is None
                                else max(0.0, (now - owed.oldest_created_at) / 1000))
        yield owed_archives
        yield owed_bytes
        yield owed_age
        yield GaugeMetricFamily(
            "icevault_jobs_waiting_for_restore",
            "Retrieval jobs waiting for their archive's bytes to come back from a copy store "
            "(a cold copy's restore in flight).", value=self.maintenance.jobs_waiting_for_copies())
        yield GaugeMetricFamily(
            "icevault_requests_in_flight",
            "Requests being handled now, this scrape included (admin API calls are not): "
            "copies and scrub give way while there are any (--background-share).",
            value=self.maintenance.requests_in_flight())
        last = self.maintenance.last_full_scrub_ms()
        yield GaugeMetricFamily(
            "icevault_scrub_last_finished_timestamp_seconds",
            "When the last full scrub finished (0: never).",
            value=0 if last is None else last / 1000)


class ServerMetrics:
    def __init__(self, maintenance: Maintenance) -> None:
        # The *_created series of every counter double the exposition and no dashboard uses
        # them (a process-wide setting: this process serves one application).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_StoreCollector(maintenance))
        self.requests = Counter("icevault_requests", "Requests by operation and status.",
                                ["operation", "status"], registry=self.registry)
        self.duration = Histogram("icevault_request_duration_seconds",
                                  "Time from a request's arrival to its last response byte.",
                                  ["operation"], buckets=_DURATION_BUCKETS,
                                  registry=self.registry)
        self.received = Counter("icevault_received_bytes",
                                "Request body bytes received (Content-Length).",
                                registry=self.registry)
        self.sent = Counter("icevault_sent_bytes", "Response body bytes sent (Content-Length).",
                            registry=self.registry)
        self.job_delay = Histogram("icevault_job_completion_delay_seconds",
                                   "From the time a job is due to its completion.",
                                   buckets=_DELAY_BUCKETS, registry=self.registry)
        self.notifications = Counter("icevault_notifications",
                                     "Job notifications by outcome: delivered, failed (tried again), refused (an "
                                     "address webhooks may not reach), undeliverable (no topic "
                                     "registered under the ARN).",
                                     ["outcome"], registry=self.registry)
        self.checksum_mismatches = Counter(
            "icevault_upload_checksum_mismatches",
            "Uploads refused because their bytes did not match their tree hash (SHOULD BE "
            "ZERO: a client or network corrupting data).", registry=self.registry)
        for outcome in Delivery:
            self.notifications.labels(outcome.value)
        self.repaired = Counter(
            "icevault_archives_repaired", "Archives whose bad stored bytes were replaced from "
            "a good copy (--copy-url).", registry=self.registry)
        self.copies_remade = Counter(
            "icevault_copies_found_bad", "Copies whose bytes no longer matched, marked to be "
            "made again.", registry=self.registry)
        self.restore_wait = Histogram(
            "icevault_restore_wait_seconds", "From RestoreObject on a cold copy to the "
            "retrieval job's completion.", buckets=_RESTORE_BUCKETS, registry=self.registry)

    def observe(self, event: Event, value: float) -> None:
        """What the services report (Context.observe): a fixed set of events."""
        if event is Event.ARCHIVE_REPAIRED:
            self.repaired.inc(value)
        elif event is Event.COPY_REMADE:
            self.copies_remade.inc(value)
        elif event is Event.RESTORE_WAITED:
            self.restore_wait.observe(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def notification(self, outcome: Delivery) -> None:
        self.notifications.labels(outcome.value).inc()

    def middleware(self) -> Middleware:
        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.monotonic()
            response: web.StreamResponse | None = None
            try:
                response = await handler(request)
                return response
            finally:
                operation = request.get(OPERATION_KEY)
                if operation is None and not request.path.startswith(QUIET_PATHS):
                    operation = UNKNOWN  # a path that names no operation
                if operation is not None:  # not /metrics or /health themselves
                    # Errors are responses by now (error_middleware); what still raises is a
                    # connection the client dropped.
                    label = operation_label(operation)
                    status = "aborted" if response is None else status_label(response.status)
                    self.requests.labels(label, status).inc()
                    self.duration.labels(label).observe(time.monotonic() - started)
                    if request.content_length:
                        self.received.inc(request.content_length)
                    if response is not None and response.status < 300 and (
                            response.content_length):
                        self.sent.inc(response.content_length)
                    if isinstance(request.get(ERROR_KEY), BodyChecksumMismatchError):
                        self.checksum_mismatches.inc()

        return measure


TOKEN_FILE = "metrics-token"  # noqa: S105 - a file name, not a secret


def scrape_token(path: Path) -> str:
    """The bearer token scrapes must send: read from ``path``, or made there (mode 0600) on
    first use, as the first start writes the operator's credentials."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"the metrics token file {path} is empty") from None
        return token
    token = secrets.token_urlsafe(32)
    try:
        os.write(fd, f"{token}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return token


def handler(metrics: ServerMetrics, run: Callable[[Callable[[], bytes]], Awaitable[bytes]],
            token: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /metrics``; with ``token``, only for ``Authorization: Bearer <token>``."""
    expected = None if token is None else f"Bearer {token}".encode()

    async def serve_metrics(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise AccessDeniedError(
                    "GET /metrics needs the operator's token: Authorization: Bearer <the "
                    "contents of the server's metrics token file>")
        body = await run(metrics.render)  # store gauges read the database: off the loop
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return serve_metrics
