"""The metadata store port: vaults, archives, uploads, parts, jobs and the garbage list.

Every method is one atomic transaction and blocks; callers run it in a worker thread.
Contracts every adapter keeps:

* A method that returns has committed durably (a crash right after loses nothing).
* "Not found" is a ``None`` result or an outcome enum, never an exception; the service
  layer decides which Glacier error that is.
* Blob keys that stop being referenced (a deleted archive no finished job still reads, an
  expired job's inventory, a finished upload's staging area) are put on the garbage list in
  the same transaction, so a blob is reclaimed exactly when nothing refers to it.

The store is split into ports, one per aggregate (identity, accounts, vaults, archives,
uploads, jobs, policies, maintenance, console); each module of the SQL adapter declares the
one port it implements, so the type checker holds the two to the same methods. Services
take the whole :class:`MetadataStore` through their context: every use case may need
several aggregates in one request, and one store object keeps that a single dependency.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.models import (
    Archive,
    CapacityUnit,
    Job,
    JobStatus,
    LockState,
    NotificationConfig,
    Part,
    Upload,
    Vault,
    VaultLock,
    VaultRef,
)
from icevault.store.metadata.copy_port import CopyPort


class DeleteVaultOutcome(enum.Enum):
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    NOT_EMPTY = "not_empty"


class DeleteArchiveOutcome(enum.Enum):
    DELETED = "deleted"
    ALREADY_DELETED = "already_deleted"
    NOT_FOUND = "not_found"


# What initiate_lock returns for a vault that does not exist (a lock no vault can have).
NO_VAULT = VaultLock("", "", LockState.IN_PROGRESS, 0, None)


class ArchiveIdTakenError(Exception):
    """An archive with this ID exists already (an import names its own ID)."""

    def __init__(self, existing: Archive) -> None:
        super().__init__(f"archive {existing.id} exists")
        self.existing = existing

    def same_as(self, archive: Archive) -> bool:
        """Whether the existing archive is this one again: an import repeated."""
        existing = self.existing
        return (existing.vault == archive.vault and existing.tree_hash == archive.tree_hash
                and existing.size == archive.size and existing.deleted_at is None)


class GarbageKind(enum.StrEnum):
    BLOB = "blob"
    STAGING = "staging"


@dataclass(frozen=True, slots=True)
class GarbageItem:
    seq: int
    kind: GarbageKind
    key: str


@dataclass(frozen=True, slots=True)
class JobCompletion:
    """How a due job ended, written together with its output reference."""

    status: JobStatus
    message: str
    completed_at: int
    output_blob_key: str | None = None
    output_size: int | None = None
    inventory_marker_out: str | None = None
    # A retrieval served from a restored cold copy: the copy store and the object's key.
    source_store: str | None = None
    source_key: str | None = None


@dataclass(frozen=True, slots=True)
class ArchiveFilter:
    """What the console's archive browser narrows a listing by."""

    description: str | None = None  # a substring, any case
    min_size: int | None = None
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class NotificationClaim:
    """A finished job whose notification this server now holds for sending."""

    job: Job
    attempt: int  # 1 for the first sending, 2 for the first retry, ...


class IdentityPort(Protocol):
    """Accounts, access keys, users and identity policies."""

    def claim_bootstrap_key(self, key: AccessKey) -> AccessKey:
        """Make ``key`` the first account's root key made at first start, unless one was
        made already (by another server starting at the same time): return the one that is."""
        ...

    def default_account(self) -> str:
        """The account that owns requests when authentication is off (created on first use)."""
        ...

    def installation_id(self) -> str:
        """This database's identity, shared by every server on it (made on first use): the
        mark on the blob stores that hold its objects."""
        ...

    def create_account(self, account_id: str, now: int) -> bool:
        """False when the account already exists."""
        ...

    def account_exists(self, account_id: str) -> bool: ...

    def insert_access_key(self, key: AccessKey) -> None: ...

    def get_access_key(self, key_id: str) -> AccessKey | None: ...

    def count_access_keys(self) -> int: ...

    def create_user(self, account_id: str, name: str, now: int) -> bool: ...

    def user_exists(self, account_id: str, name: str) -> bool: ...

    def list_users(self, account_id: str) -> list[str]: ...

    def delete_user(self, account_id: str, name: str) -> bool: ...

    def list_access_keys(self, account_id: str) -> list[AccessKey]: ...

    def set_access_key_status(self, key_id: str, status: KeyStatus) -> bool: ...

    def delete_access_key(self, key_id: str) -> bool: ...

    def put_user_policy(self, account_id: str, user: str, name: str, document: str) -> None: ...

    def delete_user_policy(self, account_id: str, user: str, name: str) -> bool: ...

    def user_policies(self, account_id: str, user: str) -> list[tuple[str, str]]: ...


