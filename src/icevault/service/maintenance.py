"""Housekeeping: expire jobs and idle uploads, reclaim unreferenced bytes, sweep orphans."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from icevault.service.context import Context
from icevault.service.ownership import StoreOwnedElsewhereError, ensure_own_store
from icevault.service.scrub import LAST_FULL_SCRUB_KEY
from icevault.service.sessions import SessionService
from icevault.store.metadata.base import GarbageKind, StoreStats
from icevault.store.metadata.copy_port import CopyBacklog

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepReport:
    temporary: int
    blobs: int
    staging: int
    copies: int = 0  # objects in the copy stores no copy row names


class Maintenance:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- what operators watch -------------------------------------------------------------
    def now_ms(self) -> int:
        return self.ctx.clock.now_ms()

    def store_stats(self, account_id: str | None = None) -> StoreStats:
        """What the store holds: every account's (for the operator), or one account's."""
        return self.ctx.meta.store_stats(self.ctx.clock.now_ms(), account_id)

    def last_full_scrub_ms(self) -> int | None:
        last = self.ctx.meta.get_setting(LAST_FULL_SCRUB_KEY)
        return None if last is None else int(last)

    def ping_metadata(self) -> None:
        """Return if the metadata store answers now; raise if it does not."""
        self.ctx.meta.ping()

    def ping_blobs(self) -> None:
        """Return if the blob store answers now; raise if it does not."""
        self.ctx.blobs.ping()

    def requests_in_flight(self) -> int:
        return self.ctx.foreground.in_flight

    def jobs_waiting_for_copies(self) -> int:
        return self.ctx.meta.jobs_waiting_for_copies() if self.ctx.copies else 0

    def copy_store_names(self) -> list[str]:
        return sorted(self.ctx.copies)

    def ping_copy_store(self, name: str) -> None:
        """Return if the copy store answers now; raise if it does not."""
        self.ctx.copies[name].ping()

    # -- the server's life ----------------------------------------------------------------
    def start_up(self, orphan_grace_s: float) -> None:
        """What a server does before it serves: take back what it held when it stopped (when
        it is its store's only server), sweep what a crash left, expire and collect.

        A data directory is one server's alone (it holds the directory's lock), so what is
        unreferenced there now is a crash's leftover; a shared object store may hold another
        server's upload in flight, younger than the grace."""
        if self.ctx.meta.serves_one_server:
            self.ctx.meta.release_jobs(None)
            self.ctx.meta.release_copy_claims()
        # Another installation's store stops the start (the sweep of a copy store checks
        # it first; one that does not answer is checked again before it is swept or written).
        ensure_own_store(self.ctx.meta, "the server's own store", self.ctx.blobs)
        # Copy stores: only the store's only server (SQLite) knows no other is mid-copy.
        self.sweep_orphans(0.0 if self.ctx.blobs.opens_are_local else orphan_grace_s,
                           copy_grace_s=0.0 if self.ctx.meta.serves_one_server
                           else orphan_grace_s, stop_on_foreign=True)
        self.expire()
        self.collect_garbage()

    def close(self) -> None:
        self.ctx.meta.close()

    def expire(self) -> tuple[int, int]:
        """Forget jobs past their expiry and abort uploads idle too long."""
        now = self.ctx.clock.now_ms()
        timing = self.ctx.timing
        # A job is gone from the moment completed_at + expiry is reached (as JobService sees
        # it), i.e. completed_at <= now - expiry, i.e. completed_at < now - expiry + 1.
        jobs = self.ctx.meta.expire_jobs(now - timing.job_expiry_ms + 1)
        uploads = self.ctx.meta.expire_uploads(
            now - timing.upload_expiry_ms, now - timing.finished_upload_memory_ms
        )
        SessionService(self.ctx).forget_old()
        return jobs, uploads

    def copy_backlog(self) -> list[CopyBacklog]:
        """What each configured copy store (--copy-url) is still owed."""
        now = self.ctx.clock.now_ms()
        return [self.ctx.meta.copy_backlog(store, now) for store in sorted(self.ctx.copies)]

    def collect_garbage(self) -> int:
        """Delete the bytes the metadata no longer refers to. Safe to interrupt and rerun:
        bytes are deleted before their garbage entries, and deleting twice is harmless."""
        total = 0
        while True:
            items = self.ctx.meta.take_garbage(BATCH)
            if not items:
                return total
            for item in items:
                if item.kind is GarbageKind.BLOB:
                    self.ctx.blobs.delete(item.key)
                else:
                    self.ctx.blobs.delete_staging(item.key)
            self.ctx.meta.drop_garbage([item.seq for item in items])
            total += len(items)

    def sweep_orphans(self, grace_s: float = 0.0, copy_grace_s: float | None = None,
                      stop_on_foreign: bool = False) -> SweepReport:
        """Remove bytes no metadata refers to that were last written at least ``grace_s``
        seconds ago: what a crash left between writing bytes and recording them.

        A grace of 0 is only for a store no other server shares, at start-up, when no
        upload is in flight. With a store shared by several servers, another one's upload
        in flight (bytes written, metadata not yet recorded) is younger than any sensible
        grace, so it is left alone. ``copy_grace_s`` is the copy stores' (``grace_s`` when
        not given). A copy store of another installation is never swept; with
        ``stop_on_foreign`` (at start) it raises StoreOwnedElsewhereError."""
        temporary = self.ctx.blobs.sweep_temporary(grace_s)
        meta, hot = self.ctx.meta, self.ctx.blobs
        blobs = _sweep(list(hot.iter_keys(grace_s)), meta.blob_keys_in_use, hot.delete)
        staging = _sweep(list(hot.iter_staging_keys(grace_s)), meta.staging_keys_in_use,
                         hot.delete_staging)
        copy_grace = grace_s if copy_grace_s is None else copy_grace_s
        copies = sum(self._sweep_copies(name, copy_grace, stop_on_foreign)
                     for name in sorted(self.ctx.copies))
        report = SweepReport(temporary, blobs, staging, copies)
        if temporary or blobs or staging or copies:
            log.warning("removed orphaned data left by an earlier crash",
                        extra={"event": "orphans_swept", "temporary": temporary, "blobs": blobs,
                               "staging": staging, "copies": copies})
        return report

    def _sweep_copies(self, name: str, grace_s: float, stop_on_foreign: bool) -> int:
        """A copy store's objects no row names: a copy written by a server that died before
        recording it, or a bad copy since replaced."""
        store = self.ctx.copies[name]
        try:
            ensure_own_store(self.ctx.meta, f"the copy store {name}", store)
            removed = store.sweep_temporary(grace_s)
            keys = list(store.iter_keys(grace_s))
        except StoreOwnedElsewhereError as exc:
            if stop_on_foreign:
                raise
            log.error("not sweeping: %s", exc, extra={"event": "copy_store_not_ours",
                                                      "store": name})
            return 0
        except Exception as exc:  # noqa: BLE001 - any store client's error
            # A copy store that is down waits for the next sweep; it never stops the
            # server's start or its housekeeping.
            log.warning("cannot sweep the copy store %s: %s: %s", name, type(exc).__name__,
                        exc, extra={"event": "copy_store_unavailable", "store": name})
            return 0
        return removed + _sweep(
            keys, lambda batch: self.ctx.meta.copy_keys_in_use(name, batch), store.delete)


def _sweep(keys: list[str], in_use: Callable[[Sequence[str]], set[str]],
           delete: Callable[[str], None]) -> int:
    """Delete the ``keys`` no metadata names (asked a batch at a time); how many went."""
    removed = 0
    for i in range(0, len(keys), BATCH):
        batch = keys[i : i + BATCH]
        used = in_use(batch)
        for key in batch:
            if key not in used:
                delete(key)
                removed += 1
    return removed
