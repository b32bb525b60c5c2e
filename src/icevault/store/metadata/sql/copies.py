"""Rows of ``archive_copies``: which archives each copy store holds, owes or is being given.

A claim is one conditional statement per archive (an insert that does nothing on a
conflict, or an update guarded by the row's state and lease), so servers claiming at once
never both take the same copy, on SQLite or PostgreSQL, without holding row locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from icevault.core.models import Archive, JobStatus, VaultRef
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import GarbageKind
from icevault.store.metadata.copy_port import ArchiveCopy, CopyBacklog, CopyPort, CopyState
from icevault.store.metadata.sql.engine import _ARCHIVE_COLUMNS, SqlEngine

_COPY = t.archive_copies


def _row_to_copy(row: Any) -> ArchiveCopy:
    return ArchiveCopy(archive_id=row.archive_id, store=row.store, state=CopyState(row.state),
                       blob_key=row.blob_key, attempts=row.attempts, error=row.error,
                       updated_at=row.updated_at, retry_at=row.retry_at,
                       restore_requested_at=row.restore_requested_at,
                       restored_until=row.restored_until)


def _owed(store: str, now: int) -> tuple[Any, Any]:
    """Archives owing ``store`` a copy that no live claim is making: the join and the
    condition."""
    joined = t.archives.outerjoin(
        _COPY, and_(_COPY.c.archive_id == t.archives.c.id, _COPY.c.store == store))
    condition = and_(
        t.archives.c.blob_key.is_not(None), t.archives.c.deleted_at.is_(None),
        t.archives.c.corrupt_at.is_(None),
        or_(_COPY.c.archive_id.is_(None),
            and_(_COPY.c.state == CopyState.COPYING, _COPY.c.claimed_until <= now),
            and_(_COPY.c.state == CopyState.FAILED, _COPY.c.retry_at <= now)))
    return joined, condition


class CopyRows(SqlEngine, CopyPort):
    def claim_owed_copies(self, store: str, now: int, lease_ms: int,
                          limit: int) -> list[tuple[Archive, int]]:
        joined, condition = _owed(store, now)
        query = (select(*_ARCHIVE_COLUMNS, _COPY.c.state, _COPY.c.attempts)
                 .select_from(joined).where(condition)
                 .order_by(t.archives.c.seq).limit(limit))
        with self._tx() as conn:  # a plain read first: mostly nothing is owed
            candidates = list(conn.execute(query))
        if not candidates:
            return []
        claimed: list[tuple[Archive, int]] = []
        with self._tx(write=True) as conn:
            for row in candidates:
                if self._claim_one(conn, row.id, row.state, store, now, lease_ms):
                    claimed.append((self._row_to_archive(row), row.attempts or 0))
        return claimed

    def _claim_one(self, conn: Connection, archive_id: str, state: str | None, store: str,
                   now: int, lease_ms: int) -> bool:
        values = {"state": CopyState.COPYING, "claimed_until": now + lease_ms,
                  "updated_at": now}
        # RETURNING says whether this statement took the row (an insert that met another
        # server's row does nothing), the same way on both databases.
        if state is None:
            insert = (sqlite.insert if self._is_sqlite else postgresql.insert)(_COPY)
            result = conn.execute(insert.values(
                archive_id=archive_id, store=store, attempts=0, **values,
            ).on_conflict_do_nothing().returning(_COPY.c.archive_id))
        else:
            result = conn.execute(
                update(_COPY).where(
                    _COPY.c.archive_id == archive_id, _COPY.c.store == store,
                    or_(and_(_COPY.c.state == CopyState.COPYING, _COPY.c.claimed_until <= now),
                        and_(_COPY.c.state == CopyState.FAILED, _COPY.c.retry_at <= now)))
                .values(**values).returning(_COPY.c.archive_id))
        return result.first() is not None

    def renew_copy_claims(self, store: str, archive_ids: Sequence[str], until: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(_COPY).where(
                _COPY.c.store == store, _COPY.c.archive_id.in_(list(archive_ids)),
                _COPY.c.state == CopyState.COPYING).values(claimed_until=until))

    def finish_copy(self, archive_id: str, store: str, now: int, blob_key: str | None,
                    error: str | None, retry_at: int | None) -> bool:
        with self._tx(write=True) as conn:
            live = conn.execute(select(t.archives.c.id).where(
                t.archives.c.id == archive_id, t.archives.c.deleted_at.is_(None))).first()
            if live is None:
                return False
            state = CopyState.VERIFIED if blob_key is not None else CopyState.FAILED
            # Only a claim still held is finished: a server slower than its lease finds the
            # copy taken over (by another, whose object counts) and deletes its own.
            taken = conn.execute(
                update(_COPY).where(_COPY.c.archive_id == archive_id, _COPY.c.store == store,
                                    _COPY.c.state == CopyState.COPYING)
                .values(state=state, blob_key=blob_key, claimed_until=None, retry_at=retry_at,
                        error=error, attempts=_COPY.c.attempts + 1, updated_at=now)
                .returning(_COPY.c.archive_id)).first()
            return taken is not None

    def record_verified_copy(self, archive_id: str, store: str, blob_key: str,
                             now: int) -> None:
        insert = (sqlite.insert if self._is_sqlite else postgresql.insert)(_COPY)
        values = {"state": CopyState.VERIFIED, "blob_key": blob_key, "claimed_until": None,
                  "retry_at": None, "error": None, "updated_at": now}
        with self._tx(write=True) as conn:
            conn.execute(insert.values(archive_id=archive_id, store=store, attempts=1, **values)
                         .on_conflict_do_update(index_elements=["archive_id", "store"],
                                                set_=values))

    def release_copy_claims(self) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(_COPY).where(_COPY.c.state == CopyState.COPYING)
                         .values(claimed_until=0))

    def archive_copies(self, archive_id: str) -> list[ArchiveCopy]:
        with self._tx() as conn:
            rows = conn.execute(select(_COPY).where(_COPY.c.archive_id == archive_id)
                                .order_by(_COPY.c.store))
            return [_row_to_copy(row) for row in rows]

    def vault_copies(self, ref: VaultRef, after_seq: int,
                     limit: int) -> list[tuple[int, Archive, list[ArchiveCopy]]]:
        query = (select(*_ARCHIVE_COLUMNS).where(
            t.archives.c.account_id == ref.account_id, t.archives.c.vault_name == ref.name,
            t.archives.c.deleted_at.is_(None), t.archives.c.seq > after_seq)
            .order_by(t.archives.c.seq).limit(limit))
        with self._tx() as conn:
            archives = [(row.seq, self._row_to_archive(row)) for row in conn.execute(query)]
            ids = [archive.id for _, archive in archives]
            copies: dict[str, list[ArchiveCopy]] = {}
            if ids:
                for row in conn.execute(select(_COPY).where(_COPY.c.archive_id.in_(ids))
                                        .order_by(_COPY.c.store)):
                    copies.setdefault(row.archive_id, []).append(_row_to_copy(row))
        return [(seq, archive, copies.get(archive.id, [])) for seq, archive in archives]

    def copy_backlog(self, store: str, now: int) -> CopyBacklog:
        joined = t.archives.outerjoin(
            _COPY, and_(_COPY.c.archive_id == t.archives.c.id, _COPY.c.store == store))
        owed = and_(t.archives.c.blob_key.is_not(None), t.archives.c.deleted_at.is_(None),
                    t.archives.c.corrupt_at.is_(None),
                    or_(_COPY.c.archive_id.is_(None), _COPY.c.state != CopyState.VERIFIED))
        with self._tx() as conn:
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(t.archives.c.size), 0),
                       func.min(t.archives.c.created_at)).select_from(joined).where(owed)
            ).one()
        return CopyBacklog(store, int(row[0]), int(row[1]),
                           None if row[2] is None else int(row[2]))

    def copy_stores(self) -> list[str]:
        with self._tx() as conn:
            return list(conn.execute(select(_COPY.c.store).distinct().order_by(_COPY.c.store))
                        .scalars())

    def mark_copy_failed(self, archive_id: str, store: str, now: int, error: str) -> None:
        with self._tx(write=True) as conn:
            old = conn.execute(select(_COPY.c.blob_key).where(
                _COPY.c.archive_id == archive_id, _COPY.c.store == store,
                _COPY.c.state == CopyState.VERIFIED)).first()
            if old is None:
                return
            # The bad object is kept until the new copy replaces the row's key; it is then
            # an orphan the store's sweep removes.
            conn.execute(
                update(_COPY).where(_COPY.c.archive_id == archive_id, _COPY.c.store == store)
                .values(state=CopyState.FAILED, retry_at=now, error=error, updated_at=now,
                        claimed_until=None))

    def replace_archive_blob(self, archive_id: str, old_key: str, new_key: str,
                             now: int) -> bool:
        with self._tx(write=True) as conn:
            changed = conn.execute(
                update(t.archives).where(t.archives.c.id == archive_id,
                                         t.archives.c.blob_key == old_key)
                .values(blob_key=new_key, corrupt_at=None, corrupt_reason=None,
                        verified_at=now)).rowcount
            if changed != 1:
                return False
            self._garbage(conn, GarbageKind.BLOB, old_key)
            return True

    def evictable_archives(self, stores: Sequence[str], verified_before: int,
                           limit: int) -> list[Archive]:
        if not stores:
            return []
        verified = [
            select(_COPY.c.archive_id).where(
                _COPY.c.archive_id == t.archives.c.id, _COPY.c.store == store,
                _COPY.c.state == CopyState.VERIFIED, _COPY.c.updated_at <= verified_before,
            ).exists()
            for store in stores]
        reading = select(t.jobs.c.seq).where(
            t.jobs.c.archive_id == t.archives.c.id,
            t.jobs.c.status.in_([JobStatus.IN_PROGRESS, JobStatus.SUCCEEDED])).exists()
        query = (select(*_ARCHIVE_COLUMNS).where(
            t.archives.c.blob_key.is_not(None), t.archives.c.deleted_at.is_(None),
            t.archives.c.corrupt_at.is_(None), *verified, ~reading)
            .order_by(t.archives.c.seq).limit(limit))
        with self._tx() as conn:
            return [self._row_to_archive(row) for row in conn.execute(query)]

    def evict_hot(self, archive_id: str, blob_key: str, now: int) -> bool:
        with self._tx(write=True) as conn:
            taken = conn.execute(
                update(t.archives).where(t.archives.c.id == archive_id,
                                         t.archives.c.blob_key == blob_key,
                                         t.archives.c.deleted_at.is_(None))
                .values(blob_key=None, hot_evicted_at=now)
                .returning(t.archives.c.id)).first()
            if taken is None:
                return False
            self._garbage(conn, GarbageKind.BLOB, blob_key)
            return True

    def rehydrate(self, archive_id: str, blob_key: str, now: int) -> bool:
        with self._tx(write=True) as conn:
            return conn.execute(
                update(t.archives).where(t.archives.c.id == archive_id,
                                         t.archives.c.blob_key.is_(None),
                                         t.archives.c.deleted_at.is_(None))
                .values(blob_key=blob_key, hot_evicted_at=None, verified_at=now)
                .returning(t.archives.c.id)).first() is not None

    def note_restore_requested(self, archive_id: str, store: str, now: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(_COPY).where(_COPY.c.archive_id == archive_id,
                                             _COPY.c.store == store)
                         .values(restore_requested_at=now))

    def note_restored(self, archive_id: str, store: str, until: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(_COPY).where(_COPY.c.archive_id == archive_id,
                                             _COPY.c.store == store)
                         .values(restored_until=until))

    def jobs_waiting_for_copies(self) -> int:
        query = (select(func.count()).select_from(t.jobs.join(
            t.archives, t.archives.c.id == t.jobs.c.archive_id)).where(
            t.jobs.c.status == JobStatus.IN_PROGRESS, t.archives.c.blob_key.is_(None),
            t.archives.c.hot_evicted_at.is_not(None), t.archives.c.deleted_at.is_(None)))
        with self._tx() as conn:
            return int(conn.execute(query).scalar() or 0)

    def copies_to_drop(self, limit: int) -> list[ArchiveCopy]:
        with self._tx() as conn:
            rows = conn.execute(select(_COPY).where(_COPY.c.state == CopyState.DROPPING)
                                .limit(limit))
            return [_row_to_copy(row) for row in rows]

    def drop_copies(self, copies: Sequence[tuple[str, str]]) -> None:
        with self._tx(write=True) as conn:
            for archive_id, store in copies:
                conn.execute(delete(_COPY).where(_COPY.c.archive_id == archive_id,
                                                 _COPY.c.store == store))

    def copy_keys_in_use(self, store: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        with self._tx() as conn:
            return set(conn.execute(select(_COPY.c.blob_key).where(
                _COPY.c.store == store, _COPY.c.blob_key.in_(list(keys)))).scalars())
