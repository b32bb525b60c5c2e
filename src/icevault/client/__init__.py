"""The icevault client: Glacier's retrieval workflow done safely, on boto3.

``get_job_output`` mirrors the SDK method the project started from; ``download_job_output``
fetches a job's output in tree-hash-aligned chunks in parallel, verifies every chunk and the
whole, and resumes after a restart; ``upload_archive`` uploads files single or multipart with
parallel parts. Works against icevault and against AWS alike.
"""

from __future__ import annotations

from icevault.client.api import GetJobOutputOutput, get_job_output, make_glacier_client
from icevault.client.chunks import Chunk, plan_chunks
from icevault.client.download import DownloadResult, download_job_output
from icevault.client.download_config import DownloadConfig
from icevault.client.exceptions import (
    ChecksumMismatchError,
    ClientError,
    JobExpiredError,
    JobNotReadyError,
    RetriesExceededError,
)
from icevault.client.jobs import find_reusable_job, start_retrieval, wait_for_job
from icevault.client.progress import Subscriber
from icevault.client.upload import UploadResult, upload_archive

__all__ = [
    "ChecksumMismatchError",
    "Chunk",
    "ClientError",
    "DownloadConfig",
    "DownloadResult",
    "GetJobOutputOutput",
    "JobExpiredError",
    "JobNotReadyError",
    "RetriesExceededError",
    "Subscriber",
    "UploadResult",
    "download_job_output",
    "find_reusable_job",
    "get_job_output",
    "make_glacier_client",
    "plan_chunks",
    "start_retrieval",
    "upload_archive",
    "wait_for_job",
]