class AccountPort(Protocol):
    """Per-account settings and provisioned capacity."""

    def get_account_setting(self, account_id: str, key: str) -> str | None: ...

    def set_account_setting(self, account_id: str, key: str, value: str) -> None: ...

    def purchase_capacity(
        self, account_id: str, unit: CapacityUnit, now: int, max_units: int
    ) -> bool: ...

    def list_capacity(self, account_id: str) -> list[CapacityUnit]: ...


class VaultPort(Protocol):
    """Vaults and their tags."""

    def create_vault(self, ref: VaultRef, now: int, max_vaults: int) -> bool:
        """Create unless it exists; False when the account already has ``max_vaults``."""
        ...

    def get_vault(self, ref: VaultRef) -> Vault | None: ...

    def list_vaults(self, account_id: str, start_name: str | None, limit: int) -> list[Vault]:
        """Vaults sorted by name from ``start_name`` (inclusive), at most ``limit``."""
        ...

    def delete_vault(self, ref: VaultRef, *, with_contents: bool = False) -> DeleteVaultOutcome:
        """Delete an empty vault (NOT_EMPTY otherwise), or with ``with_contents`` (test
        resets) one with archives and open uploads; every blob it kept alive becomes
        garbage."""
        ...

    def get_tags(self, ref: VaultRef) -> dict[str, str] | None: ...

    def add_tags(self, ref: VaultRef, tags: dict[str, str], max_tags: int) -> bool | None:
        """None: no vault; False: the result would exceed ``max_tags`` (nothing changed)."""
        ...

    def remove_tags(self, ref: VaultRef, keys: Sequence[str]) -> bool:
        """False when the vault does not exist."""
        ...


class ArchivePort(Protocol):
    """Archives, their leaf hashes and integrity marks."""

    def insert_archive(self, archive: Archive, leaves: bytes) -> bool:
        """Record a committed archive and count it in its vault; False if the vault is gone."""
        ...

    def insert_archives(self, records: Sequence[tuple[Archive, bytes]]) -> bool:
        """Record many committed archives (with their packed leaves) in one transaction, as
        :meth:`insert_archive` each; False, and nothing recorded, if a vault is gone."""
        ...

    def get_archive(self, ref: VaultRef, archive_id: str) -> Archive | None:
        """The archive, deleted or not (``deleted_at`` tells)."""
        ...

    def get_archive_leaves(
        self, archive_id: str, first: int = 0, count: int | None = None
    ) -> bytes | None:
        """The archive's packed 32-byte leaf hashes; with ``count``, only leaves ``first`` to
        ``first + count - 1`` (a ranged GetJobOutput needs only those: a 40 TB archive has
        40 million)."""
        ...

    def delete_archive(self, ref: VaultRef, archive_id: str, now: int) -> DeleteArchiveOutcome: ...

    def list_archives(
        self, ref: VaultRef, after_seq: int, start: int | None, end: int | None, limit: int,
        matching: ArchiveFilter | None = None,
    ) -> list[tuple[int, Archive]]:
        """Live archives created in ``[start, end)`` with sequence above ``after_seq`` (and,
        with ``matching``, only those it selects)."""
        ...

    def storage_history(self, account_id: str) -> list[tuple[int, int]]:
        """The account's stored bytes over time: (day start in ms, bytes added that day
        minus bytes deleted), by day, oldest first."""
        ...

    def mark_archive_corrupt(self, archive_id: str, at: int, reason: str) -> bool:
        """Mark an archive's bytes as failing verification (never served again); False when
        it was marked already."""
        ...

    def mark_archive_verified(self, archive_id: str, at: int) -> None: ...

    def stored_archives(
        self, after_seq: int, vault: VaultRef | None, limit: int
    ) -> list[tuple[int, Archive]]:
        """Archives whose bytes are still stored (deleted ones a job still serves included),
        in ``seq`` order after ``after_seq``: what a scrub reads."""
        ...

    def corrupt_archives(self) -> list[Archive]: ...

