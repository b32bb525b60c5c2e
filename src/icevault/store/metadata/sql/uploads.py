"""Multipart uploads and their parts."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from icevault.core.models import (
    Archive,
    ArchiveImport,
    Part,
    Upload,
    UploadState,
    VaultRef,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    ArchiveIdTakenError,
    GarbageKind,
    UploadPort,
)
from icevault.store.metadata.sql.engine import _ARCHIVE_COLUMNS, SqlEngine

# Recording a part runs once per part uploaded: its statements are built once (composing
# them per call cost more than running them).
_LOCK_UPLOAD_STATE = (
    select(t.uploads.c.state).where(t.uploads.c.id == bindparam("upload_id")).with_for_update()
)
_DELETE_PART = delete(t.parts).where(
    t.parts.c.upload_id == bindparam("upload_id"), t.parts.c.range_start == bindparam("start")
)
_INSERT_PART = insert(t.parts)
_TOUCH_UPLOAD = (
    update(t.uploads).where(t.uploads.c.id == bindparam("upload_id"))
    .values(updated_at=bindparam("now"))
)


class UploadRows(SqlEngine, UploadPort):
    # -- multipart uploads ----------------------------------------------------------------
    @staticmethod
    def _row_to_upload(row: Any) -> Upload:
        return Upload(
            id=row.id,
            vault=VaultRef(row.account_id, row.vault_name),
            description=row.description,
            part_size=row.part_size,
            created_at=row.created_at,
            updated_at=row.updated_at,
            blob_key=row.staging_key,
            state=UploadState(row.state),
            archive_id=row.archive_id,
            declared_size=row.declared_size,
            imported=None if row.import_archive_id is None else ArchiveImport(
                row.import_archive_id, row.import_created_at),
        )

    def insert_upload(self, upload: Upload) -> bool:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, upload.vault):
                return False
            conn.execute(
                insert(t.uploads).values(
                    id=upload.id,
                    account_id=upload.vault.account_id,
                    vault_name=upload.vault.name,
                    description=upload.description,
                    part_size=upload.part_size,
                    created_at=upload.created_at,
                    updated_at=upload.updated_at,
                    staging_key=upload.blob_key,
                    state=upload.state,
                    archive_id=None,
                    import_archive_id=None if upload.imported is None else upload.imported.archive_id,
                    import_created_at=None if upload.imported is None else upload.imported.created_at,
                )
            )
            return True

    def get_upload(self, ref: VaultRef, upload_id: str) -> Upload | None:
        # Twice per part uploaded: a prebuilt read (see _Prepared).
        rows = self._fast_rows("upload", {"upload_id": upload_id, "account": ref.account_id,
                                          "name": ref.name})
        return self._row_to_upload(rows[0]) if rows else None

    def list_uploads(self, ref: VaultRef, start_id: str | None, limit: int) -> list[Upload]:
        query = select(t.uploads).where(
            t.uploads.c.account_id == ref.account_id,
            t.uploads.c.vault_name == ref.name,
            t.uploads.c.state == UploadState.OPEN,
        )
        if start_id is not None:
            query = query.where(t.uploads.c.id >= start_id)
        query = query.order_by(t.uploads.c.id).limit(limit)
        with self._tx() as conn:
            return [self._row_to_upload(row) for row in conn.execute(query)]

    def put_part(self, upload_id: str, part: Part, leaves: bytes, now: int) -> bool:
        with self._tx(write=True) as conn:
            # FOR UPDATE: a part recorded on one server and a completion on another are
            # ordered; a part recorded after the completion is refused.
            state = conn.execute(_LOCK_UPLOAD_STATE, {"upload_id": upload_id}).scalar()
            if state != UploadState.OPEN:
                return False
            conn.execute(_DELETE_PART, {"upload_id": upload_id, "start": part.start})
            conn.execute(_INSERT_PART, {
                "upload_id": upload_id, "range_start": part.start, "range_end": part.end,
                "tree_hash": part.tree_hash, "leaf_hashes": leaves, "blob_part": part.blob_part,
            })
            conn.execute(_TOUCH_UPLOAD, {"upload_id": upload_id, "now": now})
            return True

    def declare_upload_size(self, upload_id: str, size: int) -> int | None:
        with self._tx(write=True) as conn:
            conn.execute(
                update(t.uploads)
                .where(t.uploads.c.id == upload_id, t.uploads.c.declared_size.is_(None))
                .values(declared_size=size)
            )
            value = conn.execute(
                select(t.uploads.c.declared_size).where(t.uploads.c.id == upload_id)
            ).scalar()
            return None if value is None else int(value)

    def list_parts(self, upload_id: str, start: int, limit: int) -> list[Part]:
        query = (
            select(t.parts.c.range_start, t.parts.c.range_end, t.parts.c.tree_hash)
            .where(t.parts.c.upload_id == upload_id, t.parts.c.range_start >= start)
            .order_by(t.parts.c.range_start)
            .limit(limit)
        )
        with self._tx() as conn:
            return [Part(r.range_start, r.range_end, r.tree_hash) for r in conn.execute(query)]

    def part_leaves(self, upload_id: str) -> list[tuple[Part, bytes]]:
        query = (
            select(t.parts)
            .where(t.parts.c.upload_id == upload_id)
            .order_by(t.parts.c.range_start)
        )
        with self._tx() as conn:
            return [
                (Part(r.range_start, r.range_end, r.tree_hash, r.blob_part), bytes(r.leaf_hashes))
                for r in conn.execute(query)
            ]

    def complete_upload(self, upload: Upload, archive: Archive, leaves: bytes) -> Archive | None:
        with self._id_race(archive.id), self._tx(write=True) as conn:
            # FOR UPDATE: of two completions on two servers, the second waits and then
            # finds the upload completed (never two archives from one upload).
            row = conn.execute(
                select(t.uploads).where(t.uploads.c.id == upload.id).with_for_update()
            ).first()
            if row is None:
                return None
            if row.state == UploadState.COMPLETED:
                existing = conn.execute(
                    select(*_ARCHIVE_COLUMNS).where(t.archives.c.id == row.archive_id)
                ).first()
                return None if existing is None else self._row_to_archive(existing)
            if row.state != UploadState.OPEN or not self._vault_exists(conn, upload.vault):
                return None
            try:
                self._insert_archive(conn, archive, leaves)
            except ArchiveIdTakenError as taken:
                if not taken.same_as(archive):
                    raise
                # The same import again (a migration resumed after its first completion):
                # this upload completes onto the archive already there.
                archive = taken.existing
            conn.execute(
                update(t.uploads)
                .where(t.uploads.c.id == upload.id)
                .values(state=UploadState.COMPLETED, archive_id=archive.id,
                        updated_at=archive.created_at)
            )
            conn.execute(delete(t.parts).where(t.parts.c.upload_id == upload.id))
            self._garbage(conn, GarbageKind.STAGING, row.staging_key)
            return archive

    def abort_upload(self, ref: VaultRef, upload_id: str, now: int) -> Upload | None:
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(t.uploads).where(
                    t.uploads.c.id == upload_id,
                    t.uploads.c.account_id == ref.account_id,
                    t.uploads.c.vault_name == ref.name,
                )
            ).first()
            if row is None:
                return None
            if row.state == UploadState.OPEN:
                self._abort(conn, row.id, row.staging_key, now)
                return replace(self._row_to_upload(row), state=UploadState.ABORTED)
            return self._row_to_upload(row)

    def _abort(self, conn: Connection, upload_id: str, staging_key: str, now: int) -> None:
        conn.execute(
            update(t.uploads)
            .where(t.uploads.c.id == upload_id)
            .values(state=UploadState.ABORTED, updated_at=now)
        )
        conn.execute(delete(t.parts).where(t.parts.c.upload_id == upload_id))
        self._garbage(conn, GarbageKind.STAGING, staging_key)

    def expire_uploads(self, idle_before: int, finished_before: int) -> int:
        with self._tx(write=True) as conn:
            idle = conn.execute(
                select(t.uploads.c.id, t.uploads.c.staging_key).where(
                    t.uploads.c.state == UploadState.OPEN, t.uploads.c.updated_at < idle_before
                )
                # Locked, and skipped when another server's housekeeping or a part being
                # recorded holds it: PostgreSQL re-checks the idle time on the row it locks.
                .with_for_update(skip_locked=True)
            ).all()
            for row in idle:
                self._abort(conn, row.id, row.staging_key, idle_before)
            conn.execute(
                delete(t.uploads).where(
                    t.uploads.c.state != UploadState.OPEN,
                    t.uploads.c.updated_at < finished_before,
                )
            )
            return len(idle)
