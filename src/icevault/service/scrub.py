"""A scrub: every stored archive re-read and checked against its leaf hashes, paced, and
resumable where it stopped (its position is kept in the metadata store)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from icevault.core.models import Archive, VaultRef
from icevault.pacing import BandwidthLimiter
from icevault.service.context import Context
from icevault.service.integrity import IntegrityService

BATCH = 100


@dataclass(slots=True)
class ScrubReport:
    resumed_after: int = 0  # the position an interrupted scrub continued from (0: a new pass)
    checked: int = 0
    bytes_read: int = 0
    corrupt: list[tuple[Archive, str]] = field(default_factory=list)
    # Bad bytes replaced from a good copy (--copy-url), with what was wrong.
    repaired: list[tuple[Archive, str]] = field(default_factory=list)
    finished: bool = False


# When the last pass over every archive of the store finished (milliseconds).
LAST_FULL_SCRUB_KEY = "scrub:last-finished"


def _position_key(vault: VaultRef | None) -> str:
    return "scrub:all" if vault is None else f"scrub:{vault.account_id}/{vault.name}"


class Scrubber:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.integrity = IntegrityService(ctx)

    def run(
        self,
        vault: VaultRef | None = None,
        *,
        bytes_per_second: float | None = None,
        on_archive: Callable[[Archive, str | None], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> ScrubReport:
        """Check archives from where the last pass stopped; a pass that reaches the end
        starts over next time."""
        meta = self.ctx.meta
        key = _position_key(vault)
        position = int(meta.get_setting(key) or 0)
        report = ScrubReport(resumed_after=position)
        limiter = None if bytes_per_second is None else BandwidthLimiter(bytes_per_second)
        pace = None if limiter is None else limiter.consume
        while not should_stop():
            batch = meta.stored_archives(position, vault, BATCH)
            if not batch:
                meta.set_setting(key, None)
                report.finished = True
                if vault is None:  # a pass over the whole store, from the server or the CLI
                    meta.set_setting(LAST_FULL_SCRUB_KEY, str(self.ctx.clock.now_ms()))
                break
            for seq, archive in batch:
                if should_stop():
                    break
                reason = archive.corrupt_reason
                if archive.corrupt_at is None:
                    reason = self.integrity.check(archive, pace=pace)
                    report.bytes_read += archive.size
                    if reason is None:
                        meta.mark_archive_verified(archive.id, self.ctx.clock.now_ms())
                    elif self.integrity.repair_or_quarantine(archive, reason) is not None:
                        report.repaired.append((archive, reason))
                        reason = None
                if reason is not None:
                    report.corrupt.append((archive, reason))
                report.checked += 1
                if on_archive is not None:
                    on_archive(archive, reason)
                position = seq
                meta.set_setting(key, str(position))
        return report
