"""What every use case needs: the stores, the clock and the service's limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from icevault.core.models import Clock, Job, SystemClock, Tier
from icevault.store.blobs.base import BlobStore
from icevault.store.metadata.base import MetadataStore

HOUR_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class Limits:
    max_vaults: int = 1000
    max_tags: int = 50
    max_parts: int = 10_000
    max_single_upload: int = 4 * 1024**3


@dataclass(frozen=True, slots=True)
class Timing:
    """Job and upload lifetimes in milliseconds."""

    tier_delays_ms: dict[Tier, int] = field(
        default_factory=lambda: {Tier.EXPEDITED: 0, Tier.STANDARD: 0, Tier.BULK: 0}
    )
    inventory_delay_ms: int = 0
    job_expiry_ms: int = 24 * HOUR_MS
    upload_expiry_ms: int = 24 * HOUR_MS
    # Finished uploads are remembered this long so a repeated Complete or Abort succeeds.
    finished_upload_memory_ms: int = 24 * HOUR_MS
    # Access keys and identity policies are cached this long (a change made by the admin
    # commands, from another process, applies within it); vault policies for at most 1 s.
    cache_ttl_ms: int = 1000
    # A due job a server took is another server's to take after this (if the first died).
    job_lease_ms: int = 5 * 60_000
    # The same for a finished job's notification, and the longest wait between its retries.
    notification_lease_ms: int = 60_000


@dataclass(slots=True)
class Context:
    meta: MetadataStore
    blobs: BlobStore
    region: str = "us-east-1"
    clock: Clock = field(default_factory=SystemClock)
    limits: Limits = field(default_factory=Limits)
    timing: Timing = field(default_factory=Timing)
    # Test controls only: why a job due now must fail instead of completing, if it must.
    injected_job_failure: Callable[[Job], str | None] = lambda _job: None
