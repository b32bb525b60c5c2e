"""Headers, query strings and JSON fields turned into typed values, at the edge.

Services never see a header: every error that names one (a malformed hash, a part size that
is not a number, a bad Content-Range) is raised here, and the services receive integers,
hashes, enums and dates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from icevault.core.errors import (
    InvalidParameterValueError,
    MissingParameterValueError,
    SerializationError,
)
from icevault.core.models import ArchiveImport, InventoryFormat, JobStatus, Tier, parse_iso8601
from icevault.core.parsing import is_decimal, parse_decimal
from icevault.core.ranges import parse_retrieval_range
from icevault.server.call import Call
from icevault.server.wire import optional_str
from icevault.service.jobs import InventoryRequest, JobRequest

_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
# RFC 2616's form: the total is "*" (unknown) or the whole archive's size, as some tools send.
_CONTENT_RANGE_RE = re.compile(r"^bytes ([0-9]{1,19})-([0-9]{1,19})/(\*|[0-9]{1,19})$", re.ASCII)


def required(value: str | None, name: str) -> str:
    if value is None:
        raise MissingParameterValueError(f"Required parameter missing: {name}")
    return value


def sha256_hex(value: str, name: str) -> str:
    """A SHA-256 in hex (any case), as the tree-hash and content-hash headers carry it."""
    lowered = value.strip().lower()
    if not _HEX64.fullmatch(lowered):
        raise InvalidParameterValueError(f"Invalid {name}: {value[:80]}")
    return lowered


IMPORT_ID_HEADER = "x-icevault-archive-id"
IMPORT_DATE_HEADER = "x-icevault-archive-creation-date"


def archive_import(call: Call) -> ArchiveImport | None:
    """The icevault extension for imports: keep another store's archive ID and date."""
    archive_id, date = call.header(IMPORT_ID_HEADER), call.header(IMPORT_DATE_HEADER)
    if archive_id is None and date is None:
        return None
    if archive_id is None or date is None:
        raise MissingParameterValueError(
            f"An import needs both {IMPORT_ID_HEADER} and {IMPORT_DATE_HEADER}"
        )
    return ArchiveImport(archive_id.strip(), parse_iso8601(date))


def tree_hash(call: Call) -> str:
    return sha256_hex(required(call.header("x-amz-sha256-tree-hash"), "x-amz-sha256-tree-hash"),
                      "x-amz-sha256-tree-hash")


def content_sha256(call: Call) -> str | None:
    """The body's declared SHA-256 when the server must check it (see authn.Caller)."""
    value = call.header("x-amz-content-sha256")
    if value is None or call.tree_hash_binds_body:
        return None
    return sha256_hex(value, "x-amz-content-sha256")


def content_length(call: Call) -> int:
    length = call.request.content_length
    if length is None:
        raise MissingParameterValueError("Required parameter missing: Content-Length")
    return length


def part_size(call: Call) -> int:
    text = required(call.header("x-amz-part-size"), "x-amz-part-size")
    if not is_decimal(text.strip()):
        raise InvalidParameterValueError(f"Invalid x-amz-part-size: {text[:64]}")
    return int(text)


@dataclass(frozen=True, slots=True)
class ContentRange:
    first: int
    last: int
    total: int | None  # the archive's size, when the client named it


def content_range(call: Call) -> ContentRange:
    text = required(call.header("Content-Range"), "Content-Range")
    match = _CONTENT_RANGE_RE.fullmatch(text.strip()[:64])
    if not match:
        raise InvalidParameterValueError(
            f"Invalid Content-Range: {text[:64]}. Expected 'bytes first-last/*' or "
            "'bytes first-last/archive-size'"
        )
    first, last = int(match.group(1)), int(match.group(2))
    total = None if match.group(3) == "*" else int(match.group(3))
    if last < first or (total is not None and last >= total):
        raise InvalidParameterValueError(f"Invalid Content-Range: {text[:64]}")
    return ContentRange(first, last, total)


def archive_size(call: Call) -> int:
    return parse_decimal(required(call.header("x-amz-archive-size"), "x-amz-archive-size"),
                         "x-amz-archive-size")


def limit(query: Mapping[str, str], *, default: int, maximum: int) -> int:
    """A list operation's ``limit``: a positive integer, capped at ``maximum``."""
    text = query.get("limit")
    if text is None or text == "":
        return default
    value = parse_decimal(text, "limit")
    if value < 1:
        raise InvalidParameterValueError(f"Invalid limit: {text}. The limit is a positive integer")
    return min(value, maximum)


def part_marker(query: Mapping[str, str]) -> int:
    marker = query.get("marker")
    return parse_decimal(marker, "marker") if marker else 0


def completed(query: Mapping[str, str]) -> bool | None:
    text = query.get("completed")
    if text is None:
        return None
    if text.lower() not in ("true", "false"):
        raise InvalidParameterValueError(f"Invalid completed value: {text[:64]}")
    return text.lower() == "true"


def status_code(query: Mapping[str, str]) -> JobStatus | None:
    text = query.get("statuscode")
    if text is None:
        return None
    try:
        return JobStatus(text)
    except ValueError:
        raise InvalidParameterValueError(f"The job status code is not valid: {text[:64]}") from None


# -- InitiateJob's body --------------------------------------------------------------------------

def _tier(text: str | None) -> Tier | None:
    if text is None:
        return None
    for tier in Tier:
        if tier.value == text:
            return tier
    raise InvalidParameterValueError(
        f"Invalid Tier: {text[:64]}. Valid tiers are Expedited, Standard and Bulk"
    )


def _format(text: str | None) -> InventoryFormat | None:
    if text is None:
        return None
    if text not in ("JSON", "CSV"):
        raise InvalidParameterValueError(f"Invalid Format: {text[:64]}. Valid formats are JSON and CSV")
    return InventoryFormat(text)


def job_request(body: dict[str, Any]) -> JobRequest:
    """InitiateJob's body (the JobParameters object itself), typed."""
    inventory = None
    raw_inventory = body.get("InventoryRetrievalParameters")
    if raw_inventory is not None:
        if not isinstance(raw_inventory, dict):
            raise SerializationError("InventoryRetrievalParameters must be an object")
        limit_text = optional_str(raw_inventory, "Limit")
        inventory_limit = None
        if limit_text is not None:
            inventory_limit = parse_decimal(limit_text, "InventoryRetrievalParameters.Limit")
            if inventory_limit < 1:
                raise InvalidParameterValueError(
                    f"Invalid InventoryRetrievalParameters.Limit: {limit_text}"
                )
        start = optional_str(raw_inventory, "StartDate")
        end = optional_str(raw_inventory, "EndDate")
        inventory = InventoryRequest(
            start_ms=None if start is None else parse_iso8601(start),
            end_ms=None if end is None else parse_iso8601(end),
            limit=inventory_limit,
            marker=optional_str(raw_inventory, "Marker") or None,
        )
    byte_range = optional_str(body, "RetrievalByteRange")
    return JobRequest(
        type=optional_str(body, "Type"),
        archive_id=optional_str(body, "ArchiveId"),
        description=optional_str(body, "Description"),
        sns_topic=optional_str(body, "SNSTopic"),
        tier=_tier(optional_str(body, "Tier")),
        retrieval_range=None if byte_range is None else parse_retrieval_range(byte_range),
        format=_format(optional_str(body, "Format")),
        inventory=inventory,
        has_select_parameters=body.get("SelectParameters") is not None,
        has_output_location=body.get("OutputLocation") is not None,
    )
