"""Bytes for a retrieval job whose archive's hot bytes were removed (``--hot-days``): from a
copy readable at once if there is one (copied back into the hot store and checked there),
else from a copy in an S3 archive class, through RestoreObject, polling its state with
back-off. A restored cold copy is served where it is: the job records it, its range is
checked against the tree-hash leaves before the job completes, and GetJobOutput streams
from it, whole or ranged, with the same tree-hash headers. The restore is asked for long
enough to outlive the job's output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from icevault.core.models import Archive, Tier, iso8601
from icevault.service.context import Context
from icevault.service.copying import copy_verified
from icevault.store.blobs.base import BlobStore, Restorable, RestoreState
from icevault.store.metadata.copy_port import ArchiveCopy, CopyState

log = logging.getLogger("icevault.copies")

# A restore's state is asked at most once a minute per object (S3 bills requests).
POLL_MS = 60_000
DAY_MS = 86_400_000
_S3_TIERS = {Tier.EXPEDITED: "Expedited", Tier.STANDARD: "Standard", Tier.BULK: "Bulk"}


@dataclass(frozen=True, slots=True)
class ServeFrom:
    """A restored cold copy the job's output is served from."""

    store: str
    key: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """Nothing to serve yet: ask again at ``next_check_ms``; ``message`` says why."""

    message: str
    next_check_ms: int


class Restorer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def bring_back(self, archive: Archive,
                   tier: Tier | None) -> Archive | ServeFrom | Waiting | None:
        """The archive with hot bytes again, a restored copy to serve from, what the job
        waits for, or None when no copy can give the bytes."""
        copies = [c for c in self.ctx.meta.archive_copies(archive.id)
                  if c.state is CopyState.VERIFIED and c.blob_key is not None
                  and c.store in self.ctx.copies]
        readable = [c for c in copies if self.ctx.copies[c.store].readable_at_once]
        for copy in readable:
            back = self._copy_back(archive, copy)
            if back is not None:
                return back
        waits: list[str] = []
        for copy in copies:
            store = self.ctx.copies[copy.store]
            if store.readable_at_once or not isinstance(store, Restorable):
                continue
            try:
                waiting_for = self._restore(archive, copy, store, tier)
            except Exception as exc:  # noqa: BLE001 - any store client's error
                log.warning("restore of archive %s from %s failed: %s: %s", archive.id,
                            copy.store, type(exc).__name__, exc)
                waits.append(f"the copy in {copy.store} could not be asked for "
                             f"({type(exc).__name__}); asking again")
                continue
            if waiting_for is not None:
                waits.append(waiting_for)
                continue
            assert copy.blob_key is not None
            return ServeFrom(copy.store, copy.blob_key)  # restored: readable now
        if not waits:
            return None
        return Waiting("; ".join(waits), self.ctx.clock.now_ms() + POLL_MS)

    def _restore(self, archive: Archive, copy: ArchiveCopy, store: Restorable,
                 tier: Tier | None) -> str | None:
        """Start or follow one cold copy's restore; what the job waits for, or None when
        the copy is readable now."""
        assert copy.blob_key is not None
        status = store.restore_state(copy.blob_key)
        wanted = _S3_TIERS.get(tier or Tier.STANDARD, "Standard")
        used = wanted if wanted in store.restore_tiers else "Standard"
        if status.state is RestoreState.ARCHIVED:
            # Readable for as long as the job's output is, and a day more (the restore may
            # finish a day before the job does): never expired under a download.
            days = max(store.restore_days,
                       -(-self.ctx.timing.job_expiry_ms // DAY_MS) + 1)
            status = store.request_restore(copy.blob_key, days, used)
            self.ctx.meta.note_restore_requested(archive.id, copy.store,
                                                 self.ctx.clock.now_ms())
            log.info("restore requested", extra={
                "event": "restore_requested", "archive_id": archive.id, "store": copy.store,
                "tier": used})
        if status.state is RestoreState.RESTORED:
            # A store that does not say when the restore ends: at least the days it keeps.
            until = status.until_ms or self.ctx.clock.now_ms() + store.restore_days * DAY_MS
            if until != copy.restored_until:
                self.ctx.meta.note_restored(archive.id, copy.store, until)
            return None
        since = copy.restore_requested_at or self.ctx.clock.now_ms()
        note = "" if used == wanted else f" ({wanted} is not offered there: {used})"
        return (f"Waiting for the archive's copy in {copy.store} to be restored, "
                f"{used} tier{note}, requested {iso8601(since)}")

    def _copy_back(self, archive: Archive, copy: ArchiveCopy) -> Archive | None:
        assert copy.blob_key is not None
        source: BlobStore = self.ctx.copies[copy.store]
        try:
            key = copy_verified(archive, source, copy.blob_key, self.ctx.blobs)
        except Exception as exc:  # noqa: BLE001 - this copy cannot give the bytes: next
            log.warning("cannot bring archive %s back from %s: %s: %s", archive.id,
                        copy.store, type(exc).__name__, exc)
            return None
        now = self.ctx.clock.now_ms()
        if not self.ctx.meta.rehydrate(archive.id, key, now):
            self.ctx.blobs.delete(key)
            return self.ctx.meta.get_archive(archive.vault, archive.id)
        log.info("archive brought back", extra={
            "event": "archive_rehydrated", "archive_id": archive.id, "store": copy.store})
        return Archive(archive.id, archive.vault, archive.description, archive.size,
                       archive.tree_hash, archive.created_at, key, stored_at=archive.stored_at)

