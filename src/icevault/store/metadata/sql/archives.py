"""Archives, their leaf hashes, and their integrity marks."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)

from icevault.core.models import (
    Archive,
    VaultRef,
)
from icevault.core.treehash import DIGEST_SIZE
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    ArchiveFilter,
    ArchivePort,
    DeleteArchiveOutcome,
)
from icevault.store.metadata.sql.engine import _ARCHIVE_COLUMNS, SqlEngine

DAY_MS = 24 * 3600 * 1000


class ArchiveRows(SqlEngine, ArchivePort):
    # -- archives -------------------------------------------------------------------------
    def insert_archive(self, archive: Archive, leaves: bytes) -> bool:
        with self._id_race(archive.id), self._tx(write=True) as conn:
            if not self._vault_exists(conn, archive.vault):
                return False
            self._insert_archive(conn, archive, leaves)
            return True

    def insert_archives(self, records: Sequence[tuple[Archive, bytes]]) -> bool:
        if not records:
            return True
        vaults = {archive.vault for archive, _ in records}
        with self._tx(write=True) as conn:
            if not all(self._vault_exists(conn, ref) for ref in vaults):
                return False
            conn.execute(insert(t.archives), [
                {"id": archive.id, "account_id": archive.vault.account_id,
                 "vault_name": archive.vault.name, "description": archive.description,
                 "size": archive.size, "tree_hash": archive.tree_hash, "leaf_hashes": leaves,
                 "blob_key": archive.blob_key, "created_at": archive.created_at,
                 "deleted_at": None, "stored_at": archive.stored_at}
                for archive, leaves in records
            ])
            for ref in vaults:
                mine = [archive for archive, _ in records if archive.vault == ref]
                conn.execute(
                    update(t.vaults).where(self._vault_where(ref)).values(
                        archive_count=t.vaults.c.archive_count + len(mine),
                        size_bytes=t.vaults.c.size_bytes + sum(a.size for a in mine),
                    )
                )
            return True

    def get_archive(self, ref: VaultRef, archive_id: str) -> Archive | None:
        rows = self._fast_rows(
            "archive", {"archive_id": archive_id, "account": ref.account_id, "name": ref.name}
        )
        return self._row_to_archive(rows[0]) if rows else None

    def get_archive_leaves(
        self, archive_id: str, first: int = 0, count: int | None = None
    ) -> bytes | None:
        if count is None:
            rows = self._fast_rows("archive_leaves", {"archive_id": archive_id})
            return bytes(rows[0].leaf_hashes)[first * DIGEST_SIZE:] if rows else None
        rows = self._fast_rows("archive_leaf_range", {
            "archive_id": archive_id, "from_byte": first * DIGEST_SIZE + 1,
            "byte_count": count * DIGEST_SIZE,
        })
        return bytes(rows[0].leaf_hashes) if rows else None

    def delete_archive(self, ref: VaultRef, archive_id: str, now: int) -> DeleteArchiveOutcome:
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(t.archives.c.size, t.archives.c.deleted_at).where(
                    t.archives.c.id == archive_id,
                    t.archives.c.account_id == ref.account_id,
                    t.archives.c.vault_name == ref.name,
                )
            ).first()
            if row is None:
                return DeleteArchiveOutcome.NOT_FOUND
            if row.deleted_at is not None:
                return DeleteArchiveOutcome.ALREADY_DELETED
            conn.execute(
                update(t.archives).where(t.archives.c.id == archive_id).values(deleted_at=now)
            )
            conn.execute(
                update(t.vaults)
                .where(self._vault_where(ref))
                .values(
                    archive_count=t.vaults.c.archive_count - 1,
                    size_bytes=t.vaults.c.size_bytes - row.size,
                )
            )
            self._release_archive_blob(conn, archive_id)
            return DeleteArchiveOutcome.DELETED

    def list_archives(
        self, ref: VaultRef, after_seq: int, start: int | None, end: int | None, limit: int,
        matching: ArchiveFilter | None = None,
    ) -> list[tuple[int, Archive]]:
        query = select(*_ARCHIVE_COLUMNS).where(
            t.archives.c.account_id == ref.account_id,
            t.archives.c.vault_name == ref.name,
            t.archives.c.deleted_at.is_(None),
            t.archives.c.seq > after_seq,
        )
        if start is not None:
            query = query.where(t.archives.c.created_at >= start)
        if end is not None:
            query = query.where(t.archives.c.created_at < end)
        if matching is not None:
            if matching.description:
                escaped = re.sub(r"([\\%_])", r"\\\1", matching.description)
                query = query.where(
                    t.archives.c.description.ilike(f"%{escaped}%", escape="\\"))
            if matching.min_size is not None:
                query = query.where(t.archives.c.size >= matching.min_size)
            if matching.max_size is not None:
                query = query.where(t.archives.c.size <= matching.max_size)
        query = query.order_by(t.archives.c.seq).limit(limit)
        with self._tx() as conn:
            return [(row.seq, self._row_to_archive(row)) for row in conn.execute(query)]

    def storage_history(self, account_id: str) -> list[tuple[int, int]]:
        day = t.archives.c.created_at // DAY_MS
        deleted_day = t.archives.c.deleted_at // DAY_MS
        mine = t.archives.c.account_id == account_id
        changes: dict[int, int] = {}
        with self._tx() as conn:
            added = conn.execute(
                select(day, func.sum(t.archives.c.size)).where(mine).group_by(day))
            for when, size in added:
                changes[int(when)] = changes.get(int(when), 0) + int(size)
            removed = conn.execute(
                select(deleted_day, func.sum(t.archives.c.size))
                .where(mine, t.archives.c.deleted_at.is_not(None)).group_by(deleted_day))
            for when, size in removed:
                changes[int(when)] = changes.get(int(when), 0) - int(size)
        return [(when * DAY_MS, change) for when, change in sorted(changes.items())]

    # -- integrity --------------------------------------------------------------------------
    def mark_archive_corrupt(self, archive_id: str, at: int, reason: str) -> bool:
        with self._tx(write=True) as conn:
            result = conn.execute(
                update(t.archives)
                .where(t.archives.c.id == archive_id, t.archives.c.corrupt_at.is_(None))
                .values(corrupt_at=at, corrupt_reason=reason)
            )
            return bool(result.rowcount)

    def mark_archive_verified(self, archive_id: str, at: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                update(t.archives).where(t.archives.c.id == archive_id).values(verified_at=at)
            )

    def stored_archives(
        self, after_seq: int, vault: VaultRef | None, limit: int
    ) -> list[tuple[int, Archive]]:
        query = select(*_ARCHIVE_COLUMNS).where(
            t.archives.c.seq > after_seq, t.archives.c.blob_key.is_not(None)
        )
        if vault is not None:
            query = query.where(
                t.archives.c.account_id == vault.account_id, t.archives.c.vault_name == vault.name
            )
        query = query.order_by(t.archives.c.seq).limit(limit)
        with self._tx() as conn:
            return [(row.seq, self._row_to_archive(row)) for row in conn.execute(query)]

    def corrupt_archives(self) -> list[Archive]:
        query = select(*_ARCHIVE_COLUMNS).where(t.archives.c.corrupt_at.is_not(None))
        with self._tx() as conn:
            return [self._row_to_archive(row) for row in conn.execute(query.order_by(t.archives.c.seq))]
