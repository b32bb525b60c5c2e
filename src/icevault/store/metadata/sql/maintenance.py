"""The garbage list, server-wide settings, and what the orphan sweeps ask."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Table,
    delete,
    func,
    insert,
    select,
)

from icevault.core.models import (
    JobStatus,
    UploadState,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    GarbageItem,
    GarbageKind,
    MaintenancePort,
    StoreStats,
)
from icevault.store.metadata.sql.engine import SqlEngine


class MaintenanceRows(SqlEngine, MaintenancePort):
    # -- health and metrics ---------------------------------------------------------------
    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute(select(1)).scalar()

    def store_stats(self, now: int, account_id: str | None = None) -> StoreStats:
        def mine(table: Table) -> list[ColumnElement[bool]]:
            return [] if account_id is None else [table.c.account_id == account_id]

        live = t.archives.c.deleted_at.is_(None)
        with self._tx() as conn:
            count, total = conn.execute(
                select(func.count(), func.coalesce(func.sum(t.archives.c.size), 0))
                .where(live, *mine(t.archives))
            ).one()
            corrupt = conn.execute(select(func.count()).where(
                live, t.archives.c.corrupt_at.is_not(None), *mine(t.archives))).scalar_one()
            jobs = {str(status): int(n) for status, n in conn.execute(
                select(t.jobs.c.status, func.count()).where(*mine(t.jobs))
                .group_by(t.jobs.c.status))}
            uploads = conn.execute(select(func.count()).where(
                t.uploads.c.state == UploadState.OPEN, *mine(t.uploads))).scalar_one()
            oldest = conn.execute(select(func.min(t.jobs.c.ready_at)).where(
                t.jobs.c.status == JobStatus.IN_PROGRESS, t.jobs.c.ready_at <= now,
                *mine(t.jobs))).scalar()
        return StoreStats(int(count), int(total), int(corrupt), jobs, int(uploads),
                          None if oldest is None else int(oldest))

    # -- garbage --------------------------------------------------------------------------
    def enqueue_garbage(self, kind: GarbageKind, key: str) -> None:
        with self._tx(write=True) as conn:
            self._garbage(conn, kind, key)

    def take_garbage(self, limit: int) -> list[GarbageItem]:
        with self._tx() as conn:
            rows = conn.execute(select(t.garbage).order_by(t.garbage.c.seq).limit(limit))
            return [GarbageItem(r.seq, GarbageKind(r.kind), r.key) for r in rows]

    def drop_garbage(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._tx(write=True) as conn:
            conn.execute(delete(t.garbage).where(t.garbage.c.seq.in_(list(seqs))))

    def blob_keys_in_use(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        wanted = list(keys)
        with self._tx() as conn:
            used = {
                r[0]
                for r in conn.execute(
                    select(t.archives.c.blob_key).where(t.archives.c.blob_key.in_(wanted))
                )
            }
            used |= {
                r[0]
                for r in conn.execute(
                    select(t.jobs.c.output_blob_key).where(t.jobs.c.output_blob_key.in_(wanted))
                )
            }
        return used

    def staging_keys_in_use(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        with self._tx() as conn:
            return {
                r[0]
                for r in conn.execute(
                    select(t.uploads.c.staging_key).where(
                        t.uploads.c.staging_key.in_(list(keys)),
                        t.uploads.c.state == UploadState.OPEN,
                    )
                )
            }

    def get_setting(self, key: str) -> str | None:
        with self._tx() as conn:
            value = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).scalar()
            return None if value is None else str(value)

    def set_setting(self, key: str, value: str | None) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(t.settings).where(t.settings.c.key == key))
            if value is not None:
                conn.execute(insert(t.settings).values(key=key, value=value))
