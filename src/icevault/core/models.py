"""Frozen records of the domain. Times are integer milliseconds since the Unix epoch (UTC)."""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from icevault.core.errors import InvalidParameterValueError

VAULT_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
ACCOUNT_ID_RE = re.compile(r"[0-9]{12}")


class Clock(Protocol):
    """Injected time source, so expiry and delays are testable without sleeping."""

    def now_ms(self) -> int:
        """Wall-clock time: what dates and expiries are in."""
        ...

    def monotonic_ms(self) -> int:
        """Time that never goes back (the wall clock may): what cache lifetimes count."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000


class AdjustableClock:
    """The system clock moved forward by what a test asked for (``--test-controls``): jobs
    and uploads then come due and expire without anyone waiting hours."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000 + self.offset_ms

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise InvalidParameterValueError("The clock only moves forward")
        self.offset_ms += ms


# The dates icevault stores and shows: from the epoch to the last millisecond of year 9999.
MIN_MS = 0
MAX_MS = 253_402_300_799_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso8601(ms: int) -> str:
    """Glacier's date format: ISO-8601 UTC with milliseconds and ``Z``.

    Total: a stored value outside the supported range is shown at its nearest end rather
    than failing, so that one bad record cannot break a listing."""
    ms = min(max(ms, MIN_MS), MAX_MS)
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso8601(text: str) -> int:
    """Parse an ISO-8601 date (milliseconds optional; naive means UTC) into milliseconds."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidParameterValueError(f"Invalid date: {text}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        # Exact: float seconds times 1000 loses a millisecond now and then.
        ms = (moment - _EPOCH) // timedelta(milliseconds=1)
    except OverflowError:
        ms = -1
    if not MIN_MS <= ms <= MAX_MS:
        raise InvalidParameterValueError(
            f"Invalid date: {text[:64]}. Dates are from 1970-01-01T00:00:00Z to "
            "9999-12-31T23:59:59Z"
        )
    return ms


def validate_vault_name(name: str) -> str:
    if not VAULT_NAME_RE.fullmatch(name):
        raise InvalidParameterValueError(
            f"Invalid vault name: {name!r}. Vault names are 1 to 255 characters from "
            "a-z, A-Z, 0-9, '_' (underscore), '-' (hyphen) and '.' (period)."
        )
    return name


def validate_description(text: str, what: str = "archive description") -> str:
    """Descriptions are at most 1,024 printable ASCII characters (0x20-0x7E)."""
    if len(text) > 1024 or any(not 0x20 <= ord(ch) <= 0x7E for ch in text):
        raise InvalidParameterValueError(
            f"Invalid {what}: it must be at most 1024 printable ASCII characters"
        )
    return text


@dataclass(frozen=True, slots=True)
class VaultRef:
    account_id: str
    name: str

    def arn(self, region: str) -> str:
        return f"arn:aws:glacier:{region}:{self.account_id}:vaults/{self.name}"

    def location(self) -> str:
        return f"/{self.account_id}/vaults/{self.name}"


@dataclass(frozen=True, slots=True)
class Vault:
    ref: VaultRef
    created_at: int
    archive_count: int
    size_bytes: int
    last_inventory_at: int | None


@dataclass(frozen=True, slots=True)
class Archive:
    id: str
    vault: VaultRef
    description: str | None
    size: int
    tree_hash: str
    created_at: int
    blob_key: str | None
    deleted_at: int | None = None
    corrupt_at: int | None = None  # when its bytes failed verification; never served after
    corrupt_reason: str | None = None
    # When this store received it, if later than created_at (an import keeps another
    # store's creation date): a vault lock's age conditions count from the later of the two.
    stored_at: int | None = None
    # When its hot bytes were removed (--hot-days) because every copy store holds a
    # verified copy: a retrieval brings them back from a copy first.
    hot_evicted_at: int | None = None

    @property
    def held_since(self) -> int:
        return max(self.created_at, self.stored_at or self.created_at)


@dataclass(frozen=True, slots=True)
class Part:
    start: int
    end: int  # inclusive
    tree_hash: str
    # The name the blob store gave this write of the part (see BlobStore.open_part).
    blob_part: str | None = field(default=None, compare=False)

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class UploadState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    vault: VaultRef
    description: str | None
    part_size: int
    created_at: int
    updated_at: int
    blob_key: str
    state: UploadState
    archive_id: str | None = None
    declared_size: int | None = None  # the archive size parts' Content-Range named, if any
    imported: ArchiveImport | None = None  # the archive's ID and date from another store


IMPORT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass(frozen=True, slots=True)
class ArchiveImport:
    """An archive arriving from another Glacier store keeps its ID and creation date (an
    icevault extension, allowed to callers granted ``icevault:ImportArchive``)."""

    archive_id: str
    created_at: int

    def __post_init__(self) -> None:
        if not IMPORT_ID_RE.fullmatch(self.archive_id) or self.archive_id.startswith("-"):
            raise InvalidParameterValueError(
                "Invalid archive ID to import: 1 to 200 characters from A-Z, a-z, 0-9, '_' "
                "and '-', not starting with '-'"
            )
        if not MIN_MS <= self.created_at <= MAX_MS:
            raise InvalidParameterValueError("Invalid creation date to import")


class JobAction(enum.StrEnum):
    ARCHIVE_RETRIEVAL = "ArchiveRetrieval"
    INVENTORY_RETRIEVAL = "InventoryRetrieval"


class JobStatus(enum.StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Tier(enum.StrEnum):
    EXPEDITED = "Expedited"
    STANDARD = "Standard"
    BULK = "Bulk"


class InventoryFormat(enum.StrEnum):
    JSON = "JSON"
    CSV = "CSV"


@dataclass(frozen=True, slots=True)
class InventoryParams:
    format: InventoryFormat = InventoryFormat.JSON
    start_date: int | None = None
    end_date: int | None = None
    limit: int | None = None
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    vault: VaultRef
    action: JobAction
    status: JobStatus
    created_at: int
    ready_at: int
    description: str | None = None
    sns_topic: str | None = None
    tier: Tier | None = None
    archive_id: str | None = None
    archive_size: int | None = None
    archive_tree_hash: str | None = None
    retrieval_start: int | None = None
    retrieval_end: int | None = None
    range_tree_hash: str | None = None
    inventory: InventoryParams | None = None
    inventory_marker_out: str | None = None
    status_message: str | None = None
    completed_at: int | None = None
    output_blob_key: str | None = None
    output_size: int | None = None
    # A retrieval whose archive's bytes were removed (--hot-days) is served from a restored
    # cold copy: that copy store's name and its object's key.
    source_store: str | None = None
    source_key: str | None = None
    seq: int = field(default=0, compare=False)

    @property
    def completed(self) -> bool:
        return self.status is not JobStatus.IN_PROGRESS


class LockState(enum.StrEnum):
    IN_PROGRESS = "InProgress"
    LOCKED = "Locked"


@dataclass(frozen=True, slots=True)
class VaultLock:
    lock_id: str
    policy: str
    state: LockState
    created_at: int
    expires_at: int | None  # None once locked


@dataclass(frozen=True, slots=True)
class NotificationConfig:
    sns_topic: str
    events: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CapacityUnit:
    id: str
    start_at: int
    expires_at: int
