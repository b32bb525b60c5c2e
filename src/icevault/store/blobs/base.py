"""The blob store port: where archive bytes, upload staging areas and job outputs live.

All methods block (they do disk or network I/O) and are called from worker threads, never
on the event loop. Contracts every adapter keeps:

* A key returned by :meth:`BlobWriter.commit` or :meth:`BlobStore.promote_staging` names
  bytes that are durable: they survive a crash or power loss from that moment on.
* Nothing is visible under a key before it is committed; an aborted or crashed writer leaves
  at most garbage that :meth:`BlobStore.sweep_temporary` removes.
* :meth:`BlobStore.delete` and :meth:`BlobStore.delete_staging` of a missing key succeed
  (deletion is idempotent, so a cleanup pass interrupted by a crash can simply run again).
* Reading a missing key raises :class:`BlobNotFoundError` (a ``FileNotFoundError``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from typing import BinaryIO, NamedTuple, Protocol, runtime_checkable


class BlobNotFoundError(FileNotFoundError):
    """The key names no committed blob."""


class BlobIntegrityError(OSError):
    """The store computed another checksum over bytes than the one sent: the write failed."""


class StagedPart(NamedTuple):
    """One part of a staging area as the metadata recorded it: where it goes, how long it
    is, and the name its writer's commit returned."""

    offset: int
    length: int
    name: str | None  # None: recorded before parts had names (the offset names it)


class BlobWriter(Protocol):
    """Sequential writer of one new blob (or of one part into a staging area)."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def commit(self) -> str:
        """Make the bytes durable and return their key (for a part: the name of these bytes
        in the staging area, which :meth:`BlobStore.promote_staging` is given back)."""
        ...

    def abort(self) -> None:
        """Throw away what was written; safe to call after a failed write."""
        ...


class BlobReader(Protocol):
    """A byte range of one blob, opened for streaming to a client."""

    @property
    def length(self) -> int: ...

    def file_segment(self) -> tuple[BinaryIO, int, int] | None:
        """``(file, offset, count)`` when the range can be sent with zero-copy sendfile."""
        ...

    def read(self, size: int) -> bytes:
        """Next bytes of the range, at most ``size``; ``b""`` at its end."""
        ...

    def close(self) -> None: ...


class BlobStore(Protocol):
    # Whether opening a range is a local file operation (cheap enough for the event loop)
    # rather than a network request.
    opens_are_local: bool
    #: False for an S3 archive class (GLACIER, DEEP_ARCHIVE): an object is read only after a
    #: restore, so a copy there is checked by the checksums the store computed as it took
    #: the bytes, not by reading it back.
    readable_at_once: bool

    def create(self) -> BlobWriter:
        """Start writing a new blob; its key is known only after commit."""
        ...

    def open_range(self, key: str, start: int, length: int) -> BlobReader:
        """Open ``length`` bytes from ``start`` without reading what comes before."""
        ...

    def delete(self, key: str) -> None: ...

    def create_staging(self) -> str:
        """Create an empty staging area for a multipart upload and return its key."""
        ...

    def open_part(self, staging_key: str, offset: int) -> BlobWriter:
        """Writer of one part at ``offset`` of a staging area; parts may be written in
        parallel, and a part written again replaces the earlier bytes. Servers sharing a
        store may write the same part at once: each write's commit returns its own name,
        and only the part the metadata recorded is promoted."""
        ...

    def promote_staging(self, staging_key: str, size: int, parts: Sequence[StagedPart]) -> str:
        """Turn ``parts`` (which tile the first ``size`` bytes) of a staging area into a
        committed blob without copying them through Python memory; the staging area is left
        for :meth:`delete_staging`."""
        ...

    def delete_staging(self, staging_key: str) -> None: ...

    def iter_keys(self, older_than_s: float = 0.0) -> Iterator[str]:
        """Every committed blob key last written at least ``older_than_s`` seconds ago (for
        the orphan sweep)."""
        ...

    def iter_staging_keys(self, older_than_s: float = 0.0) -> Iterator[str]: ...

    def sweep_temporary(self, older_than_s: float) -> int:
        """Remove uncommitted writes older than ``older_than_s`` seconds; return how many."""
        ...

    def ping(self) -> None:
        """Return if the store answers now; raise (OSError, or the client's error) if not.
        Cheap: a readiness probe calls it every few seconds."""
        ...

    def read_owner(self) -> str | None:
        """The installation whose objects the store holds (its mark), or None if unmarked."""
        ...

    def write_owner(self, owner: str) -> None:
        """Mark the store as holding ``owner``'s objects (beside them, never among them)."""
        ...


class RestoreState(enum.Enum):
    ARCHIVED = "archived"  # no restored copy, none being made
    RESTORING = "restoring"
    RESTORED = "restored"  # readable until the restore's expiry


class RestoreStatus(NamedTuple):
    state: RestoreState
    #: When a restored copy stops being readable (milliseconds), if the store says.
    until_ms: int | None = None


@runtime_checkable
class Restorable(Protocol):
    """A store whose objects are read only after a restore (an S3 archive class)."""

    #: The restore tiers the class offers (DEEP_ARCHIVE has no Expedited).
    restore_tiers: frozenset[str]
    #: How many days a restored copy stays readable (the copy URL's restore-days=).
    restore_days: int

    def restore_state(self, key: str) -> RestoreStatus: ...

    def request_restore(self, key: str, days: int, tier: str) -> RestoreStatus:
        """Ask for a restored copy readable for ``days``; the state it is in after."""
        ...
