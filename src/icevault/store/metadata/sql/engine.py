"""The SQL metadata store's engine: connections, transactions, prebuilt hot reads.

One implementation serves both databases; only connection set-up differs. SQLite runs in WAL
mode with ``synchronous=FULL`` so a committed transaction survives power loss, and write
transactions start with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading locks.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from icevault.core.errors import StorageUnavailableError
from icevault.core.models import (
    Archive,
    JobStatus,
    LockState,
    VaultLock,
    VaultRef,
)
from icevault.store.metadata import migrations
from icevault.store.metadata import schema as t
from icevault.store.metadata.base import ArchiveIdTakenError, GarbageKind
from icevault.store.metadata.copy_port import CopyState

_WRITE = "icevault_write"
# What SQLite and PostgreSQL say when their storage is full or read-only.
_STORAGE_FULL_OR_READ_ONLY = ("disk is full", "readonly", "read-only", "no space left")
# SQLite's words for a database file it cannot open right now: the process is out of file
# descriptors (or memory). An outage like a database server's, not a fault in the request.
_SQLITE_CANNOT_OPEN = ("unable to open database file",)


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


def _unavailable(exc: BaseException) -> StorageUnavailableError:
    return StorageUnavailableError(
        f"The metadata database does not answer; try again ({type(exc).__name__})")


def _says(exc: BaseException, words: tuple[str, ...]) -> bool:
    """Whether the database's own message (SQLAlchemy wraps the driver's) has ``words``."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(word in text for word in words)


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
_GET_UPLOAD = select(t.uploads).where(
    t.uploads.c.id == bindparam("upload_id"),
    t.uploads.c.account_id == bindparam("account"),
    t.uploads.c.vault_name == bindparam("name"),
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
    t.archives.c.stored_at,
    t.archives.c.hot_evicted_at,
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


class SqlEngine:
    """The engine, its connections and transactions: what every part of the SQL store
    builds on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._is_sqlite = url.startswith("sqlite")
        # An embedded SQLite read takes microseconds from the page cache, less than handing it
        # to a thread; a network database's does not.
        self.reads_are_local = self._is_sqlite
        self.serves_one_server = self._is_sqlite
        # Every worker thread (16) and the event loop keep one connection for hot reads
        # (_fast_rows) and may check out another for a transaction: size the pool for both.
        if self._is_sqlite:
            _private_sqlite_file(url)
            self._engine = create_engine(url, pool_size=32, max_overflow=32)
            _configure_sqlite(self._engine)
        else:
            # A database that does not answer fails a request in seconds (a 503 the client
            # retries), not after the operating system's connect timeout.
            self._engine = create_engine(url, pool_size=32, max_overflow=32, pool_pre_ping=True,
                                         connect_args={"connect_timeout": 5})
        self._account_lock = threading.Lock()
        self._default_account: str | None = None
        self._installation_id: str | None = None  # never changes once made
        self._migrate()
        self._local = threading.local()
        self._raw_connections: list[Any] = []
        dbapi = self._engine.dialect.dbapi
        # The driver's errors for a connection that is gone or cannot be made, and
        # SQLAlchemy's for the latter.
        self._connection_errors: tuple[type[BaseException], ...] = (
            (dbapi.OperationalError, dbapi.InterfaceError, OperationalError)
            if dbapi is not None and not self._is_sqlite else ())
        self._prepared = {
            name: _Prepared(statement, self._engine)
            for name, statement in (
                ("vault", _GET_VAULT), ("job", _GET_JOB), ("upload", _GET_UPLOAD),
                ("key", _GET_KEY),
                ("vault_policies", _GET_VAULT_POLICIES), ("archive", _GET_ARCHIVE),
                ("archive_leaves", _GET_ARCHIVE_LEAVES),
                ("archive_leaf_range", _GET_ARCHIVE_LEAF_RANGE),
            )
        }

    def _fast_rows(self, name: str, values: dict[str, Any]) -> list[Any]:
        """Rows of a prebuilt SELECT through this thread's own raw connection. Each row
        supports attribute access by column name, like a SQLAlchemy row.

        A connection the database dropped (a restart, a failover) is replaced and the read
        tried once more; a database that does not answer is a 503 to the client."""
        try:
            return self._fast_rows_once(name, values)
        except (OperationalError, sqlite3.OperationalError) as exc:
            # SQLite may open the file lazily: the driver's own error, at the first read.
            if self._is_sqlite and _says(exc, _SQLITE_CANNOT_OPEN):
                self._drop_raw()
                raise _unavailable(exc) from exc
            if not self._connection_errors:
                raise
            self._drop_raw()
        except self._connection_errors:
            self._drop_raw()
        try:
            return self._fast_rows_once(name, values)
        except self._connection_errors as exc:
            self._drop_raw()
            raise _unavailable(exc) from exc

    def _fast_rows_once(self, name: str, values: dict[str, Any]) -> list[Any]:
        prepared = self._prepared[name]
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._engine.raw_connection()
            self._local.raw = raw
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

    def _drop_raw(self) -> None:
        raw = getattr(self._local, "raw", None)
        self._local.raw = None
        if raw is None:
            return
        with self._account_lock:
            if raw in self._raw_connections:
                self._raw_connections.remove(raw)
        with contextlib.suppress(Exception):
            raw.invalidate()  # the pool forgets it; a new one is made on next use

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
            if _says(exc, _STORAGE_FULL_OR_READ_ONLY):
                raise StorageUnavailableError(
                    f"The metadata store cannot take writes: {exc.orig}"
                ) from exc
            # A database server down, restarting or unreachable; a SQLite file that cannot
            # be opened for want of descriptors.
            if not self._is_sqlite or _says(exc, _SQLITE_CANNOT_OPEN):
                raise _unavailable(exc) from exc
            raise
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise _unavailable(exc) from exc
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

    # -- helpers the aggregates share -------------------------------------------------------
    @staticmethod
    def _vault_where(ref: VaultRef) -> Any:
        return and_(t.vaults.c.account_id == ref.account_id, t.vaults.c.name == ref.name)

    @staticmethod
    def _vault_exists(conn: Connection, ref: VaultRef) -> bool:
        return (
            conn.execute(
                select(t.vaults.c.name).where(SqlEngine._vault_where(ref))
            ).first()
            is not None
        )

    @staticmethod
    def _garbage(conn: Connection, kind: GarbageKind, key: str) -> None:
        conn.execute(insert(t.garbage).values(kind=kind, key=key))

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
            stored_at=row.stored_at,
            hot_evicted_at=row.hot_evicted_at,
        )

    @contextmanager
    def _id_race(self, archive_id: str) -> Iterator[None]:
        """Two imports of one ID at once on PostgreSQL: the loser's insert fails on the
        unique key; it is told of the winner as if it had looked first."""
        try:
            yield
        except IntegrityError:
            with self._tx() as conn:
                row = conn.execute(
                    select(*_ARCHIVE_COLUMNS).where(t.archives.c.id == archive_id)
                ).first()
            if row is None:
                raise
            raise ArchiveIdTakenError(self._row_to_archive(row)) from None

    def _insert_archive(self, conn: Connection, archive: Archive, leaves: bytes) -> None:
        """Raises ArchiveIdTakenError when the ID exists (only an import names its ID; on
        PostgreSQL a concurrent import of the same ID fails on the unique key instead)."""
        taken = conn.execute(
            select(*_ARCHIVE_COLUMNS).where(t.archives.c.id == archive.id)
        ).first()
        if taken is not None:
            raise ArchiveIdTakenError(self._row_to_archive(taken))
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
                stored_at=archive.stored_at,
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

    def _release_archive_blob(self, conn: Connection, archive_id: str) -> None:
        """Reclaim a deleted archive's bytes once no finished retrieval still serves them."""
        row = conn.execute(
            select(t.archives.c.blob_key, t.archives.c.deleted_at).where(
                t.archives.c.id == archive_id
            )
        ).first()
        if row is None or row.deleted_at is None:
            return
        reader = conn.execute(
            select(t.jobs.c.seq).where(
                t.jobs.c.archive_id == archive_id, t.jobs.c.status == JobStatus.SUCCEEDED
            )
        ).first()
        if reader is not None:
            return
        if row.blob_key is not None:  # None: already released, or evicted (--hot-days)
            self._garbage(conn, GarbageKind.BLOB, row.blob_key)
            conn.execute(
                update(t.archives).where(t.archives.c.id == archive_id).values(blob_key=None)
            )
        # Every copy goes with it (garbage collection deletes their objects, then the rows).
        conn.execute(
            update(t.archive_copies).where(t.archive_copies.c.archive_id == archive_id)
            .values(state=CopyState.DROPPING, claimed_until=None)
        )
