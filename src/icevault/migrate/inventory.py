"""Glacier vault inventories (JSON or CSV), read as a stream: real ones reach gigabytes and
millions of archives, so no inventory is ever held whole in memory."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ijson

from icevault.client.exceptions import ClientError
from icevault.core.errors import InvalidParameterValueError
from icevault.core.models import parse_iso8601

_TREE_HASH = re.compile(r"^[0-9a-f]{64}$")


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


def _entry(record: dict[str, Any], where: str) -> InventoryEntry:
    try:
        entry = InventoryEntry(
            archive_id=str(record["ArchiveId"]),
            description=str(record.get("ArchiveDescription") or ""),
            creation_date=str(record["CreationDate"]),
            size=int(record["Size"]),
            tree_hash=str(record["SHA256TreeHash"]).lower(),
        )
        entry.created_ms  # noqa: B018 - validates the date
    except (KeyError, TypeError, ValueError, InvalidParameterValueError) as exc:
        raise InventoryError(f"{where}: not a Glacier inventory entry ({exc})") from None
    if not entry.archive_id or entry.size < 1 or not _TREE_HASH.fullmatch(entry.tree_hash):
        raise InventoryError(f"{where}: archive {entry.archive_id!r} has an invalid size or "
                             "tree hash")
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
