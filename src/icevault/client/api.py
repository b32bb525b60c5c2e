"""Thin, typed wrappers over boto3's Glacier client."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import botocore.config
import botocore.loaders
import botocore.session


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    """One loader of botocore's service models for the process: each session would read and
    parse the Glacier model again (50-100 ms per client; a migration makes three)."""
    return botocore.loaders.create_loader()


def make_glacier_client(
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    max_pool_connections: int = 10,
    retries: bool = False,
) -> Any:
    """A Glacier client (what ``boto3.client("glacier")`` makes) honouring profiles, AWS_*
    variables and credential files.

    ``retries=False`` turns botocore's retries off: the downloader retries chunk by chunk
    with its own classification and deadline, and botocore's would hide faults from it.
    Made from botocore's session as boto3's session would make it, without importing boto3
    (and s3transfer with it): a tenth of a second off every command's start.
    """
    session = botocore.session.Session(profile=profile)
    session.register_component("data_loader", _shared_loader())
    if region is not None:
        session.set_config_variable("region", region)
    config = botocore.config.Config(
        max_pool_connections=max_pool_connections,
        # botocore reads total_max_attempts as attempts including the first one.
        retries={"mode": "standard", "total_max_attempts": 5 if retries else 1},
    )
    return session.create_client("glacier", endpoint_url=endpoint_url, config=config)


@dataclass(frozen=True, slots=True)
class GetJobOutputOutput:
    """GetJobOutput's result, field for field as the SDK method describes it."""

    body: Any  # botocore StreamingBody: read() it, or iterate it in chunks
    accept_ranges: str | None
    archive_description: str | None
    checksum: str | None
    content_range: str | None
    content_type: str | None
    status: int


def get_job_output(
    account_id: str,
    job_id: str,
    vault_name: str,
    range: str | None = None,  # noqa: A002 - the SDK's parameter name
    *,
    client: Any = None,
) -> GetJobOutputOutput:
    """Download a job's output, or the byte range ``range`` of it (``bytes=a-b``).

    ``account_id`` is a 12-digit account id or ``-`` for the caller's account. Verify
    ``checksum`` (present for tree-hash-aligned ranges of archive outputs) and the size
    yourself, or use :func:`~icevault.client.download_job_output`, which does it all.
    """
    for name, value in (("account_id", account_id), ("job_id", job_id), ("vault_name", vault_name)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"get_job_output: {name} is required (a non-empty string)")
    if range is not None and not isinstance(range, str):
        raise ValueError("get_job_output: range must be a string like 'bytes=0-1048575'")
    glacier = client or make_glacier_client()
    params: dict[str, Any] = {"accountId": account_id, "jobId": job_id, "vaultName": vault_name}
    if range is not None:
        params["range"] = range
    response = glacier.get_job_output(**params)
    return GetJobOutputOutput(
        body=response["body"],
        accept_ranges=response.get("acceptRanges"),
        archive_description=response.get("archiveDescription"),
        checksum=response.get("checksum"),
        content_range=response.get("contentRange"),
        content_type=response.get("contentType"),
        status=int(response["status"]),
    )
