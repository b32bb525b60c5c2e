"""Job-completion notifications.

Glacier publishes the DescribeJob JSON to an SNS topic when a job completes, for the job's own
``SNSTopic`` and for the vault's notification configuration. icevault has no SNS: it records
every notification, and delivers it by HTTP POST to the URL the operator registered for the
topic (see ``topics``) and to the operator's own webhook (``--notification-url``), through a
:class:`WebhookSender` (the adapter is :mod:`icevault.webhooks`). A topic ARN nobody
registered is accepted, as AWS accepts any topic's ARN, and its notifications are recorded
as undeliverable and never sent anywhere but the operator's webhook.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from icevault.core.models import Job, JobAction
from icevault.service.context import Context
from icevault.service.topics import TopicService


class Delivery(enum.StrEnum):
    """What became of one notification to one target: all an account is shown of it (the
    connection-level detail goes to the operator's log)."""

    DELIVERED = "delivered"
    FAILED = "failed"  # not reached, or answered other than 2xx: tried again
    REFUSED = "refused"  # an address webhooks may not reach: not tried again
    UNDELIVERABLE = "undeliverable"  # no topic registered under the ARN: nowhere to send


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Delivery:
        """POST ``body`` to ``url``; what became of it."""
        ...


log = logging.getLogger(__name__)

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
        self, ctx: Context, render: Callable[[Job], dict[str, Any]], sender: WebhookSender,
        webhook_url: str | None, on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.render = render
        self.sender = sender
        self.webhook_url = webhook_url
        self.on_delivery = on_delivery  # told of each outcome (metrics)
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
        """Deliver to every target not reached yet; whether a delivery failed (and is worth
        trying again)."""
        topics = self.topics_for(job)
        if not topics:
            return False
        reached = self.ctx.meta.delivered_notifications(job.id) if attempt > 1 else set()
        body = json.dumps(self.render(job))
        failed = False
        for topic in topics:
            registered = self.topics.url_for(topic, job.vault.account_id)
            if registered is None and attempt == 1:
                self._record(job, topic, None, body, Delivery.UNDELIVERABLE)
            for target in filter(None, (registered, self.webhook_url)):
                if (topic, target) in reached:
                    continue
                outcome = self.sender.post(target, body.encode(), {
                    "Content-Type": "application/json", "x-icevault-topic": topic,
                    IDEMPOTENCY_HEADER: idempotency_key(job, topic)})
                failed = failed or outcome is Delivery.FAILED
                self._record(job, topic, target, body, outcome)
        return failed

    def _record(self, job: Job, topic: str, target: str | None, body: str,
                outcome: Delivery) -> None:
        if self.on_delivery is not None:
            self.on_delivery(outcome)
        self.ctx.meta.record_notification(
            job.vault, job.id, topic, target, body, outcome.value, self.ctx.clock.now_ms()
        )
