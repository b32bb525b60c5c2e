"""Job-completion notifications.

Glacier publishes the DescribeJob JSON to an SNS topic when a job completes, for the job's own
``SNSTopic`` and for the vault's notification configuration. icevault has no SNS: it records
every notification, and delivers it by HTTP POST to the URL an administrator registered for
the topic (see ``topics``) and to the operator's own webhook (``--notification-url``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from icevault.core.models import Job, JobAction
from icevault.service.context import Context
from icevault.service.topics import TopicService

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 5.0
# A delivery that failed is tried again after 2, 4, 8 ... s (at most the notification lease),
# this many times in all.
MAX_ATTEMPTS = 10
# The same value on every delivery of one job's notification to one topic, retries and
# deliveries by another server included: a receiver keeps the first and drops repeats.
IDEMPOTENCY_HEADER = "x-icevault-idempotency-key"


def idempotency_key(job: Job, topic: str) -> str:
    return hashlib.sha256(f"{job.id}\n{topic}".encode()).hexdigest()[:32]


def _event_for(job: Job) -> str:
    if job.action is JobAction.ARCHIVE_RETRIEVAL:
        return "ArchiveRetrievalCompleted"
    return "InventoryRetrievalCompleted"


class Notifier:
    def __init__(
        self, ctx: Context, render: Callable[[Job], dict[str, Any]], webhook_url: str | None,
        on_delivery: Callable[[bool], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.render = render
        self.webhook_url = webhook_url
        self.on_delivery = on_delivery  # told of each delivery: delivered or not
        self.topics = TopicService(ctx)

    def topics_for(self, job: Job) -> list[str]:
        topics = []
        if job.sns_topic:
            topics.append(job.sns_topic)
        config = self.ctx.meta.get_notifications(job.vault)
        if config is not None and _event_for(job) in config.events and config.sns_topic not in topics:
            topics.append(config.sns_topic)
        return topics

    def send_due(self, limit: int = 32) -> int:
        """Send the notifications of finished jobs that are due, each claimed first so that
        no other server sharing the database sends it too; how many jobs were handled."""
        timing = self.ctx.timing
        claims = self.ctx.meta.claim_notifications(
            self.ctx.clock.now_ms(), limit, timing.notification_lease_ms
        )
        for claim in claims:
            failed = self._send(claim.job, claim.attempt)
            retry_at = None
            if failed and claim.attempt < MAX_ATTEMPTS:
                wait = min(timing.notification_lease_ms, 1000 * 2**claim.attempt)
                retry_at = self.ctx.clock.now_ms() + wait
            elif failed:
                log.warning("notification abandoned", extra={
                    "event": "notification_abandoned", "job_id": claim.job.id,
                    "attempts": claim.attempt})
            self.ctx.meta.settle_notification(claim.job.id, retry_at)
        return len(claims)

    def _send(self, job: Job, attempt: int) -> bool:
        """Deliver to every target not reached yet; whether any delivery failed."""
        topics = self.topics_for(job)
        if not topics:
            return False
        reached = self.ctx.meta.delivered_notifications(job.id) if attempt > 1 else set()
        body = json.dumps(self.render(job))
        failed = False
        for topic in topics:
            targets = []
            registered = self.topics.url_for(topic)
            if registered is not None:
                targets.append(registered)
            if self.webhook_url:
                targets.append(self.webhook_url)
            if not targets and attempt == 1:
                self._record(job, topic, None, body, "recorded")
            for target in targets:
                if (topic, target) in reached:
                    continue
                outcome = self._deliver(target, topic, body, idempotency_key(job, topic))
                delivered = outcome.startswith("delivered")
                failed = failed or not delivered
                if self.on_delivery is not None:
                    self.on_delivery(delivered)
                self._record(job, topic, target, body, outcome)
        return failed

    def _deliver(self, target: str, topic: str, body: str, key: str) -> str:
        # Only http(s): topic URLs are checked when registered, the operator's at start.
        request = urllib.request.Request(  # noqa: S310
            target,
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json", "x-icevault-topic": topic,
                     IDEMPOTENCY_HEADER: key},
        )
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_S) as response:  # noqa: S310
                return f"delivered {response.status}"
        except urllib.error.HTTPError as exc:
            self._failed(topic, target, f"answered {exc.code}")
            return f"failed {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            self._failed(topic, target, str(exc))
            return f"failed: {exc}"

    @staticmethod
    def _failed(topic: str, target: str, why: str) -> None:
        # The host only: a webhook URL's path or query may hold a token.
        host = urllib.parse.urlsplit(target).hostname
        log.warning("notification failed", extra={
            "event": "notification_failed", "topic": topic, "host": host, "reason": why})

    def _record(self, job: Job, topic: str, target: str | None, body: str, status: str) -> None:
        self.ctx.meta.record_notification(
            job.vault, job.id, topic, target, body, status, self.ctx.clock.now_ms()
        )
