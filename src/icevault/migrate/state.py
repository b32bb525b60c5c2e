"""The migration's durable state: one SQLite file recording each archive's stage.

Every change is committed before the step it records is relied on, so a migration killed at
any moment resumes from the file: what is recorded done is done, and what was in flight is
looked up again (a job on the source, the parts that landed in an upload on the target).

Stages of an archive::

    planned -> job -> transferring -> verified
                  \\-> failed (with the reason; verification failures are marked as such)
    skipped: on the target already, with the same ID and tree hash

SQLite from the standard library: one local file, no server, and transactions that survive
SIGKILL (WAL journal). ``synchronous=NORMAL``: a power cut may lose the last few records, never
corrupt the file, and everything recorded can be found again (jobs on the source, landed
parts by ListParts, finished archives in the target's inventory), so an fsync per landed part
would only slow the workers down.
"""

from __future__ import annotations

import enum
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from icevault.migrate.inventory import InventoryEntry, InventoryError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archives (
    seq INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    tree_hash TEXT NOT NULL,
    description TEXT NOT NULL,
    creation_date TEXT NOT NULL,
    stage TEXT NOT NULL,
    job_id TEXT,
    upload_id TEXT,
    parts_done INTEGER NOT NULL DEFAULT 0,
    target_id TEXT,
    error TEXT,
    verification_failed INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS archives_by_stage ON archives (stage, seq);
"""


class Stage(enum.StrEnum):
    PLANNED = "planned"
    JOB = "job"
    TRANSFERRING = "transferring"
    VERIFIED = "verified"
    SKIPPED = "skipped"
    FAILED = "failed"


DONE = (Stage.VERIFIED, Stage.SKIPPED)


@dataclass(frozen=True, slots=True)
class ArchiveState:
    seq: int
    source_id: str
    size: int
    tree_hash: str
    description: str
    creation_date: str
    stage: Stage
    job_id: str | None
    upload_id: str | None
    parts_done: int
    target_id: str | None
    error: str | None
    verification_failed: bool


def default_state_path(vault: str) -> Path:
    return Path(f"./icevault-migrate-{vault}.sqlite3")


class MigrationState:
    """The state file; safe to use from several threads (one connection, one lock)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.in_memory = self.path == ":memory:"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- settings -------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                             "SET value = excluded.value", (key, value))

    # -- the inventory --------------------------------------------------------------------

    def _repeated(self, ids: list[str], loaded_before: int) -> str:
        """The ID of ``ids`` listed twice: within them, or among the rows loaded before."""
        seen: set[str] = set()
        for archive_id in ids:
            if archive_id in seen:
                return archive_id
            seen.add(archive_id)
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            found = self._db.execute(
                f"SELECT id FROM loading WHERE rowid <= ? AND id IN ({','.join('?' * len(part))})",  # noqa: S608 - placeholders only
                [loaded_before, *part]).fetchone()
            if found is not None:
                return str(found[0])
        return "(unknown)"

    def load_inventory(self, entries: Iterable[InventoryEntry], batch: int = 5000) -> int:
        """Record the inventory's archives as planned (in one transaction: all or none);
        archives recorded already are kept as they are. Returns how many there are."""
        now = time.time()
        rows = ((e.archive_id, e.size, e.tree_hash, e.description, e.creation_date,
                 Stage.PLANNED.value, now) for e in entries)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # A table of this load's IDs tells a duplicate in the inventory (refused:
                # the source lists one archive twice, or lies) from an archive recorded by
                # an earlier run (kept as it is).
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS loading (id TEXT PRIMARY KEY)")
                self._db.execute("DELETE FROM loading")
                while chunk := [row for _, row in zip(range(batch), rows, strict=False)]:
                    ids = [row[0] for row in chunk]
                    before = self._db.execute("SELECT max(rowid) FROM loading").fetchone()[0]
                    added = self._db.executemany("INSERT OR IGNORE INTO loading VALUES (?)",
                                                 [(i,) for i in ids]).rowcount
                    if added != len(chunk):
                        raise InventoryError(
                            f"the inventory lists archive {self._repeated(ids, before or 0)} "
                            "more than once; a Glacier inventory lists each archive once: "
                            "fetch it again")
                    self._db.executemany(
                        "INSERT INTO archives (source_id, size, tree_hash, description, "
                        "creation_date, stage, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (source_id) DO NOTHING", chunk)
                self._db.execute("INSERT INTO settings VALUES ('inventory_loaded', '1') "
                                 "ON CONFLICT (key) DO NOTHING")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return int(self._db.execute("SELECT count(*) FROM archives").fetchone()[0])

    @property
    def inventory_loaded(self) -> bool:
        return self.get("inventory_loaded") == "1"

    # -- archives -------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[ArchiveState]:
        # ``sql`` is always one of this module's own clauses; values are bound.
        query = ("SELECT seq, source_id, size, tree_hash, description, creation_date, stage, "  # noqa: S608
                 "job_id, upload_id, parts_done, target_id, error, "
                 "verification_failed FROM archives " + sql)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [ArchiveState(seq=row[0], source_id=row[1], size=row[2], tree_hash=row[3],
                             description=row[4], creation_date=row[5], stage=Stage(row[6]),
                             job_id=row[7], upload_id=row[8], parts_done=row[9],
                             target_id=row[10], error=row[11],
                             verification_failed=bool(row[12]))
                for row in rows]

    def in_stage(self, *stages: Stage, limit: int = -1) -> list[ArchiveState]:
        marks = ", ".join("?" for _ in stages)
        return self._rows(f"WHERE stage IN ({marks}) ORDER BY seq LIMIT ?",
                          (*[s.value for s in stages], limit))

    def all(self) -> Iterator[ArchiveState]:
        after = 0
        while page := self._rows("WHERE seq > ? ORDER BY seq LIMIT 1000", (after,)):
            yield from page
            after = page[-1].seq

    def get_archive(self, source_id: str) -> ArchiveState:
        [row] = self._rows("WHERE source_id = ?", (source_id,))
        return row

    def _set(self, source_id: str, **values: object) -> None:
        names = ", ".join(f"{name} = ?" for name in values)
        with self._lock:
            # Column names come from this module's callers, never from input.
            self._db.execute(f"UPDATE archives SET {names}, updated_at = ? WHERE source_id = ?",  # noqa: S608
                             (*values.values(), time.time(), source_id))

    def job_requested(self, source_id: str, job_id: str) -> None:
        self._set(source_id, stage=Stage.JOB.value, job_id=job_id)

    def upload_started(self, source_id: str, upload_id: str) -> None:
        self._set(source_id, stage=Stage.TRANSFERRING.value, upload_id=upload_id, parts_done=0)

    def part_landed(self, source_id: str, parts_done: int) -> None:
        self._set(source_id, parts_done=parts_done)

    def job_lost(self, source_id: str) -> None:
        """The job's output is gone (expired): the archive needs a new job; the upload and
        its landed parts are kept."""
        self._set(source_id, stage=Stage.JOB.value, job_id=None)

    def verified(self, source_id: str, target_id: str) -> None:
        self._set(source_id, stage=Stage.VERIFIED.value, target_id=target_id, error=None)

    def skipped(self, source_id: str) -> None:
        self._set(source_id, stage=Stage.SKIPPED.value, target_id=source_id, error=None)

    def failed(self, source_id: str, reason: str, *, verification: bool = False) -> None:
        self._set(source_id, stage=Stage.FAILED.value, error=reason,
                  verification_failed=int(verification))

    def retry_failed(self) -> int:
        """Put failed archives back in line (a rerun tries them again); how many."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE archives SET stage = CASE WHEN upload_id IS NULL THEN 'planned' "
                "ELSE 'job' END, job_id = NULL, verification_failed = 0 WHERE stage = 'failed'")
            return cursor.rowcount

    def counts(self) -> dict[Stage, tuple[int, int]]:
        """Archives and bytes by stage."""
        with self._lock:
            rows = self._db.execute(
                "SELECT stage, count(*), coalesce(sum(size), 0) FROM archives GROUP BY stage"
            ).fetchall()
        return {Stage(stage): (int(n), int(total)) for stage, n, total in rows}
