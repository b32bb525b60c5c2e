"""The metadata store on SQLAlchemy Core: SQLite (embedded default) or PostgreSQL.

One implementation serves both databases; only connection set-up differs. SQLite runs in WAL
mode with ``synchronous=FULL`` so a committed transaction survives power loss, and write
transactions start with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading locks.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from icevault.core.errors import StorageUnavailableError
from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.ids import new_account_id
from icevault.core.models import (
    Archive,
    CapacityUnit,
    InventoryFormat,
    InventoryParams,
    Job,
    JobAction,
    JobStatus,
    LockState,
    NotificationConfig,
    Part,
    Tier,
    Upload,
    UploadState,
    Vault,
    VaultLock,
    VaultRef,
)
from icevault.core.treehash import DIGEST_SIZE
from icevault.store.metadata import migrations
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import (
    DeleteArchiveOutcome,
    DeleteVaultOutcome,
    GarbageItem,
    GarbageKind,
    JobCompletion,
)

_WRITE = "icevault_write"
# What SQLite and PostgreSQL say when their storage is full or read-only.
_STORAGE_FULL_OR_READ_ONLY = ("disk is full", "readonly", "read-only", "no space left")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _private_sqlite_file(url: str) -> None:
    """The database holds access-key secrets: create it readable by its owner only (SQLite
    gives the -wal and -shm files the same mode)."""
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class _Row(dict[str, Any]):
    __getattr__ = dict.__getitem__


def _lapsed(lock: VaultLock, now: int) -> bool:
    """An in-progress lock not completed within its window no longer counts."""
    return (
        lock.state is LockState.IN_PROGRESS and lock.expires_at is not None and lock.expires_at <= now
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(
            "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
        )


# Statements on hot paths are built once: composing SQLAlchemy expressions per call costs
# more than running them.
_GET_VAULT = select(t.vaults).where(
    t.vaults.c.account_id == bindparam("account"), t.vaults.c.name == bindparam("name")
)
_GET_JOB = select(t.jobs).where(
    t.jobs.c.id == bindparam("job_id"),
    t.jobs.c.account_id == bindparam("account"),
    t.jobs.c.vault_name == bindparam("name"),
)
_GET_KEY = select(t.access_keys).where(t.access_keys.c.id == bindparam("key_id"))
_ARCHIVE_COLUMNS = (
    t.archives.c.seq,
    t.archives.c.id,
    t.archives.c.account_id,
    t.archives.c.vault_name,
    t.archives.c.description,
    t.archives.c.size,
    t.archives.c.tree_hash,
    t.archives.c.blob_key,
    t.archives.c.created_at,
    t.archives.c.deleted_at,
    t.archives.c.corrupt_at,
    t.archives.c.corrupt_reason,
)
# Every GetJobOutput request reads its archive (and, for a checksummed range, its leaves).
_GET_ARCHIVE = select(*_ARCHIVE_COLUMNS).where(
    t.archives.c.id == bindparam("archive_id"),
    t.archives.c.account_id == bindparam("account"),
    t.archives.c.vault_name == bindparam("name"),
)
_GET_ARCHIVE_LEAVES = select(t.archives.c.leaf_hashes).where(
    t.archives.c.id == bindparam("archive_id")
)
# substr() on a blob counts bytes from 1, in SQLite and PostgreSQL alike.
_GET_ARCHIVE_LEAF_RANGE = select(
    func.substr(
        t.archives.c.leaf_hashes, bindparam("from_byte", type_=Integer),
        bindparam("byte_count", type_=Integer),
    ).label("leaf_hashes")
).where(t.archives.c.id == bindparam("archive_id"))
_GET_VAULT_POLICIES = select(t.vault_policies).where(
    t.vault_policies.c.account_id == bindparam("account"),
    t.vault_policies.c.vault_name == bindparam("name"),
)


class _Prepared:
    """A prebuilt SELECT compiled once for the engine's dialect and run on a raw DB-API
    cursor: for the hottest reads, SQLAlchemy's per-execution machinery costs more than the
    query itself."""

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self.positional = compiled.positional
        self.order = list(compiled.positiontup or [])
        self.columns = list(statement.selected_columns.keys())

    def params(self, values: dict[str, Any]) -> Any:
        return [values[name] for name in self.order] if self.positional else values


class SqlMetadataStore:
    """:class:`~icevault.store.metadata.base.MetadataStore` over a SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._is_sqlite = url.startswith("sqlite")
        # An embedded SQLite read takes microseconds from the page cache, less than handing it
        # to a thread; a network database's does not.
        self.reads_are_local = self._is_sqlite
        # Every worker thread (16) and the event loop keep one connection for hot reads
        # (_fast_rows) and may check out another for a transaction: size the pool for both.
        if self._is_sqlite:
            _private_sqlite_file(url)
            self._engine = create_engine(url, pool_size=32, max_overflow=32)
            _configure_sqlite(self._engine)
        else:
            self._engine = create_engine(url, pool_size=32, max_overflow=32, pool_pre_ping=True)
        self._account_lock = threading.Lock()
        self._default_account: str | None = None
        self._migrate()
        self._local = threading.local()
        self._raw_connections: list[Any] = []
        self._prepared = {
            name: _Prepared(statement, self._engine)
            for name, statement in (
                ("vault", _GET_VAULT), ("job", _GET_JOB), ("key", _GET_KEY),
                ("vault_policies", _GET_VAULT_POLICIES), ("archive", _GET_ARCHIVE),
                ("archive_leaves", _GET_ARCHIVE_LEAVES),
                ("archive_leaf_range", _GET_ARCHIVE_LEAF_RANGE),
            )
        }

    def _fast_rows(self, name: str, values: dict[str, Any]) -> list[Any]:
        """Rows of a prebuilt SELECT through this thread's own raw connection. Each row
        supports attribute access by column name, like a SQLAlchemy row."""
        prepared = self._prepared[name]
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self._engine.raw_connection()
            with self._account_lock:
                self._raw_connections.append(raw)
        cursor = raw.cursor()
        try:
            cursor.execute(prepared.sql, prepared.params(values))
            rows = cursor.fetchall()
        except Exception:
            raw.rollback()
            raise
        finally:
            cursor.close()
        if not self._is_sqlite:
            raw.rollback()  # end the implicit transaction a DB-API driver opened
        return [_Row(zip(prepared.columns, row, strict=True)) for row in rows]

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            text = str(exc.orig).lower()
            if any(word in text for word in _STORAGE_FULL_OR_READ_ONLY):
                raise StorageUnavailableError(
                    f"The metadata store cannot take writes: {exc.orig}"
                ) from exc
            raise

    def _migrate(self) -> None:
        with self._tx(write=True) as conn:
            migrations.upgrade(conn)

    def schema_revision(self) -> str | None:
        with self._tx() as conn:
            return migrations.current(conn)

    def close(self) -> None:
        for raw in self._raw_connections:
            try:
                raw.close()
            except Exception:  # noqa: BLE001, S110 - closing at shutdown; nothing to do about it
                pass
        self._engine.dispose()

    # -- accounts -------------------------------------------------------------------------
    def default_account(self) -> str:
        if self._default_account is not None:
            return self._default_account
        with self._account_lock, self._tx(write=True) as conn:
            row = conn.execute(
                select(t.settings.c.value).where(t.settings.c.key == "default_account")
            ).first()
            if row is None:
                account = new_account_id()
                conn.execute(insert(t.accounts).values(id=account, created_at=0))
                conn.execute(insert(t.settings).values(key="default_account", value=account))
            else:
                account = row[0]
            self._default_account = account
            return account

    def create_account(self, account_id: str, now: int) -> bool:
        """False when the account already exists."""
        with self._tx(write=True) as conn:
            exists = conn.execute(
                select(t.accounts.c.id).where(t.accounts.c.id == account_id)
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(t.accounts).values(id=account_id, created_at=now))
            return True

    def account_exists(self, account_id: str) -> bool:
        with self._tx() as conn:
            return (
                conn.execute(select(t.accounts.c.id).where(t.accounts.c.id == account_id)).first()
                is not None
            )

    # -- access keys ----------------------------------------------------------------------
    def insert_access_key(self, key: AccessKey) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                insert(t.access_keys).values(
                    id=key.id,
                    secret=key.secret,
                    account_id=key.account_id,
                    user_name=key.user,
                    status=key.status,
                    created_at=key.created_at,
                )
            )

    def get_access_key(self, key_id: str) -> AccessKey | None:
        rows = self._fast_rows("key", {"key_id": key_id})
        row = rows[0] if rows else None
        if row is None:
            return None
        return AccessKey(
            row.id, row.secret, row.account_id, row.user_name, KeyStatus(row.status), row.created_at
        )

    def count_access_keys(self) -> int:
        with self._tx() as conn:
            return conn.execute(select(func.count()).select_from(t.access_keys)).scalar_one()

    # -- vaults ---------------------------------------------------------------------------
    @staticmethod
    def _vault_where(ref: VaultRef) -> Any:
        return and_(t.vaults.c.account_id == ref.account_id, t.vaults.c.name == ref.name)

    @staticmethod
    def _vault_exists(conn: Connection, ref: VaultRef) -> bool:
        return (
            conn.execute(
                select(t.vaults.c.name).where(SqlMetadataStore._vault_where(ref))
            ).first()
            is not None
        )

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

    def delete_vault(self, ref: VaultRef) -> DeleteVaultOutcome:
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
            if live is not None or open_upload is not None:
                return DeleteVaultOutcome.NOT_EMPTY
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

    # -- archives -------------------------------------------------------------------------
    @staticmethod
    def _row_to_archive(row: Any) -> Archive:
        return Archive(
            id=row.id,
            vault=VaultRef(row.account_id, row.vault_name),
            description=row.description,
            size=row.size,
            tree_hash=row.tree_hash,
            created_at=row.created_at,
            blob_key=row.blob_key,
            deleted_at=row.deleted_at,
            corrupt_at=row.corrupt_at,
            corrupt_reason=row.corrupt_reason,
        )

    def _insert_archive(self, conn: Connection, archive: Archive, leaves: bytes) -> None:
        conn.execute(
            insert(t.archives).values(
                id=archive.id,
                account_id=archive.vault.account_id,
                vault_name=archive.vault.name,
                description=archive.description,
                size=archive.size,
                tree_hash=archive.tree_hash,
                leaf_hashes=leaves,
                blob_key=archive.blob_key,
                created_at=archive.created_at,
                deleted_at=None,
            )
        )
        conn.execute(
            update(t.vaults)
            .where(self._vault_where(archive.vault))
            .values(
                archive_count=t.vaults.c.archive_count + 1,
                size_bytes=t.vaults.c.size_bytes + archive.size,
            )
        )

    def insert_archive(self, archive: Archive, leaves: bytes) -> bool:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, archive.vault):
                return False
            self._insert_archive(conn, archive, leaves)
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

    def _release_archive_blob(self, conn: Connection, archive_id: str) -> None:
        """Reclaim a deleted archive's bytes once no finished retrieval still serves them."""
        row = conn.execute(
            select(t.archives.c.blob_key, t.archives.c.deleted_at).where(
                t.archives.c.id == archive_id
            )
        ).first()
        if row is None or row.blob_key is None or row.deleted_at is None:
            return
        reader = conn.execute(
            select(t.jobs.c.seq).where(
                t.jobs.c.archive_id == archive_id, t.jobs.c.status == JobStatus.SUCCEEDED
            )
        ).first()
        if reader is not None:
            return
        self._garbage(conn, GarbageKind.BLOB, row.blob_key)
        conn.execute(
            update(t.archives).where(t.archives.c.id == archive_id).values(blob_key=None)
        )

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
        self, ref: VaultRef, after_seq: int, start: int | None, end: int | None, limit: int
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
        query = query.order_by(t.archives.c.seq).limit(limit)
        with self._tx() as conn:
            return [(row.seq, self._row_to_archive(row)) for row in conn.execute(query)]

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

    def get_setting(self, key: str) -> str | None:
        with self._tx() as conn:
            value = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).scalar()
            return None if value is None else str(value)

    def set_setting(self, key: str, value: str | None) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(t.settings).where(t.settings.c.key == key))
            if value is not None:
                conn.execute(insert(t.settings).values(key=key, value=value))

    # -- topics (SNS topic names mapped to registered webhooks) ---------------------------
    def put_topic(self, account_id: str, name: str, url: str, now: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                delete(t.topics).where(t.topics.c.account_id == account_id, t.topics.c.name == name)
            )
            conn.execute(
                insert(t.topics).values(account_id=account_id, name=name, url=url, created_at=now)
            )

    def get_topic_url(self, account_id: str, name: str) -> str | None:
        with self._tx() as conn:
            value = conn.execute(
                select(t.topics.c.url).where(
                    t.topics.c.account_id == account_id, t.topics.c.name == name
                )
            ).scalar()
            return None if value is None else str(value)

    def list_topics(self, account_id: str) -> list[tuple[str, str]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.topics.c.name, t.topics.c.url)
                .where(t.topics.c.account_id == account_id)
                .order_by(t.topics.c.name)
            )
            return [(row.name, row.url) for row in rows]

    def delete_topic(self, account_id: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            result = conn.execute(
                delete(t.topics).where(t.topics.c.account_id == account_id, t.topics.c.name == name)
            )
            return bool(result.rowcount)

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
                )
            )
            return True

    def get_upload(self, ref: VaultRef, upload_id: str) -> Upload | None:
        with self._tx() as conn:
            row = conn.execute(
                select(t.uploads).where(
                    t.uploads.c.id == upload_id,
                    t.uploads.c.account_id == ref.account_id,
                    t.uploads.c.vault_name == ref.name,
                )
            ).first()
        return None if row is None else self._row_to_upload(row)

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
            state = conn.execute(
                select(t.uploads.c.state).where(t.uploads.c.id == upload_id)
            ).scalar()
            if state != UploadState.OPEN:
                return False
            conn.execute(
                delete(t.parts).where(
                    t.parts.c.upload_id == upload_id, t.parts.c.range_start == part.start
                )
            )
            conn.execute(
                insert(t.parts).values(
                    upload_id=upload_id,
                    range_start=part.start,
                    range_end=part.end,
                    tree_hash=part.tree_hash,
                    leaf_hashes=leaves,
                )
            )
            conn.execute(update(t.uploads).where(t.uploads.c.id == upload_id).values(updated_at=now))
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
                (Part(r.range_start, r.range_end, r.tree_hash), bytes(r.leaf_hashes))
                for r in conn.execute(query)
            ]

    def complete_upload(self, upload: Upload, archive: Archive, leaves: bytes) -> Archive | None:
        with self._tx(write=True) as conn:
            row = conn.execute(select(t.uploads).where(t.uploads.c.id == upload.id)).first()
            if row is None:
                return None
            if row.state == UploadState.COMPLETED:
                existing = conn.execute(
                    select(*_ARCHIVE_COLUMNS).where(t.archives.c.id == row.archive_id)
                ).first()
                return None if existing is None else self._row_to_archive(existing)
            if row.state != UploadState.OPEN or not self._vault_exists(conn, upload.vault):
                return None
            self._insert_archive(conn, archive, leaves)
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

    def job_seq(self, ref: VaultRef, job_id: str) -> int | None:
        with self._tx() as conn:
            return conn.execute(
                select(t.jobs.c.seq).where(
                    t.jobs.c.id == job_id,
                    t.jobs.c.account_id == ref.account_id,
                    t.jobs.c.vault_name == ref.name,
                )
            ).scalar()

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

    def due_jobs(self, now: int, limit: int) -> list[Job]:
        query = (
            select(t.jobs)
            .where(t.jobs.c.status == JobStatus.IN_PROGRESS, t.jobs.c.ready_at <= now)
            .order_by(t.jobs.c.ready_at, t.jobs.c.seq)
            .limit(limit)
        )
        with self._tx() as conn:
            return [self._row_to_job(row) for row in conn.execute(query)]

    def next_due_time(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(
                select(func.min(t.jobs.c.ready_at)).where(t.jobs.c.status == JobStatus.IN_PROGRESS)
            ).scalar()

    def finish_job(self, job_id: str, completion: JobCompletion) -> Job | None:
        with self._tx(write=True) as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).first()
            if row is None or row.status != JobStatus.IN_PROGRESS:
                if completion.output_blob_key is not None:
                    self._garbage(conn, GarbageKind.BLOB, completion.output_blob_key)
                return None
            status, message = completion.status, completion.message
            if row.action == JobAction.ARCHIVE_RETRIEVAL and status is JobStatus.SUCCEEDED:
                archive = conn.execute(
                    select(
                        t.archives.c.deleted_at, t.archives.c.blob_key, t.archives.c.corrupt_at
                    ).where(t.archives.c.id == row.archive_id)
                ).first()
                if archive is None or archive.deleted_at is not None or archive.blob_key is None:
                    status, message = JobStatus.FAILED, "The archive was deleted before the job ran"
                elif archive.corrupt_at is not None:
                    status, message = (
                        JobStatus.FAILED, "The archive's stored bytes failed verification"
                    )
            values: dict[str, Any] = {
                "status": status,
                "status_message": message,
                "completed_at": completion.completed_at,
            }
            if status is JobStatus.SUCCEEDED:
                values["output_blob_key"] = completion.output_blob_key
                values["output_size"] = completion.output_size
                values["inv_marker_out"] = completion.inventory_marker_out
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

    def expire_jobs(self, completed_before: int) -> int:
        with self._tx(write=True) as conn:
            rows = conn.execute(
                select(t.jobs.c.id, t.jobs.c.action, t.jobs.c.archive_id, t.jobs.c.output_blob_key)
                .where(
                    t.jobs.c.status != JobStatus.IN_PROGRESS,
                    t.jobs.c.completed_at < completed_before,
                )
            ).all()
            for row in rows:
                conn.execute(delete(t.jobs).where(t.jobs.c.id == row.id))
                if row.output_blob_key is not None:
                    self._garbage(conn, GarbageKind.BLOB, row.output_blob_key)
            for archive_id in {r.archive_id for r in rows if r.archive_id is not None}:
                self._release_archive_blob(conn, archive_id)
            return len(rows)

    # -- vault access policy, lock, notifications ----------------------------------------
    def _policy_row(self, conn: Connection, ref: VaultRef, kind: str) -> Any:
        return conn.execute(
            select(t.vault_policies).where(
                t.vault_policies.c.account_id == ref.account_id,
                t.vault_policies.c.vault_name == ref.name,
                t.vault_policies.c.kind == kind,
            )
        ).first()

    def _delete_policy(self, conn: Connection, ref: VaultRef, kind: str) -> None:
        conn.execute(
            delete(t.vault_policies).where(
                t.vault_policies.c.account_id == ref.account_id,
                t.vault_policies.c.vault_name == ref.name,
                t.vault_policies.c.kind == kind,
            )
        )

    def get_access_policy(self, ref: VaultRef) -> str | None:
        with self._tx() as conn:
            row = self._policy_row(conn, ref, "access")
        return None if row is None else row.document

    def get_vault_policies(self, ref: VaultRef, now: int) -> tuple[str | None, VaultLock | None]:
        """The access policy and the lock in force (an expired in-progress lock is none)."""
        access, lock = None, None
        for row in self._fast_rows("vault_policies", {"account": ref.account_id, "name": ref.name}):
            if row.kind == "access":
                access = row.document
            elif row.kind == "lock":
                lock = self._row_to_lock(row)
        if lock is not None and _lapsed(lock, now):
            lock = None
        return access, lock

    def set_access_policy(self, ref: VaultRef, document: str | None, now: int) -> bool:
        """Set (or with None, delete) the vault's access policy; False if no vault."""
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return False
            self._delete_policy(conn, ref, "access")
            if document is not None:
                conn.execute(
                    insert(t.vault_policies).values(
                        account_id=ref.account_id, vault_name=ref.name, kind="access",
                        document=document, created_at=now,
                    )
                )
            return True

    @staticmethod
    def _row_to_lock(row: Any) -> VaultLock:
        return VaultLock(row.lock_id, row.document, LockState(row.state), row.created_at,
                         row.expires_at)

    def _current_lock(self, conn: Connection, ref: VaultRef, now: int) -> VaultLock | None:
        row = self._policy_row(conn, ref, "lock")
        if row is None:
            return None
        lock = self._row_to_lock(row)
        if _lapsed(lock, now):
            # An in-progress lock not completed within its window silently reverts.
            self._delete_policy(conn, ref, "lock")
            return None
        return lock

    def get_lock(self, ref: VaultRef, now: int) -> VaultLock | None:
        return self.get_vault_policies(ref, now)[1]

    def initiate_lock(self, ref: VaultRef, lock: VaultLock, now: int) -> VaultLock | None:
        """Store an in-progress lock unless one exists; returns the blocking lock if any.
        Raises LookupError when the vault does not exist."""
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                raise LookupError(ref.name)
            current = self._current_lock(conn, ref, now)
            if current is not None:
                return current
            conn.execute(
                insert(t.vault_policies).values(
                    account_id=ref.account_id, vault_name=ref.name, kind="lock",
                    document=lock.policy, lock_id=lock.lock_id, state=lock.state,
                    created_at=lock.created_at, expires_at=lock.expires_at,
                )
            )
            return None

    def complete_lock(self, ref: VaultRef, lock_id: str, now: int) -> VaultLock | None:
        """Lock the vault if ``lock_id`` names its in-progress lock; return the lock as it
        stands afterwards (None when there is none)."""
        with self._tx(write=True) as conn:
            current = self._current_lock(conn, ref, now)
            if current is None or current.lock_id != lock_id or current.state is LockState.LOCKED:
                return current
            conn.execute(
                update(t.vault_policies)
                .where(
                    t.vault_policies.c.account_id == ref.account_id,
                    t.vault_policies.c.vault_name == ref.name,
                    t.vault_policies.c.kind == "lock",
                )
                .values(state=LockState.LOCKED, expires_at=None)
            )
            return replace(current, state=LockState.LOCKED, expires_at=None)

    def abort_lock(self, ref: VaultRef, now: int) -> VaultLock | None:
        """Remove an in-progress lock; a locked one is returned untouched."""
        with self._tx(write=True) as conn:
            current = self._current_lock(conn, ref, now)
            if current is not None and current.state is LockState.IN_PROGRESS:
                self._delete_policy(conn, ref, "lock")
                return None
            return current

    def get_notifications(self, ref: VaultRef) -> NotificationConfig | None:
        with self._tx() as conn:
            row = conn.execute(
                select(t.vault_notifications).where(
                    t.vault_notifications.c.account_id == ref.account_id,
                    t.vault_notifications.c.vault_name == ref.name,
                )
            ).first()
        if row is None:
            return None
        return NotificationConfig(row.sns_topic, tuple(json.loads(row.events)))

    def set_notifications(self, ref: VaultRef, config: NotificationConfig | None) -> bool:
        with self._tx(write=True) as conn:
            if not self._vault_exists(conn, ref):
                return False
            conn.execute(
                delete(t.vault_notifications).where(
                    t.vault_notifications.c.account_id == ref.account_id,
                    t.vault_notifications.c.vault_name == ref.name,
                )
            )
            if config is not None:
                conn.execute(
                    insert(t.vault_notifications).values(
                        account_id=ref.account_id, vault_name=ref.name,
                        sns_topic=config.sns_topic, events=json.dumps(list(config.events)),
                    )
                )
            return True

    def record_notification(
        self, ref: VaultRef, job_id: str, topic: str, target: str | None, body: str, status: str,
        now: int,
    ) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                insert(t.notification_log).values(
                    account_id=ref.account_id, vault_name=ref.name, job_id=job_id, topic=topic,
                    target=target, body=body, status=status, created_at=now,
                )
            )

    def list_notifications(self, ref: VaultRef) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.notification_log)
                .where(
                    t.notification_log.c.account_id == ref.account_id,
                    t.notification_log.c.vault_name == ref.name,
                )
                .order_by(t.notification_log.c.seq)
            )
            return [dict(row._mapping) for row in rows]

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

    # -- account settings and capacity ----------------------------------------------------
    def get_account_setting(self, account_id: str, key: str) -> str | None:
        with self._tx() as conn:
            return conn.execute(
                select(t.account_settings.c.value).where(
                    t.account_settings.c.account_id == account_id, t.account_settings.c.key == key
                )
            ).scalar()

    def set_account_setting(self, account_id: str, key: str, value: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                delete(t.account_settings).where(
                    t.account_settings.c.account_id == account_id, t.account_settings.c.key == key
                )
            )
            conn.execute(insert(t.account_settings).values(account_id=account_id, key=key, value=value))

    def purchase_capacity(self, account_id: str, unit: CapacityUnit, now: int, max_units: int) -> bool:
        """Add a unit unless ``max_units`` unexpired units exist."""
        with self._tx(write=True) as conn:
            active = conn.execute(
                select(func.count()).select_from(t.provisioned_capacity).where(
                    t.provisioned_capacity.c.account_id == account_id,
                    t.provisioned_capacity.c.expires_at > now,
                )
            ).scalar_one()
            if active >= max_units:
                return False
            conn.execute(
                insert(t.provisioned_capacity).values(
                    id=unit.id, account_id=account_id, start_at=unit.start_at,
                    expires_at=unit.expires_at,
                )
            )
            return True

    def list_capacity(self, account_id: str) -> list[CapacityUnit]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.provisioned_capacity)
                .where(t.provisioned_capacity.c.account_id == account_id)
                .order_by(t.provisioned_capacity.c.start_at)
            )
            return [CapacityUnit(r.id, r.start_at, r.expires_at) for r in rows]

    # -- users, keys and identity policies ------------------------------------------------
    def create_user(self, account_id: str, name: str, now: int) -> bool:
        with self._tx(write=True) as conn:
            exists = conn.execute(
                select(t.users.c.name).where(t.users.c.account_id == account_id, t.users.c.name == name)
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(t.users).values(account_id=account_id, name=name, created_at=now))
            return True

    def user_exists(self, account_id: str, name: str) -> bool:
        with self._tx() as conn:
            return conn.execute(
                select(t.users.c.name).where(t.users.c.account_id == account_id, t.users.c.name == name)
            ).first() is not None

    def list_users(self, account_id: str) -> list[str]:
        with self._tx() as conn:
            return [
                r[0]
                for r in conn.execute(
                    select(t.users.c.name).where(t.users.c.account_id == account_id).order_by(t.users.c.name)
                )
            ]

    def delete_user(self, account_id: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            gone = conn.execute(
                delete(t.users).where(t.users.c.account_id == account_id, t.users.c.name == name)
            ).rowcount
            conn.execute(
                delete(t.access_keys).where(
                    t.access_keys.c.account_id == account_id, t.access_keys.c.user_name == name
                )
            )
            conn.execute(
                delete(t.identity_policies).where(
                    t.identity_policies.c.account_id == account_id,
                    t.identity_policies.c.user_name == name,
                )
            )
            return bool(gone)

    def list_access_keys(self, account_id: str) -> list[AccessKey]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.access_keys).where(t.access_keys.c.account_id == account_id)
                .order_by(t.access_keys.c.created_at)
            )
            return [
                AccessKey(r.id, r.secret, r.account_id, r.user_name, KeyStatus(r.status), r.created_at)
                for r in rows
            ]

    def set_access_key_status(self, key_id: str, status: KeyStatus) -> bool:
        with self._tx(write=True) as conn:
            return bool(
                conn.execute(
                    update(t.access_keys).where(t.access_keys.c.id == key_id).values(status=status)
                ).rowcount
            )

    def delete_access_key(self, key_id: str) -> bool:
        with self._tx(write=True) as conn:
            return bool(conn.execute(delete(t.access_keys).where(t.access_keys.c.id == key_id)).rowcount)

    def put_user_policy(self, account_id: str, user: str, name: str, document: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                delete(t.identity_policies).where(
                    t.identity_policies.c.account_id == account_id,
                    t.identity_policies.c.user_name == user,
                    t.identity_policies.c.policy_name == name,
                )
            )
            conn.execute(
                insert(t.identity_policies).values(
                    account_id=account_id, user_name=user, policy_name=name, document=document
                )
            )

    def delete_user_policy(self, account_id: str, user: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            return bool(
                conn.execute(
                    delete(t.identity_policies).where(
                        t.identity_policies.c.account_id == account_id,
                        t.identity_policies.c.user_name == user,
                        t.identity_policies.c.policy_name == name,
                    )
                ).rowcount
            )

    def user_policies(self, account_id: str, user: str) -> list[tuple[str, str]]:
        with self._tx() as conn:
            rows = conn.execute(
                select(t.identity_policies.c.policy_name, t.identity_policies.c.document)
                .where(
                    t.identity_policies.c.account_id == account_id,
                    t.identity_policies.c.user_name == user,
                )
                .order_by(t.identity_policies.c.policy_name)
            )
            return [(r[0], r[1]) for r in rows]

    # -- garbage --------------------------------------------------------------------------
    @staticmethod
    def _garbage(conn: Connection, kind: GarbageKind, key: str) -> None:
        conn.execute(insert(t.garbage).values(kind=kind, key=key))

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
