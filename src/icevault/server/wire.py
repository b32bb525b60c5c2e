"""Wire formats: JSON bodies of Glacier responses and small response builders."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from icevault.core.errors import (
    SerializationError,
)
from icevault.core.models import Job, JobAction, JobStatus, Part, Upload, Vault, iso8601
from icevault.core.parsing import load_json

JSON_TYPE = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=JSON_TYPE,
        headers=headers,
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def read_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a SerializationException."""
    if not raw.strip():
        return {}
    body = load_json(raw)
    if not isinstance(body, dict):
        raise SerializationError("The request body must be a JSON object")
    return body


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SerializationError(f"{key} must be a string")
    return value


def vault_json(vault: Vault, region: str) -> dict[str, Any]:
    return {
        "CreationDate": iso8601(vault.created_at),
        "LastInventoryDate": (
            None if vault.last_inventory_at is None else iso8601(vault.last_inventory_at)
        ),
        "NumberOfArchives": vault.archive_count,
        "SizeInBytes": vault.size_bytes,
        "VaultARN": vault.ref.arn(region),
        "VaultName": vault.ref.name,
    }


def upload_json(upload: Upload, region: str) -> dict[str, Any]:
    return {
        "ArchiveDescription": upload.description,
        "CreationDate": iso8601(upload.created_at),
        "MultipartUploadId": upload.id,
        "PartSizeInBytes": upload.part_size,
        "VaultARN": upload.vault.arn(region),
    }


def part_json(part: Part) -> dict[str, Any]:
    return {"RangeInBytes": f"{part.start}-{part.end}", "SHA256TreeHash": part.tree_hash}


def job_json(job: Job, region: str) -> dict[str, Any]:
    archive_job = job.action is JobAction.ARCHIVE_RETRIEVAL
    whole = (
        archive_job
        and job.archive_size is not None
        and (job.retrieval_start, job.retrieval_end) == (0, job.archive_size - 1)
    )
    # AWS leaves a whole-archive retrieval's SHA256TreeHash null until the job completes.
    tree_hash = None
    if archive_job and not (whole and job.status is JobStatus.IN_PROGRESS):
        tree_hash = job.range_tree_hash
    inventory = None
    if job.inventory is not None:
        inv = job.inventory
        inventory = {
            "Format": inv.format.value,
            "StartDate": None if inv.start_date is None else iso8601(inv.start_date),
            "EndDate": None if inv.end_date is None else iso8601(inv.end_date),
            "Limit": None if inv.limit is None else str(inv.limit),
            "Marker": job.inventory_marker_out,
        }
    return {
        "Action": job.action.value,
        "ArchiveId": job.archive_id,
        "ArchiveSHA256TreeHash": job.archive_tree_hash if archive_job else None,
        "ArchiveSizeInBytes": job.archive_size if archive_job else None,
        "Completed": job.completed,
        "CompletionDate": None if job.completed_at is None else iso8601(job.completed_at),
        "CreationDate": iso8601(job.created_at),
        "InventoryRetrievalParameters": inventory,
        "InventorySizeInBytes": (
            job.output_size
            if job.action is JobAction.INVENTORY_RETRIEVAL and job.status is JobStatus.SUCCEEDED
            else None
        ),
        "JobDescription": job.description,
        "JobId": job.id,
        "JobOutputPath": None,
        "OutputLocation": None,
        "RetrievalByteRange": (
            f"{job.retrieval_start}-{job.retrieval_end}" if archive_job else None
        ),
        "SelectParameters": None,
        "SHA256TreeHash": tree_hash,
        "SNSTopic": job.sns_topic,
        "StatusCode": job.status.value,
        "StatusMessage": job.status_message,
        "Tier": None if job.tier is None else job.tier.value,
        "VaultARN": job.vault.arn(region),
    }
