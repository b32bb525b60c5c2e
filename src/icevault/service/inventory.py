"""Vault inventories, written as a stream into a blob so any vault size takes constant memory.

AWS serves inventories from a daily snapshot; icevault takes the snapshot when the job
completes, so an inventory is always current as of its ``InventoryDate``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from icevault.core.errors import InvalidParameterValueError
from icevault.core.models import Archive, InventoryFormat, InventoryParams, VaultRef, iso8601
from icevault.core.parsing import is_decimal
from icevault.store.blobs.base import BlobWriter
from icevault.store.metadata.base import MetadataStore

PAGE = 1000
CSV_HEADER = "ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash\n"


def encode_marker(seq: int) -> str:
    return base64.urlsafe_b64encode(f"icevault-inventory:{seq}".encode()).decode().rstrip("=")


def decode_marker(marker: str) -> int:
    try:
        text = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode()
        prefix, _, seq = text.partition(":")
        if prefix != "icevault-inventory" or not is_decimal(seq):
            raise ValueError(marker)
        return int(seq)
    except ValueError:
        raise InvalidParameterValueError(f"Invalid inventory marker: {marker[:64]}") from None


def csv_field(value: str) -> str:
    """Quote as Glacier does: wrap in double quotes, escape an embedded quote as \\"."""
    return '"' + value.replace('"', '\\"') + '"'


def _json_item(archive: Archive) -> str:
    return json.dumps(
        {
            "ArchiveId": archive.id,
            "ArchiveDescription": archive.description or "",
            "CreationDate": iso8601(archive.created_at),
            "Size": archive.size,
            "SHA256TreeHash": archive.tree_hash,
        },
        separators=(",", ":"),
    )


def _csv_row(archive: Archive) -> str:
    return (
        f"{archive.id},{csv_field(archive.description or '')},{iso8601(archive.created_at)},"
        f"{archive.size},{archive.tree_hash}\n"
    )


@dataclass(frozen=True, slots=True)
class InventoryResult:
    size: int
    next_marker: str | None


def write_inventory(
    meta: MetadataStore,
    vault: VaultRef,
    vault_arn: str,
    params: InventoryParams,
    snapshot_ms: int,
    out: BlobWriter,
) -> InventoryResult:
    """Write the inventory to ``out`` (not committed here) and report its size and marker."""
    written = 0

    def emit(text: str) -> None:
        nonlocal written
        data = text.encode()
        out.write(data)
        written += len(data)

    is_json = params.format is InventoryFormat.JSON
    if is_json:
        emit(
            '{"VaultARN":' + json.dumps(vault_arn) + ',"InventoryDate":"'
            + iso8601(snapshot_ms) + '","ArchiveList":['
        )
    else:
        emit(CSV_HEADER)
    after = 0 if params.marker is None else decode_marker(params.marker) - 1
    remaining = params.limit
    first = True
    next_marker: str | None = None
    while True:
        want = PAGE if remaining is None else min(PAGE, remaining + 1)
        rows = meta.list_archives(vault, after, params.start_date, params.end_date, want)
        for seq, archive in rows:
            if remaining is not None and remaining == 0:
                next_marker = encode_marker(seq)
                break
            if is_json:
                emit(("" if first else ",") + _json_item(archive))
            else:
                emit(_csv_row(archive))
            first = False
            after = seq
            if remaining is not None:
                remaining -= 1
        if next_marker is not None or len(rows) < want:
            break
    if is_json:
        emit("]}")
    return InventoryResult(written, next_marker)
