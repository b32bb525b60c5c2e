"""Copies of every archive in the further stores of ``--copy-url``: made from the hot copy
by background workers, each verified before it counts, and listed for the operator.

Which archives owe a store a copy is the metadata's to say (an archive with no verified row
for the store): there is no queue to lose. A worker claims a few with a lease, as due jobs
are claimed, so several servers on one database make each copy once; a server that dies
mid-copy leaves a claim another takes over when its lease ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from icevault.core.errors import (
    InvalidParameterValueError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)
from icevault.core.models import Archive, VaultRef, iso8601
from icevault.pacing import BandwidthLimiter
from icevault.service.context import Context
from icevault.service.copying import SourceMismatchError, copy_verified
from icevault.service.foreground import BackgroundPace
from icevault.service.integrity import IntegrityService
from icevault.service.leases import LeaseKeeper
from icevault.service.ownership import StoreOwnedElsewhereError, ensure_own_store
from icevault.store.blobs.base import BlobNotFoundError
from icevault.store.metadata.copy_port import ArchiveCopy, CopyBacklog, CopyState

log = logging.getLogger("icevault.copies")

# A failed copy is tried again after 30 s, doubling per failure up to an hour: a store that
# is down is not hammered, and one that comes back is used within the hour.
FIRST_RETRY_MS = 30_000
LONGEST_RETRY_MS = 3_600_000
BATCH = 8
PARALLEL = 4  # copies made at once per store and server


def retry_delay_ms(failures: int) -> int:
    return int(min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** min(failures, 20)))


@dataclass(frozen=True, slots=True)
class CopyReport:
    made: int
    failed: int


class CopyService:
    def __init__(self, ctx: Context, integrity: IntegrityService) -> None:
        self.ctx = ctx
        self.integrity = integrity
        # One bucket for every worker of this server (--copy-rate).
        self._limiter = None if ctx.copy_rate is None else BandwidthLimiter(ctx.copy_rate)
        # Copy stores found to carry this installation's mark (see ownership.py).
        self._own_stores: set[str] = set()

    @property
    def stores(self) -> list[str]:
        return sorted(self.ctx.copies)

    def copy_owed(self, store: str, limit: int = BATCH,
                  pace: Callable[[int], None] | None = None) -> CopyReport:
        """Claim up to ``limit`` archives owing ``store`` a copy and make each (``pace`` is
        told each block read: a backfill's rate limit)."""
        meta, now = self.ctx.meta, self.ctx.clock.now_ms()
        claimed = meta.claim_owed_copies(store, now, self.ctx.timing.job_lease_ms, limit)
        if not claimed:
            return CopyReport(0, 0)
        try:
            if store not in self._own_stores:  # checked once per server while it runs
                ensure_own_store(meta, f"the copy store {store}", self.ctx.copies[store])
                self._own_stores.add(store)
        except StoreOwnedElsewhereError as exc:
            for archive, failures in claimed:
                meta.finish_copy(archive.id, store, now, None, str(exc),
                                 now + retry_delay_ms(failures))
            log.error("not copying: %s", exc, extra={"event": "copy_store_not_ours",
                                                     "store": store})
            return CopyReport(0, len(claimed))
        except Exception:  # noqa: BLE001, S110 - any store client's error: each copy meets
            pass  # it too, and records it for the operator
        threads = min(PARALLEL, len(claimed))
        if pace is None and self._limiter is not None:
            pace = self._limiter.consume
        pace = BackgroundPace(self.ctx.foreground, pace, threads)
        # Several at once: each copy waits on reads, a write, a sync and a read-back in
        # turn, and copies side by side keep both stores and the cores busy (measured from
        # local disk to a RAM disk on 2 cores with buffered reads: 720 MB/s one at a time,
        # 880 two, 1,120 four; with direct reads, two, four and eight all ran at 710-930).
        with (LeaseKeeper(lambda ids, until: meta.renew_copy_claims(store, ids, until),
                          (archive.id for archive, _ in claimed),
                          self.ctx.timing.job_lease_ms, self.ctx.clock),
              ThreadPoolExecutor(max_workers=threads, thread_name_prefix="icevault-copy") as pool):
            made = sum(pool.map(lambda item: self._copy_one(store, item[0], item[1], pace),
                                claimed))
        return CopyReport(made, len(claimed) - made)

    def _copy_one(self, store: str, archive: Archive, failures: int,
                  pace: Callable[[int], None] | None) -> bool:
        """Make and record one copy, or record why not (retried with back-off)."""
        error = self._try_copy(store, archive, pace)
        if error is None:
            return True
        log.warning("copy of archive %s to %s failed: %s", archive.id, store, error,
                    extra={"event": "copy_failed", "archive_id": archive.id, "store": store})
        now = self.ctx.clock.now_ms()
        self.ctx.meta.finish_copy(archive.id, store, now, None, error,
                                  now + retry_delay_ms(failures))
        return False

    def _try_copy(self, store: str, archive: Archive,
                  pace: Callable[[int], None] | None) -> str | None:
        """Make and record one copy; why not, if not."""
        assert archive.blob_key is not None
        target = self.ctx.copies[store]
        try:
            key = copy_verified(archive, self.ctx.blobs, archive.blob_key, target, pace)
        except SourceMismatchError as exc:
            reason = f"its stored bytes failed verification while being copied ({exc})"
            self.integrity.repair_or_quarantine(archive, reason)
            return reason
        except BlobNotFoundError:
            return "the archive's stored bytes are missing"
        except Exception as exc:  # noqa: BLE001 - a copy store's client may raise anything
            # (botocore's errors are not OSErrors): the attempt failed, and is retried with
            # back-off; the error is what the operator reads in `icevault admin copies`.
            return f"{type(exc).__name__}: {str(exc)[:300]}"
        if not self.ctx.meta.finish_copy(archive.id, store, self.ctx.clock.now_ms(), key,
                                         None, None):
            target.delete(key)  # the archive was deleted while it was being copied
        return None

    def backfill(self, store: str, bytes_per_second: int | None = None) -> CopyReport:
        """Every copy ``store`` is owed now (a store added after the archives were), one at
        a time and paced when a rate is given; resumable, as the claims are in the
        metadata. Copies that fail are left to the workers' back-off."""
        if store not in self.ctx.copies:
            raise InvalidParameterValueError(
                f"Not a copy store of this server: {store} (one of: "
                f"{', '.join(self.stores) or 'none; give --copy-url'})")
        limiter = None if bytes_per_second is None else BandwidthLimiter(bytes_per_second)
        made = failed = 0
        while True:
            report = self.copy_owed(store, limit=1 if limiter else BATCH,
                                    pace=None if limiter is None else limiter.consume)
            made, failed = made + report.made, failed + report.failed
            if not report.made and not report.failed:
                return CopyReport(made, failed)

    def evict_hot(self, hot_days: float | None, limit: int = 100) -> int:
        """Remove the hot bytes of archives every copy store has held verified for
        ``hot_days`` (None: keep them all); how many went."""
        if hot_days is None or not self.ctx.copies:
            return 0
        now = self.ctx.clock.now_ms()
        before = now - int(hot_days * 86_400_000)
        evicted = 0
        for archive in self.ctx.meta.evictable_archives(self.stores, before, limit):
            assert archive.blob_key is not None
            if self.ctx.meta.evict_hot(archive.id, archive.blob_key, now):
                evicted += 1
        if evicted:
            log.info("hot copies removed", extra={"event": "hot_evicted", "archives": evicted})
        return evicted

    def copies_of(self, ref: VaultRef, archive_id: str) -> tuple[Archive, list[ArchiveCopy]]:
        archive = self.ctx.meta.get_archive(ref, archive_id)
        if archive is None or archive.deleted_at is not None:
            raise ResourceNotFoundError(f"Archive not found: {archive_id}")
        return archive, self.ctx.meta.archive_copies(archive_id)

    def vault_copies(self, ref: VaultRef, after_seq: int,
                     limit: int) -> list[tuple[int, Archive, list[ArchiveCopy]]]:
        return self.ctx.meta.vault_copies(ref, after_seq, limit)

    def known_stores(self) -> list[str]:
        """The configured stores, and any a copy row names (the admin commands on a data
        directory know no --copy-url)."""
        return sorted(set(self.ctx.copies) | set(self.ctx.meta.copy_stores()))

    def backlog(self) -> list[CopyBacklog]:
        """What each store is owed."""
        now = self.ctx.clock.now_ms()
        return [self.ctx.meta.copy_backlog(store, now) for store in self.known_stores()]

    def drop_deleted(self) -> int:
        """Delete the copies of archives that are gone (their rows say "dropping")."""
        dropped = 0
        while copies := self.ctx.meta.copies_to_drop(100):
            done: list[tuple[str, str]] = []
            for copy in copies:
                store = self.ctx.copies.get(copy.store)
                if store is None:
                    continue  # a store no longer configured: kept for when it is again
                if copy.blob_key is not None:
                    store.delete(copy.blob_key)
                done.append((copy.archive_id, copy.store))
            if not done:
                break
            self.ctx.meta.drop_copies(done)
            dropped += len(done)
        return dropped


class CopiesBeforeAck:
    """``--copies-before-ack N``: an upload's bytes are copied to N stores, each verified,
    after they are durable in the hot store and before the archive is recorded, so that
    the acknowledgement means N+1 good copies. Stores are tried in name order until N
    succeed; short of N, whatever was made is deleted and the upload fails with a 503 the
    client retries (no archive was recorded)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def make(self, archive: Archive) -> list[tuple[str, str]]:
        """Copies of a committed but unrecorded archive: (store, key) for each. On any
        failure the archive's hot bytes are deleted too: nothing of it is left."""
        try:
            return self._make(archive)
        except BaseException:
            assert archive.blob_key is not None
            self.ctx.blobs.delete(archive.blob_key)
            raise

    def _make(self, archive: Archive) -> list[tuple[str, str]]:
        wanted = self.ctx.copies_before_ack
        if wanted == 0:
            return []
        assert archive.blob_key is not None
        made: list[tuple[str, str]] = []
        failures: list[str] = []
        for name in sorted(self.ctx.copies):
            if len(made) == wanted:
                break
            try:
                made.append((name, copy_verified(archive, self.ctx.blobs, archive.blob_key,
                                                 self.ctx.copies[name])))
            except Exception as exc:  # noqa: BLE001 - any store client's error counts
                failures.append(f"{name}: {type(exc).__name__}")
        if len(made) < wanted:
            self.discard(made)
            raise CopiesUnavailableError(
                f"The archive could not be copied to {wanted} stores before acknowledging it "
                f"({'; '.join(failures)}); try again")
        return made

    def discard(self, made: list[tuple[str, str]]) -> None:
        for name, key in made:
            try:
                self.ctx.copies[name].delete(key)
            except Exception as exc:  # noqa: BLE001 - left for the store's orphan sweep
                log.warning("could not delete an unacknowledged copy in %s: %s", name, exc)

    def record(self, archive: Archive, made: list[tuple[str, str]]) -> None:
        now = self.ctx.clock.now_ms()
        for name, key in made:
            self.ctx.meta.record_verified_copy(archive.id, name, key, now)


class CopiesUnavailableError(ServiceUnavailableError):
    """Fewer copy stores than --copies-before-ack took the upload's copy: 503, retried."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


def state_text(copy: ArchiveCopy, now: int) -> str:
    """What ``icevault admin copies`` says of a copy: a verified cold copy is "restoring"
    from a retrieval's RestoreObject until its store says it is done, then "restored until"
    the restore's expiry; a copy scrub found bad keeps its object's key until it is made
    again (a failed attempt at a copy has none)."""
    if copy.state is CopyState.FAILED and copy.blob_key is not None:
        return "bad"
    if copy.state is CopyState.VERIFIED:
        if copy.restored_until is not None and copy.restored_until > now:
            return f"restored until {iso8601(copy.restored_until)}"
        if copy.restore_requested_at is not None and (
                copy.restored_until is None or copy.restored_until <= copy.restore_requested_at):
            return "restoring"
    return {CopyState.COPYING: "copying", CopyState.VERIFIED: "verified",
            CopyState.FAILED: "failed", CopyState.DROPPING: "deleting"}[copy.state]
