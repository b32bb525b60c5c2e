"""Vaults and their tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from icevault.core.models import (
    UploadState,
    Vault,
    VaultRef,
)
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    DeleteVaultOutcome,
    GarbageKind,
    VaultPort,
)
from icevault.store.metadata.sql.engine import SqlEngine


class VaultRows(SqlEngine, VaultPort):
    # -- vaults ---------------------------------------------------------------------------
    @staticmethod
    def _row_to_vault(row: Any) -> Vault:
        return Vault(
            ref=VaultRef(row.account_id, row.name),
            created_at=row.created_at,
            archive_count=row.archive_count,
            size_bytes=row.size_bytes,
            last_inventory_at=row.last_inventory_at,
        )

    def create_vault(self, ref: VaultRef, now: int, max_vaults: int) -> bool:
        try:
            return self._create_vault(ref, now, max_vaults)
        except IntegrityError:
            # Created concurrently by another server (PostgreSQL runs writers in parallel):
            # CreateVault is idempotent, so that is success.
            return True

    def _create_vault(self, ref: VaultRef, now: int, max_vaults: int) -> bool:
        with self._tx(write=True) as conn:
            if self._vault_exists(conn, ref):
                return True
            count = conn.execute(
                select(func.count()).select_from(t.vaults).where(
                    t.vaults.c.account_id == ref.account_id
                )
            ).scalar_one()
            if count >= max_vaults:
                return False
            conn.execute(
                insert(t.vaults).values(
                    account_id=ref.account_id,
                    name=ref.name,
                    created_at=now,
                    archive_count=0,
                    size_bytes=0,
                    last_inventory_at=None,
                )
            )
            return True

    def get_vault(self, ref: VaultRef) -> Vault | None:
        rows = self._fast_rows("vault", {"account": ref.account_id, "name": ref.name})
        return self._row_to_vault(rows[0]) if rows else None

    def list_vaults(self, account_id: str, start_name: str | None, limit: int) -> list[Vault]:
        query = select(t.vaults).where(t.vaults.c.account_id == account_id)
        if start_name is not None:
            query = query.where(t.vaults.c.name >= start_name)
        query = query.order_by(t.vaults.c.name).limit(limit)
        with self._tx() as conn:
            return [self._row_to_vault(row) for row in conn.execute(query)]

    def delete_vault(self, ref: VaultRef, *, with_contents: bool = False) -> DeleteVaultOutcome:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return DeleteVaultOutcome.NOT_FOUND
            in_vault_a = and_(
                t.archives.c.account_id == ref.account_id, t.archives.c.vault_name == ref.name
            )
            in_vault_u = and_(
                t.uploads.c.account_id == ref.account_id, t.uploads.c.vault_name == ref.name
            )
            in_vault_j = and_(
                t.jobs.c.account_id == ref.account_id, t.jobs.c.vault_name == ref.name
            )
            live = conn.execute(
                select(t.archives.c.seq).where(in_vault_a, t.archives.c.deleted_at.is_(None))
            ).first()
            open_upload = conn.execute(
                select(t.uploads.c.id).where(in_vault_u, t.uploads.c.state == UploadState.OPEN)
            ).first()
            if not with_contents and (live is not None or open_upload is not None):
                return DeleteVaultOutcome.NOT_EMPTY
            for (key,) in conn.execute(
                select(t.uploads.c.staging_key).where(
                    in_vault_u, t.uploads.c.state == UploadState.OPEN
                )
            ):
                self._garbage(conn, GarbageKind.STAGING, key)
            # Everything the vault owned goes, and every blob it kept alive is reclaimed.
            for (key,) in conn.execute(
                select(t.jobs.c.output_blob_key).where(
                    in_vault_j, t.jobs.c.output_blob_key.is_not(None)
                )
            ):
                self._garbage(conn, GarbageKind.BLOB, key)
            for (key,) in conn.execute(
                select(t.archives.c.blob_key).where(in_vault_a, t.archives.c.blob_key.is_not(None))
            ):
                self._garbage(conn, GarbageKind.BLOB, key)
            upload_ids = select(t.uploads.c.id).where(in_vault_u).scalar_subquery()
            conn.execute(delete(t.parts).where(t.parts.c.upload_id.in_(upload_ids)))
            conn.execute(delete(t.uploads).where(in_vault_u))
            conn.execute(delete(t.jobs).where(in_vault_j))
            conn.execute(delete(t.archives).where(in_vault_a))
            conn.execute(
                delete(t.vault_tags).where(
                    t.vault_tags.c.account_id == ref.account_id,
                    t.vault_tags.c.vault_name == ref.name,
                )
            )
            for table in (t.vault_policies, t.vault_notifications):
                conn.execute(
                    delete(table).where(
                        table.c.account_id == ref.account_id, table.c.vault_name == ref.name
                    )
                )
            conn.execute(delete(t.vaults).where(self._vault_where(ref)))
            return DeleteVaultOutcome.DELETED

    def _read_tags(self, conn: Connection, ref: VaultRef) -> dict[str, str]:
        rows = conn.execute(
            select(t.vault_tags.c.key, t.vault_tags.c.value).where(
                t.vault_tags.c.account_id == ref.account_id,
                t.vault_tags.c.vault_name == ref.name,
            )
        )
        return {row.key: row.value for row in rows}

    def get_tags(self, ref: VaultRef) -> dict[str, str] | None:
        with self._tx() as conn:
            if not self._vault_exists(conn, ref):
                return None
            return self._read_tags(conn, ref)

    def add_tags(self, ref: VaultRef, tags: dict[str, str], max_tags: int) -> bool | None:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return None
            current = self._read_tags(conn, ref)
            if len(current.keys() | tags.keys()) > max_tags:
                return False
            for key, value in tags.items():
                if key in current:
                    conn.execute(
                        update(t.vault_tags)
                        .where(
                            t.vault_tags.c.account_id == ref.account_id,
                            t.vault_tags.c.vault_name == ref.name,
                            t.vault_tags.c.key == key,
                        )
                        .values(value=value)
                    )
                else:
                    conn.execute(
                        insert(t.vault_tags).values(
                            account_id=ref.account_id, vault_name=ref.name, key=key, value=value
                        )
                    )
            return True

    def remove_tags(self, ref: VaultRef, keys: Sequence[str]) -> bool:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return False
            if keys:
                conn.execute(
                    delete(t.vault_tags).where(
                        t.vault_tags.c.account_id == ref.account_id,
                        t.vault_tags.c.vault_name == ref.name,
                        t.vault_tags.c.key.in_(list(keys)),
                    )
                )
            return True
