"""Starting, finding and waiting for retrieval jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError as BotoClientError

from icevault.client.exceptions import JobExpiredError, JobNotReadyError


def start_retrieval(
    client: Any,
    vault: str,
    archive_id: str,
    *,
    account_id: str = "-",
    tier: str | None = None,
    byte_range: str | None = None,
    description: str | None = None,
) -> str:
    params: dict[str, Any] = {"Type": "archive-retrieval", "ArchiveId": archive_id}
    if tier:
        params["Tier"] = tier
    if byte_range:
        params["RetrievalByteRange"] = byte_range
    if description:
        params["Description"] = description
    response = client.initiate_job(accountId=account_id, vaultName=vault, jobParameters=params)
    return str(response["jobId"])


def find_reusable_job(
    client: Any,
    vault: str,
    archive_id: str,
    *,
    account_id: str = "-",
    byte_range: str | None = None,
) -> dict[str, Any] | None:
    """A succeeded (preferred) or in-progress job for the same archive and range, so a
    retrieval is not paid for twice. ``byte_range`` None means the whole archive."""
    best: dict[str, Any] | None = None
    paginator = client.get_paginator("list_jobs")
    for page in paginator.paginate(accountId=account_id, vaultName=vault):
        for job in page["JobList"]:
            if job.get("Action") != "ArchiveRetrieval" or job.get("ArchiveId") != archive_id:
                continue
            if job.get("StatusCode") == "Failed":
                continue
            size = job.get("ArchiveSizeInBytes")
            wanted = byte_range or (f"0-{size - 1}" if size else None)
            if job.get("RetrievalByteRange") != wanted:
                continue
            if job.get("StatusCode") == "Succeeded":
                return dict(job)
            best = best or dict(job)
    return best


def find_inventory_job(client: Any, vault: str, fmt: str, *,
                       account_id: str = "-") -> dict[str, Any] | None:
    """The newest inventory job in ``fmt`` (JSON or CSV) whose output can still be read,
    succeeded (preferred) or in progress: an inventory is not paid for, or waited for,
    twice."""
    best: tuple[tuple[bool, str], dict[str, Any]] | None = None
    paginator = client.get_paginator("list_jobs")
    for page in paginator.paginate(accountId=account_id, vaultName=vault):
        for job in page["JobList"]:
            parameters = job.get("InventoryRetrievalParameters") or {}
            if job.get("Action") != "InventoryRetrieval" or job.get("StatusCode") == "Failed":
                continue
            if (parameters.get("Format") or "JSON").upper() != fmt.upper():
                continue
            if parameters.get("StartDate") or parameters.get("EndDate") or parameters.get(
                    "Limit"):
                continue  # a partial inventory is not the vault's
            rank = (job.get("StatusCode") == "Succeeded", job.get("CreationDate", ""))
            if best is None or rank > best[0]:
                best = (rank, dict(job))
    return None if best is None else best[1]


def wait_for_job(
    client: Any,
    vault: str,
    job_id: str,
    *,
    account_id: str = "-",
    timeout: float | None = None,
    initial_delay: float = 0.5,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    on_pause: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Poll DescribeJob with capped exponential back-off until the job completes
    (``on_poll`` is told each answer, ``on_pause`` each pause before the next poll).

    Returns the succeeded job; raises JobNotReadyError when it failed or ``timeout`` passed,
    JobExpiredError when it does not exist (any more).
    """
    deadline = None if timeout is None else clock() + timeout
    delay = initial_delay
    while True:
        try:
            job: dict[str, Any] = client.describe_job(accountId=account_id, vaultName=vault, jobId=job_id)
        except BotoClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise JobExpiredError(
                    f"job {job_id} does not exist in vault {vault} (it may have expired)"
                ) from None
            raise
        if on_poll is not None:
            on_poll(job)
        if job.get("Completed"):
            if job.get("StatusCode") != "Succeeded":
                raise JobNotReadyError(
                    f"job {job_id} {job.get('StatusCode')}: {job.get('StatusMessage')}"
                )
            return job
        now = clock()
        if deadline is not None and now >= deadline:
            raise JobNotReadyError(f"job {job_id} is still in progress after {timeout:g} s")
        pause = delay if deadline is None else min(delay, max(0.0, deadline - now))
        if on_pause is not None:
            on_pause(pause)
        sleep(pause)
        delay = min(delay * 2, max_delay)