class UploadPort(Protocol):
    """Multipart uploads and their parts."""

    def insert_upload(self, upload: Upload) -> bool:
        """False when the vault does not exist."""
        ...

    def get_upload(self, ref: VaultRef, upload_id: str) -> Upload | None: ...

    def list_uploads(self, ref: VaultRef, start_id: str | None, limit: int) -> list[Upload]:
        """Open uploads ordered by id from ``start_id`` (inclusive)."""
        ...

    def put_part(self, upload_id: str, part: Part, leaves: bytes, now: int) -> bool:
        """Record (or replace) a part of an open upload; False if it is no longer open."""
        ...

    def declare_upload_size(self, upload_id: str, size: int) -> int | None:
        """Record the archive size a part's Content-Range named, unless one is recorded
        already; return the size recorded (None: no such upload)."""
        ...

    def list_parts(self, upload_id: str, start: int, limit: int) -> list[Part]:
        """Parts ordered by range, starting at byte offset ``start`` (inclusive)."""
        ...

    def part_leaves(self, upload_id: str) -> list[tuple[Part, bytes]]: ...

    def complete_upload(self, upload: Upload, archive: Archive, leaves: bytes) -> Archive | None:
        """Turn an open upload into an archive; a repeat returns the archive already made.
        None when the upload is not open or completed (aborted, missing, vault gone)."""
        ...

    def abort_upload(self, ref: VaultRef, upload_id: str, now: int) -> Upload | None:
        """Abort an open upload (idempotent for an aborted one); returns the upload's final
        state, or None when it does not exist."""
        ...

    def expire_uploads(self, idle_before: int, finished_before: int) -> int:
        """Abort uploads idle since ``idle_before``; forget finished ones."""
        ...


class JobPort(Protocol):
    """Retrieval jobs."""

    def insert_job(self, job: Job) -> bool:
        """False when the vault does not exist."""
        ...

    def get_job(self, ref: VaultRef, job_id: str) -> Job | None: ...

    def list_jobs(
        self,
        ref: VaultRef,
        *,
        completed: bool | None,
        status: JobStatus | None,
        start_seq: int | None,
        limit: int,
    ) -> list[Job]: ...

    def claim_due_jobs(self, now: int, limit: int, lease_ms: int) -> list[Job]:
        """Take up to ``limit`` jobs due at ``now`` that no other server holds, and hold them
        until ``now + lease_ms``. Servers sharing the database never get the same job while
        its lease runs; a job held by a server that died is taken again once it ends."""
        ...

    def renew_job_leases(self, job_ids: Sequence[str], until: int) -> None:
        """Hold the jobs still held (in progress, not deferred) until ``until``: their
        server is still at work on them."""
        ...

    def next_due_time(self) -> int | None:
        """When the next job is due that no server holds (now or past for one due now)."""
        ...

    def defer_job(self, job_id: str, ready_at: int, message: str) -> None:
        """A claimed job that waits for something (a restore): due again at ``ready_at``,
        with ``message`` as its status message meanwhile."""
        ...

    def release_jobs(self, job_ids: list[str] | None) -> None:
        """Give up the lease on jobs still in progress, so that they are due again at once
        (this server could not complete them now); None: every job and notification claim
        (a server that is the store's only one, at start, takes back what it held when it
        stopped)."""
        ...

    def finish_job(self, job_id: str, completion: JobCompletion) -> Job | None:
        """Record a job's end. An archive retrieval whose archive was deleted meanwhile is
        recorded as failed instead; inventory completion updates the vault's inventory date.
        None when the job no longer exists or had already finished: of several servers
        finishing one job, exactly one gets it. The job's notification becomes due at once,
        in the same transaction, so a finished job is never left without one."""
        ...

    def claim_notifications(self, now: int, limit: int, lease_ms: int) -> list[NotificationClaim]:
        """Take up to ``limit`` finished jobs whose notification is due and that no other
        server holds, holding each until ``now + lease_ms``."""
        ...

    def settle_notification(self, job_id: str, retry_at: int | None) -> None:
        """The notification was sent (``retry_at`` None) or must be tried again then."""
        ...

    def expire_jobs(self, completed_before: int) -> int: ...

    def retrieval_bytes_since(self, account_id: str, since: int) -> int:
        """Bytes of archive retrievals the account initiated at or after ``since``."""
        ...


