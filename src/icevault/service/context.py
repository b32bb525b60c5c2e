"""What every use case needs: the stores, the clock and the service's limits."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from icevault.config import ServerSettings
from icevault.core.models import Clock, Job, SystemClock, Tier
from icevault.service.foreground import Foreground
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
    """Job and upload lifetimes in milliseconds, from the server's settings (where each
    default is defined)."""

    tier_delays_ms: dict[Tier, int]
    inventory_delay_ms: int
    job_expiry_ms: int
    upload_expiry_ms: int
    # Access keys and identity policies are cached this long (a change made by the admin
    # commands, from another process, applies within it); vault policies for at most 1 s.
    cache_ttl_ms: int
    # A due job a server took is another server's to take after this (if the first died).
    job_lease_ms: int
    # The same for a finished job's notification, and the longest wait between its retries.
    notification_lease_ms: int
    # Finished uploads are remembered this long so a repeated Complete or Abort succeeds.
    finished_upload_memory_ms: int = 24 * HOUR_MS

    @classmethod
    def of(cls, settings: ServerSettings) -> Timing:
        def ms(seconds: float) -> int:
            return int(seconds * 1000)

        return cls(
            tier_delays_ms={tier: ms(settings.tier_delays_s.get(tier, 0.0)) for tier in Tier},
            inventory_delay_ms=ms(settings.inventory_delay_s),
            job_expiry_ms=ms(settings.job_expiry_s),
            upload_expiry_ms=ms(settings.upload_expiry_s),
            cache_ttl_ms=ms(settings.cache_ttl_s),
            job_lease_ms=ms(settings.job_lease_s),
            # A delivery takes up to 5 s per target; one still under way when its lease ends
            # is sent again by another server, so the lease is never shorter than 15 s.
            notification_lease_ms=min(60_000, max(15_000, ms(settings.job_lease_s))),
        )


class Event(enum.Enum):
    ARCHIVE_REPAIRED = "archive_repaired"  # hot bytes replaced from a good copy
    COPY_REMADE = "copy_remade"  # a copy found bad, marked to be made again
    RESTORE_WAITED = "restore_waited"  # seconds from RestoreObject to the job's completion


@dataclass(slots=True)
class Context:
    meta: MetadataStore
    blobs: BlobStore
    region: str = "us-east-1"
    clock: Clock = field(default_factory=SystemClock)
    limits: Limits = field(default_factory=Limits)
    timing: Timing = field(default_factory=lambda: Timing.of(ServerSettings()))
    # Further stores keeping a full copy of every archive (--copy-url), by name.
    copies: dict[str, BlobStore] = field(default_factory=dict)
    # How many of them must hold a verified copy before an upload is acknowledged.
    copies_before_ack: int = 0
    # Bytes per second the copy workers may read, all stores together (None: unpaced).
    copy_rate: int | None = None
    # Requests in flight, counted at the edge: background work gives way to them.
    foreground: Foreground = field(
        default_factory=lambda: Foreground(ServerSettings().background_share))
    # Test controls only: why a job due now must fail instead of completing, if it must.
    injected_job_failure: Callable[[Job], str | None] = lambda _job: None
    # Told of what the background work did, by name (see Event), with a value: the
    # server's metrics listen; elsewhere nobody does.
    observe: Callable[[Event, float], None] = lambda _event, _value: None
