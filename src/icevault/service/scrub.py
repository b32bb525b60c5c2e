"""A scrub: every stored archive re-read and checked against its leaf hashes, paced, and
resumable where it stopped (its position is kept in the metadata store). Its copies in the
stores readable without a restore (--copy-url) are re-read too: a bad one is made again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from icevault.core.models import Archive, VaultRef
from icevault.pacing import BandwidthLimiter
from icevault.service.context import Context, Event
from icevault.service.copying import tree_hash_of
from icevault.service.foreground import BackgroundPace
from icevault.service.integrity import IntegrityService
from icevault.store.blobs.base import BlobNotFoundError
from icevault.store.metadata.copy_port import CopyState

BATCH = 100


@dataclass(slots=True)
class ScrubReport:
    resumed_after: int = 0  # the position an interrupted scrub continued from (0: a new pass)
    checked: int = 0
    bytes_read: int = 0
    corrupt: list[tuple[Archive, str]] = field(default_factory=list)
    # Bad bytes replaced from a good copy (--copy-url), with what was wrong.
    repaired: list[tuple[Archive, str]] = field(default_factory=list)
    # Copies (by store) whose bytes no longer hash to the archive's: made again from it.
    bad_copies: list[tuple[Archive, str]] = field(default_factory=list)
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
        pace = BackgroundPace(self.ctx.foreground, None if limiter is None else limiter.consume)
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
                else:
                    self._check_copies(archive, report, pace)
                report.checked += 1
                if on_archive is not None:
                    on_archive(archive, reason)
                position = seq
                meta.set_setting(key, str(position))
        return report

    def _check_copies(self, archive: Archive, report: ScrubReport,
                      pace: Callable[[int], None] | None) -> None:
        """Re-read each verified copy a store can give without a restore."""
        for copy in self.ctx.meta.archive_copies(archive.id):
            store = self.ctx.copies.get(copy.store)
            if (store is None or not store.readable_at_once or copy.blob_key is None
                    or copy.state is not CopyState.VERIFIED):
                continue
            report.bytes_read += archive.size
            try:
                good = tree_hash_of(store, copy.blob_key, archive.size,
                                    pace) == archive.tree_hash
            except BlobNotFoundError:
                good = False
            except Exception:  # noqa: BLE001, S112 - a store that is down: not a bad copy
                continue
            if not good:
                self.ctx.meta.mark_copy_failed(archive.id, copy.store, self.ctx.clock.now_ms(),
                                               "a scrub found its bytes changed")
                report.bad_copies.append((archive, copy.store))
                self.ctx.observe(Event.COPY_REMADE, 1)
