"""Retrieval jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from icevault.core.models import (
    InventoryFormat,
    InventoryParams,
    Job,
    JobAction,
    JobStatus,
    Tier,
    VaultRef,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    GarbageKind,
    JobCompletion,
    JobPort,
    NotificationClaim,
)
from icevault.store.metadata.sql.engine import SqlEngine


class JobRows(SqlEngine, JobPort):
    # -- jobs -----------------------------------------------------------------------------
    @staticmethod
    def _row_to_job(row: Any) -> Job:
        inventory = None
        if row.action == JobAction.INVENTORY_RETRIEVAL:
            inventory = InventoryParams(
                format=InventoryFormat(row.inv_format),
                start_date=row.inv_start,
                end_date=row.inv_end,
                limit=row.inv_limit,
                marker=row.inv_marker,
            )
        return Job(
            id=row.id,
            vault=VaultRef(row.account_id, row.vault_name),
            action=JobAction(row.action),
            status=JobStatus(row.status),
            created_at=row.created_at,
            ready_at=row.ready_at,
            description=row.description,
            sns_topic=row.sns_topic,
            tier=None if row.tier is None else Tier(row.tier),
            archive_id=row.archive_id,
            archive_size=row.archive_size,
            archive_tree_hash=row.archive_tree_hash,
            retrieval_start=row.retrieval_start,
            retrieval_end=row.retrieval_end,
            range_tree_hash=row.range_tree_hash,
            inventory=inventory,
            inventory_marker_out=row.inv_marker_out,
            status_message=row.status_message,
            completed_at=row.completed_at,
            output_blob_key=row.output_blob_key,
            source_store=row.source_store,
            source_key=row.source_key,
            output_size=row.output_size,
            seq=row.seq,
        )

    def insert_job(self, job: Job) -> bool:
        inv = job.inventory
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, job.vault):
                return False
            conn.execute(
                insert(t.jobs).values(
                    id=job.id,
                    account_id=job.vault.account_id,
                    vault_name=job.vault.name,
                    action=job.action,
                    status=job.status,
                    created_at=job.created_at,
                    ready_at=job.ready_at,
                    description=job.description,
                    sns_topic=job.sns_topic,
                    tier=job.tier,
                    archive_id=job.archive_id,
                    archive_size=job.archive_size,
                    archive_tree_hash=job.archive_tree_hash,
                    retrieval_start=job.retrieval_start,
                    retrieval_end=job.retrieval_end,
                    range_tree_hash=job.range_tree_hash,
                    inv_format=None if inv is None else inv.format,
                    inv_start=None if inv is None else inv.start_date,
                    inv_end=None if inv is None else inv.end_date,
                    inv_limit=None if inv is None else inv.limit,
                    inv_marker=None if inv is None else inv.marker,
                )
            )
            return True

    def get_job(self, ref: VaultRef, job_id: str) -> Job | None:
        rows = self._fast_rows("job", {"job_id": job_id, "account": ref.account_id, "name": ref.name})
        return self._row_to_job(rows[0]) if rows else None

    def list_jobs(
        self,
        ref: VaultRef,
        *,
        completed: bool | None,
        status: JobStatus | None,
        start_seq: int | None,
        limit: int,
    ) -> list[Job]:
        query = select(t.jobs).where(
            t.jobs.c.account_id == ref.account_id, t.jobs.c.vault_name == ref.name
        )
        if completed is True:
            query = query.where(t.jobs.c.status != JobStatus.IN_PROGRESS)
        elif completed is False:
            query = query.where(t.jobs.c.status == JobStatus.IN_PROGRESS)
        if status is not None:
            query = query.where(t.jobs.c.status == status)
        if start_seq is not None:
            query = query.where(t.jobs.c.seq >= start_seq)
        query = query.order_by(t.jobs.c.seq).limit(limit)
        with self._tx() as conn:
            return [self._row_to_job(row) for row in conn.execute(query)]

    def _claim(self, condition: Any, order: Sequence[Any], limit: int,
               values: dict[str, Any]) -> list[Any]:
        """Take up to ``limit`` job rows meeting ``condition`` that no other transaction
        holds, set ``values`` on them, and return them as they are then. SKIP LOCKED:
        servers claiming at once each take other rows instead of queueing on the same ones
        (SQLite has one writer at a time and ignores it)."""
        # Looked for with a plain read first: the workers ask every second, and mostly
        # nothing is due, which must not take SQLite's write lock each time.
        with self._tx() as conn:
            if conn.execute(select(t.jobs.c.seq).where(condition).limit(1)).first() is None:
                return []
        due = (select(t.jobs.c.seq).where(condition).order_by(*order).limit(limit)
               .with_for_update(skip_locked=True))
        with self._tx(write=True) as conn:
            seqs = list(conn.execute(due).scalars())
            if not seqs:
                return []
            conn.execute(update(t.jobs).where(t.jobs.c.seq.in_(seqs)).values(**values))
            return list(conn.execute(
                select(t.jobs).where(t.jobs.c.seq.in_(seqs)).order_by(*order)))

    def claim_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        rows = self._claim(
            and_(t.jobs.c.status == JobStatus.IN_PROGRESS, t.jobs.c.ready_at <= now,
                 or_(t.jobs.c.lease_until.is_(None), t.jobs.c.lease_until <= now)),
            (t.jobs.c.ready_at, t.jobs.c.seq), limit, {"lease_until": now + lease_ms})
        return [self._row_to_job(row) for row in rows]

    def renew_job_leases(self, job_ids: Sequence[str], until: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(t.jobs).where(
                t.jobs.c.id.in_(list(job_ids)), t.jobs.c.status == JobStatus.IN_PROGRESS,
                t.jobs.c.lease_until.is_not(None)).values(lease_until=until))

    def next_due_time(self) -> int | None:
        # A job another server holds is due again when its lease ends.
        due_at = case(
            (t.jobs.c.lease_until > t.jobs.c.ready_at, t.jobs.c.lease_until),
            else_=t.jobs.c.ready_at,
        )
        with self._tx() as conn:
            return conn.execute(
                select(func.min(due_at)).where(t.jobs.c.status == JobStatus.IN_PROGRESS)
            ).scalar()

    def defer_job(self, job_id: str, ready_at: int, message: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(t.jobs).where(t.jobs.c.id == job_id,
                                              t.jobs.c.status == JobStatus.IN_PROGRESS)
                         .values(ready_at=ready_at, lease_until=None, status_message=message))

    def release_jobs(self, job_ids: list[str] | None) -> None:
        with self._tx(write=True) as conn:
            if job_ids is None:
                conn.execute(update(t.jobs).where(t.jobs.c.lease_until.is_not(None))
                             .values(lease_until=None))
                # Due now, whether held or waiting for a retry.
                conn.execute(update(t.jobs).where(t.jobs.c.notify_at.is_not(None))
                             .values(notify_at=0))
                return
            conn.execute(
                update(t.jobs)
                .where(t.jobs.c.id.in_(job_ids), t.jobs.c.status == JobStatus.IN_PROGRESS)
                .values(lease_until=None)
            )

    def finish_job(self, job_id: str, completion: JobCompletion) -> Job | None:
        with self._tx(write=True) as conn:
            # FOR UPDATE: a second server finishing the same job waits here, then sees it
            # finished.
            row = conn.execute(
                select(t.jobs).where(t.jobs.c.id == job_id).with_for_update()
            ).first()
            if row is None or row.status != JobStatus.IN_PROGRESS:
                if completion.output_blob_key is not None:
                    self._garbage(conn, GarbageKind.BLOB, completion.output_blob_key)
                return None
            status, message = completion.status, completion.message
            if row.action == JobAction.ARCHIVE_RETRIEVAL and status is JobStatus.SUCCEEDED:
                archive = conn.execute(
                    select(
                        t.archives.c.deleted_at, t.archives.c.blob_key, t.archives.c.corrupt_at,
                        t.archives.c.hot_evicted_at,
                    ).where(t.archives.c.id == row.archive_id)
                ).first()
                served_from_copy = (completion.source_store is not None and archive is not None
                                    and archive.hot_evicted_at is not None)
                if archive is None or archive.deleted_at is not None or (
                        archive.blob_key is None and not served_from_copy):
                    status, message = JobStatus.FAILED, "The archive was deleted before the job ran"
                elif archive.corrupt_at is not None:
                    status, message = (
                        JobStatus.FAILED, "The archive's stored bytes failed verification"
                    )
            values: dict[str, Any] = {
                "status": status,
                "status_message": message,
                "completed_at": completion.completed_at,
                "lease_until": None,
                "notify_at": completion.completed_at,
            }
            if status is JobStatus.SUCCEEDED:
                values["output_blob_key"] = completion.output_blob_key
                values["output_size"] = completion.output_size
                values["inv_marker_out"] = completion.inventory_marker_out
                values["source_store"] = completion.source_store
                values["source_key"] = completion.source_key
            elif completion.output_blob_key is not None:
                self._garbage(conn, GarbageKind.BLOB, completion.output_blob_key)
            conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(**values))
            if row.action == JobAction.INVENTORY_RETRIEVAL and status is JobStatus.SUCCEEDED:
                conn.execute(
                    update(t.vaults)
                    .where(
                        t.vaults.c.account_id == row.account_id, t.vaults.c.name == row.vault_name
                    )
                    .values(last_inventory_at=completion.completed_at)
                )
            done = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).one()
            return self._row_to_job(done)

    def claim_notifications(self, now: int, limit: int, lease_ms: int) -> list[NotificationClaim]:
        rows = self._claim(
            t.jobs.c.notify_at <= now, (t.jobs.c.notify_at, t.jobs.c.seq), limit,
            {"notify_at": now + lease_ms, "notify_attempts": t.jobs.c.notify_attempts + 1})
        return [NotificationClaim(self._row_to_job(row), row.notify_attempts) for row in rows]

    def settle_notification(self, job_id: str, retry_at: int | None) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(notify_at=retry_at))

    def expire_jobs(self, completed_before: int) -> int:
        with self._tx(write=True) as conn:
            rows = conn.execute(
                select(t.jobs.c.id, t.jobs.c.action, t.jobs.c.archive_id, t.jobs.c.output_blob_key)
                .where(
                    t.jobs.c.status != JobStatus.IN_PROGRESS,
                    t.jobs.c.completed_at < completed_before,
                )
                # Two servers expiring at once each take other rows, never the same twice.
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                conn.execute(delete(t.jobs).where(t.jobs.c.id == row.id))
                if row.output_blob_key is not None:
                    self._garbage(conn, GarbageKind.BLOB, row.output_blob_key)
            for archive_id in {r.archive_id for r in rows if r.archive_id is not None}:
                self._release_archive_blob(conn, archive_id)
            return len(rows)

    def retrieval_bytes_since(self, account_id: str, since: int) -> int:
        with self._tx() as conn:
            total = conn.execute(
                select(func.sum(t.jobs.c.retrieval_end - t.jobs.c.retrieval_start + 1)).where(
                    t.jobs.c.account_id == account_id,
                    t.jobs.c.action == JobAction.ARCHIVE_RETRIEVAL,
                    t.jobs.c.created_at >= since,
                )
            ).scalar()
        return int(total or 0)
