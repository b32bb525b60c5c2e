"""The metadata port of archive copies (``--copy-url``): which archives each copy store
holds, owes or is being given, the hot bytes removed and brought back (``--hot-days``), and
the restores asked for. Part of :class:`~icevault.store.metadata.base.MetadataStore`."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from icevault.core.models import Archive, VaultRef


class CopyState(enum.StrEnum):
    COPYING = "copying"
    VERIFIED = "verified"
    FAILED = "failed"
    DROPPING = "dropping"


@dataclass(frozen=True, slots=True)
class ArchiveCopy:
    """Where one copy of an archive is, and in what state."""

    archive_id: str
    store: str
    state: CopyState
    blob_key: str | None
    attempts: int
    error: str | None
    updated_at: int
    retry_at: int | None = None
    restore_requested_at: int | None = None
    restored_until: int | None = None


@dataclass(frozen=True, slots=True)
class CopyBacklog:
    """The copies still owed to one store: archives, their bytes, the oldest's creation."""

    store: str
    archives: int
    bytes: int
    oldest_created_at: int | None


class CopyPort(Protocol):
    """Copies of every archive in further blob stores. An archive owes a copy to each
    store it has no row for; rows are claimed with a lease, as due jobs are."""

    def claim_owed_copies(self, store: str, now: int, lease_ms: int,
                          limit: int) -> list[tuple[Archive, int]]:
        """Archives (stored, not corrupt, not deleted) with no verified copy in ``store``
        and none being made by another claim, claimed until ``now + lease_ms``; each with
        how many attempts at its copy failed before."""
        ...

    def renew_copy_claims(self, store: str, archive_ids: Sequence[str], until: int) -> None:
        """Hold the copies to ``store`` still being made until ``until``: their server is
        still at work on them."""
        ...

    def finish_copy(self, archive_id: str, store: str, now: int, blob_key: str | None,
                    error: str | None, retry_at: int | None) -> bool:
        """Record a claimed copy as verified (``blob_key``) or failed (``error``, retried
        from ``retry_at``). False when the archive was deleted meanwhile, or the copy is no
        longer being made (finished by a server that took the claim over): the new object
        is then the caller's to delete."""
        ...

    def record_verified_copy(self, archive_id: str, store: str, blob_key: str,
                             now: int) -> None:
        """A copy made and verified before the archive was acknowledged
        (--copies-before-ack)."""
        ...

    def archive_copies(self, archive_id: str) -> list[ArchiveCopy]: ...

    def release_copy_claims(self) -> None:
        """Every copy claim is claimable at once (at the start of the only server: the
        claims found are its last run's, and no copy is being made)."""
        ...

    def vault_copies(self, ref: VaultRef, after_seq: int,
                     limit: int) -> list[tuple[int, Archive, list[ArchiveCopy]]]:
        """A vault's archives from ``after_seq`` on, each with its copies."""
        ...

    def copy_backlog(self, store: str, now: int) -> CopyBacklog: ...

    def copy_stores(self) -> list[str]:
        """Every store a copy row names (the stores of copies made or being made)."""
        ...

    def mark_copy_failed(self, archive_id: str, store: str, now: int, error: str) -> None:
        """A verified copy that no longer matches: made again from a good one."""
        ...

    def replace_archive_blob(self, archive_id: str, old_key: str, new_key: str,
                             now: int) -> bool:
        """The archive's stored bytes are now ``new_key`` (a repair): the old object goes on
        the garbage list and the corrupt mark is cleared, in one transaction. False (and
        nothing changed) when the archive no longer has ``old_key``."""
        ...

    def evictable_archives(self, stores: Sequence[str], verified_before: int,
                           limit: int) -> list[Archive]:
        """Archives whose hot bytes may go (--hot-days): every one of ``stores`` holds a
        copy verified before ``verified_before``, and no job reads or will read them."""
        ...

    def evict_hot(self, archive_id: str, blob_key: str, now: int) -> bool:
        """Remove the hot bytes (onto the garbage list); False if they changed meanwhile."""
        ...

    def rehydrate(self, archive_id: str, blob_key: str, now: int) -> bool:
        """Hot bytes brought back from a copy; False if the archive is gone or has some."""
        ...

    def note_restore_requested(self, archive_id: str, store: str, now: int) -> None: ...

    def note_restored(self, archive_id: str, store: str, until: int) -> None:
        """A cold copy's restore is done: readable until ``until``."""
        ...

    def jobs_waiting_for_copies(self) -> int:
        """Retrieval jobs in progress whose archive's bytes are only in copy stores (a
        restore, or a copy back, still to finish)."""
        ...

    def copies_to_drop(self, limit: int) -> list[ArchiveCopy]: ...

    def drop_copies(self, copies: Sequence[tuple[str, str]]) -> None:
        """Forget these (archive id, store) rows once their objects are deleted."""
        ...

    def copy_keys_in_use(self, store: str, keys: Sequence[str]) -> set[str]: ...