class PolicyPort(Protocol):
    """Vault access policies, locks, notification configurations and topics."""

    def get_access_policy(self, ref: VaultRef) -> str | None: ...

    def set_access_policy(self, ref: VaultRef, document: str | None, now: int) -> bool:
        """Set, or with None delete, the access policy; False when the vault does not exist."""
        ...

    def get_lock(self, ref: VaultRef, now: int) -> VaultLock | None:
        """The vault's lock in force; an in-progress lock past its expiry is none."""
        ...

    def get_vault_policies(self, ref: VaultRef, now: int) -> tuple[str | None, VaultLock | None]:
        """The access policy and the lock in force, in one read."""
        ...

    def initiate_lock(self, ref: VaultRef, lock: VaultLock, now: int) -> VaultLock | None:
        """Store an in-progress lock unless one exists (returned instead); :data:`NO_VAULT`
        when the vault does not exist."""
        ...

    def complete_lock(self, ref: VaultRef, lock_id: str, now: int) -> VaultLock | None: ...

    def abort_lock(self, ref: VaultRef, now: int) -> VaultLock | None:
        """Remove an in-progress lock; a locked one is left and returned."""
        ...

    def get_notifications(self, ref: VaultRef) -> NotificationConfig | None: ...

    def set_notifications(self, ref: VaultRef, config: NotificationConfig | None) -> bool: ...

    def record_notification(
        self, ref: VaultRef, job_id: str, topic: str, target: str | None, body: str, status: str,
        now: int,
    ) -> None: ...

    def list_notifications(self, ref: VaultRef) -> list[dict[str, Any]]: ...

    def delivered_notifications(self, job_id: str) -> set[tuple[str, str]]:
        """The (topic, target) pairs the job's notification is done with (delivered, or
        refused by the address policy), so a retry sends only to the others."""
        ...

    def put_topic(self, account_id: str, name: str, url: str, now: int) -> None: ...

    def get_topic_url(self, account_id: str, name: str) -> str | None: ...

    def list_topics(self, account_id: str) -> list[tuple[str, str]]: ...

    def delete_topic(self, account_id: str, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store holds now: for metrics, every account together; for an account's
    own view, its own."""

    archives: int  # live ones
    archive_bytes: int
    corrupt_archives: int  # live ones marked as failing verification
    jobs: dict[str, int]  # by status code
    open_uploads: int
    oldest_due_job_at: int | None  # ready_at of the longest-waiting job that is due


class MaintenancePort(Protocol):
    """The garbage list, server-wide settings and what the sweeps ask."""

    def ping(self) -> None:
        """Return if the database answers now; raise if it does not (readiness)."""
        ...

    def store_stats(self, now: int, account_id: str | None = None) -> StoreStats:
        """What the store holds: of every account, or (``account_id``) of one."""
        ...

    def enqueue_garbage(self, kind: GarbageKind, key: str) -> None: ...

    def take_garbage(self, limit: int) -> list[GarbageItem]: ...

    def drop_garbage(self, seqs: Sequence[int]) -> None: ...

    def blob_keys_in_use(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the metadata still refers to (archives, job outputs)."""
        ...

    def staging_keys_in_use(self, keys: Sequence[str]) -> set[str]: ...

    def close(self) -> None: ...

    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str | None) -> None:
        """Store a server-wide value (None removes it)."""
        ...


class ConsolePort(Protocol):
    """Console sessions ended before they expire, and failed sign-ins: state every server
    on the database shares, so a sign-out or a limit holds whichever server answers."""

    def end_sessions(self, subject: str, ended_at: int, keep_until: int) -> None:
        """Sessions of ``subject`` made at or before ``ended_at`` are over; the record may
        go after ``keep_until``."""
        ...

    def sessions_ended_at(self, subjects: Sequence[str]) -> int | None:
        """The latest end recorded for any of ``subjects``, if any."""
        ...

    def note_sign_in_failure(self, subjects: Sequence[str], now: int, window_ms: int) -> None:
        """Count a failed sign-in against each subject, in windows of ``window_ms``."""
        ...

    def sign_in_failures(self, subjects: Sequence[str], since: int) -> int:
        """The most failures any of ``subjects`` has in a window that began after ``since``."""
        ...

    def forget_console_state(self, now: int, window_ms: int) -> None:
        """Drop ends no session can need any more, and windows that are over."""
        ...


class MetadataStore(
    IdentityPort, AccountPort, VaultPort, ArchivePort, UploadPort, JobPort, PolicyPort,
    MaintenancePort, CopyPort, ConsolePort, Protocol,
):
    """The whole metadata store, as the services use it."""

    #: True when a single-row read is cheaper than a thread hop (embedded SQLite), so the
    #: HTTP edge may run such reads on the event loop.
    reads_are_local: bool
    #: True when the store serves one server only (an SQLite file; several servers need a
    #: database server): claims found at start are then the last run's, never another's.
    serves_one_server: bool
