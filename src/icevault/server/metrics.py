"""Prometheus metrics (``GET /metrics``), with prometheus-client.

Every metric is described in the README with what a healthy value looks like. Labels take a
bounded set of values only (operation names, status codes, job states): never an archive,
job, upload or vault name, never a key. What the store holds is read from the metadata store
at scrape time, so every server behind a balancer reports the same totals.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator

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

from icevault.core.errors import BodyChecksumMismatchError
from icevault.core.models import JobStatus
from icevault.server.errors import ERROR_KEY
from icevault.server.requestlog import OPERATION_KEY
from icevault.service.context import Context
from icevault.service.scrub import LAST_FULL_SCRUB_KEY

# Request durations from a fast lookup to a large transfer.
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                     30, 60, 300, 900)
_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


class _StoreCollector(Collector):
    """Gauges of what the store holds, read when Prometheus scrapes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        now = self.ctx.clock.now_ms()
        stats = self.ctx.meta.store_stats(now)
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
        last = self.ctx.meta.get_setting(LAST_FULL_SCRUB_KEY)
        yield GaugeMetricFamily(
            "icevault_scrub_last_finished_timestamp_seconds",
            "When the last full scrub finished (0: never).",
            value=0 if last is None else int(last) / 1000)


class ServerMetrics:
    def __init__(self, ctx: Context) -> None:
        # The *_created series of every counter double the exposition and no dashboard uses
        # them (a process-wide setting: this process serves one application).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(_StoreCollector(ctx))
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
                                     "Job notifications by outcome (sent, failed).",
                                     ["outcome"], registry=self.registry)
        self.checksum_mismatches = Counter(
            "icevault_upload_checksum_mismatches",
            "Uploads refused because their bytes did not match their tree hash (SHOULD BE "
            "ZERO: a client or network corrupting data).", registry=self.registry)
        for outcome in ("sent", "failed"):
            self.notifications.labels(outcome)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def notification(self, delivered: bool) -> None:
        self.notifications.labels("sent" if delivered else "failed").inc()

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
                if operation is not None:  # Glacier requests only (not /metrics itself)
                    # Errors are responses by now (error_middleware); what still raises is a
                    # connection the client dropped.
                    status = "aborted" if response is None else str(response.status)
                    self.requests.labels(operation, status).inc()
                    self.duration.labels(operation).observe(time.monotonic() - started)
                    if request.content_length:
                        self.received.inc(request.content_length)
                    if response is not None and response.status < 300 and (
                            response.content_length):
                        self.sent.inc(response.content_length)
                    if isinstance(request.get(ERROR_KEY), BodyChecksumMismatchError):
                        self.checksum_mismatches.inc()

        return measure


def handler(metrics: ServerMetrics, run: Callable[[Callable[[], bytes]], Awaitable[bytes]],
            ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve_metrics(_request: web.Request) -> web.Response:
        body = await run(metrics.render)  # store gauges read the database: off the loop
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return serve_metrics
