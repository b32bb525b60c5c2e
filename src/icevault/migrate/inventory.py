"""Glacier vault inventories (JSON or CSV), read as a stream: real ones reach gigabytes and
millions of archives, so no inventory is ever held whole in memory."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ijson

from icevault.client.exceptions import ClientError
from icevault.core.errors import InvalidParameterValueError
from icevault.core.models import IMPORT_ID_RE, parse_iso8601

_TREE_HASH = re.compile(r"[0-9a-f]{64}")
MAX_ARCHIVE_SIZE = 40_000 * 1024**3  # Glacier's largest archive


class InventoryError(ClientError):
    """The inventory is not one Glacier writes (says where). Glacier sends no checksum for
    an inventory's bytes, so this is also how a damaged download shows: a rerun fetches it
    again."""


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    archive_id: str
    description: str
    creation_date: str  # as the source printed it (ISO 8601)
    size: int
    tree_hash: str

    @property
    def created_ms(self) -> int:
        return parse_iso8601(self.creation_date)


def _size(value: Any) -> int:
    """An archive's size: a whole number of bytes, from 1 to Glacier's 40,000 GiB (a JSON
    number may come as a float: 1e300 and 2.5 are not sizes, 1048576.0 is)."""
    if isinstance(value, bool):
        raise ValueError(f"Size {value!r} is not a number of bytes")
    if isinstance(value, float | Decimal):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"Size {value!r} is not a whole number of bytes")
    elif isinstance(value, str):
        if not value.strip().isascii() or not value.strip().isdigit():
            raise ValueError(f"Size {value[:40]!r} is not a number of bytes")
    elif not isinstance(value, int):
        raise ValueError(f"Size is a {type(value).__name__}, not a number")
    size = int(value)
    if not 1 <= size <= MAX_ARCHIVE_SIZE:
        raise ValueError(f"Size {size} is outside 1 to {MAX_ARCHIVE_SIZE} bytes")
    return size


def _text(record: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key} is {'missing' if value is None else 'not text'}")
    return value


def _entry(record: dict[str, Any], where: str) -> InventoryEntry:
    try:
        entry = InventoryEntry(
            archive_id=_text(record, "ArchiveId"),
            description=_text(record, "ArchiveDescription", required=False),
            creation_date=_text(record, "CreationDate"),
            size=_size(record.get("Size")),
            tree_hash=_text(record, "SHA256TreeHash").lower(),
        )
        entry.created_ms  # noqa: B018 - validates the date
    except (TypeError, ValueError, OverflowError, InvalidParameterValueError) as exc:
        raise InventoryError(f"{where}: not a Glacier inventory entry ({exc})") from None
    # IDs are printed and used in URLs: only what Glacier hands out (URL-safe characters).
    if not IMPORT_ID_RE.fullmatch(entry.archive_id):
        raise InventoryError(f"{where}: {entry.archive_id[:200]!r} is not a Glacier archive ID")
    if not _TREE_HASH.fullmatch(entry.tree_hash):
        raise InventoryError(f"{where}: archive {entry.archive_id} has an invalid tree hash")
    return entry


def read_inventory(buffered: io.BufferedReader) -> Iterator[InventoryEntry]:
    """The archives of an inventory in Glacier's JSON or CSV format (told apart by the first
    byte), one at a time. ``buffered`` is e.g. ``open(path, "rb")``."""
    head = buffered.peek(64).lstrip()[:1]
    if head == b"{":
        try:
            for n, record in enumerate(ijson.items(buffered, "ArchiveList.item",
                                                   use_float=True)):
                yield _entry(record, f"ArchiveList[{n}]")
        except ijson.JSONError as exc:
            raise InventoryError(f"the JSON inventory is malformed: {exc}") from None
        return
    text = io.TextIOWrapper(buffered, encoding="utf-8", newline="")
    reader = csv.DictReader(text)
    wanted = {"ArchiveId", "ArchiveDescription", "CreationDate", "Size", "SHA256TreeHash"}
    if reader.fieldnames is None or not wanted <= set(reader.fieldnames):
        raise InventoryError(f"the CSV inventory's header is {reader.fieldnames}; expected "
                             f"{', '.join(sorted(wanted))}")
    for n, row in enumerate(reader, start=2):
        yield _entry(row, f"line {n}")
