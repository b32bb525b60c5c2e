"""The migration loop: retrieval jobs on the source, at most ``max_jobs`` at a time, each
archive moved once its job has succeeded, every step recorded in the state file.

One thread runs the loop: it starts jobs (backing off with jitter when the source throttles
or its retrieval policy refuses), polls them with capped back-off, hands succeeded ones to
transfer threads, and starts a new job for an archive whose job failed or whose output would
expire before it could be read. Chunk transfers run on ``workers`` threads shared by all
archives.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError as BotoClientError

from icevault.client.download_config import DownloadConfig
from icevault.client.exceptions import ChecksumMismatchError
from icevault.client.fetch import BufferPool
from icevault.client.progress import Subscriber
from icevault.migrate.state import ArchiveState, MigrationState, Stage
from icevault.migrate.transfer import (
    ArchiveTransfer,
    Endpoints,
    ExtensionMissingError,
    JobLostError,
    VerificationError,
    error_code,
)

# What a source says when it wants fewer retrieval jobs for now.
BACK_OFF_CODES = frozenset({"ThrottlingException", "PolicyEnforcedException",
                            "LimitExceededException", "ServiceUnavailableException",
                            "RequestTimeoutException"})
OUTPUT_LIFETIME = timedelta(hours=24)
MAX_JOB_FAILURES = 3


@dataclass(frozen=True)
class MigrateOptions:
    tier: str | None = None  # None: the source's default (Standard)
    max_jobs: int = 10
    workers: int = 4
    chunk_size: int = 16 * 1024 * 1024
    poll_cap_s: float = 60.0
    # A job's output is used only while this much of its 24 hours is left; less, and a new
    # job is started (a download must not be cut off by the expiry).
    expiry_margin: timedelta = timedelta(hours=1)
    download: DownloadConfig = field(default_factory=DownloadConfig)


@dataclass
class _Active:
    archive: ArchiveState
    job_id: str | None
    next_poll: float = 0.0
    poll_delay: float = 0.25
    transfer: Future[str] | None = None
    job_failures: int = 0


def output_fresh_enough(completion_date: str | None, now: datetime, margin: timedelta) -> bool:
    """Whether a succeeded job's output has more than ``margin`` left of its 24 hours."""
    if not completion_date:
        return True
    done = datetime.fromisoformat(completion_date.replace("Z", "+00:00"))
    return now < done + OUTPUT_LIFETIME - margin


class MigrationProgress(Subscriber):
    """What the loop reports: bytes through the fetcher, and archives as they finish."""

    def on_archive_done(self, archive: ArchiveState, stage: Stage) -> None: ...

    def close(self) -> None:
        """The migration is over (done, failed or interrupted)."""


class Migrator:
    def __init__(self, ends: Endpoints, state: MigrationState, options: MigrateOptions,
                 progress: MigrationProgress | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ends = ends
        self.state = state
        self.options = options
        self.progress = progress or MigrationProgress()
        self.sleep = sleep
        self.stop = threading.Event()
        self._rng = random.Random()
        self._hold_jobs_until = 0.0
        self._job_backoff = 1.0
        self.buffers = BufferPool(keep=options.workers)

    # -- jobs on the source ---------------------------------------------------------------

    def _start_job(self, active: _Active) -> None:
        params: dict[str, Any] = {"Type": "archive-retrieval",
                                  "ArchiveId": active.archive.source_id}
        if self.options.tier is not None:
            params["Tier"] = self.options.tier
        response = self.ends.source.initiate_job(
            accountId=self.ends.source_account, vaultName=self.ends.source_vault,
            jobParameters=params)
        active.job_id = str(response["jobId"])
        first = min(0.25, self.options.poll_cap_s)
        active.next_poll, active.poll_delay = time.monotonic() + first, first
        self.state.job_requested(active.archive.source_id, active.job_id)
        self._job_backoff = 1.0

    def _back_off_jobs(self) -> None:
        delay = self._job_backoff * (0.5 + self._rng.random())
        self._hold_jobs_until = time.monotonic() + delay
        self._job_backoff = min(self.options.poll_cap_s, self._job_backoff * 2)

    def _poll(self, active: _Active) -> dict[str, Any] | None:
        assert active.job_id is not None
        try:
            job: dict[str, Any] = self.ends.source.describe_job(
                accountId=self.ends.source_account, vaultName=self.ends.source_vault,
                jobId=active.job_id)
        except BotoClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
        return job

    def _fresh_enough(self, job: dict[str, Any]) -> bool:
        return output_fresh_enough(job.get("CompletionDate"), datetime.now(UTC),
                                   self.options.expiry_margin)

    def _need_new_job(self, active: _Active) -> None:
        active.job_id = None
        self.state.job_lost(active.archive.source_id)

    # -- one step of the loop for one archive ---------------------------------------------

    def _step(self, active: _Active, chunk_pool: ThreadPoolExecutor,
              archive_pool: ThreadPoolExecutor) -> bool:
        """Advance one archive; True when it is finished (verified or failed)."""
        archive = active.archive
        if active.transfer is not None:
            if not active.transfer.done():
                return False
            transfer, active.transfer = active.transfer, None
            error = transfer.exception()
            if error is None:
                self.state.verified(archive.source_id, transfer.result())
                self.progress.on_archive_done(archive, Stage.VERIFIED)
                return True
            if isinstance(error, JobLostError):
                self._need_new_job(active)
                return False
            if isinstance(error, ExtensionMissingError):
                raise error
            # Bytes that kept failing a checksum (the source's own, or the target's check)
            # are a verification failure: exit code 3, not 1.
            verification = isinstance(error, VerificationError | ChecksumMismatchError) or bool(
                getattr(error, "verification", False))
            self.state.failed(archive.source_id, str(error), verification=verification)
            self.progress.on_archive_done(archive, Stage.FAILED)
            return True
        now = time.monotonic()
        if active.job_id is None:
            if now < self._hold_jobs_until:
                return False
            try:
                self._start_job(active)
            except BotoClientError as error:
                if error_code(error) in BACK_OFF_CODES:
                    self._back_off_jobs()
                    return False
                raise
            return False
        if now < active.next_poll:
            return False
        job = self._poll(active)
        if job is None or job["StatusCode"] == "Failed" or (
                job["StatusCode"] == "Succeeded" and not self._fresh_enough(job)):
            if job is not None and job["StatusCode"] == "Failed":
                active.job_failures += 1
                if active.job_failures >= MAX_JOB_FAILURES:
                    self.state.failed(archive.source_id, f"the source's job failed "
                                      f"{active.job_failures} times: {job.get('StatusMessage')}")
                    self.progress.on_archive_done(archive, Stage.FAILED)
                    return True
            self._need_new_job(active)
            return False
        if job["StatusCode"] != "Succeeded":
            active.poll_delay = min(self.options.poll_cap_s, active.poll_delay * 1.5)
            active.next_poll = now + active.poll_delay
            return False
        fresh = self.state.get_archive(archive.source_id)  # the upload recorded so far
        mover = ArchiveTransfer(self.ends, self.state, fresh, active.job_id,
                                self.options.chunk_size, chunk_pool, self.options.download,
                                [self.progress], self.stop, self.buffers)
        active.transfer = archive_pool.submit(mover.run)
        return False

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Move every archive not yet done; returns when each is verified or failed."""
        options = self.options
        active: dict[str, _Active] = {}
        # Archives a stopped run had in flight come first, with the jobs they had.
        queue: list[ArchiveState] = self.state.in_stage(Stage.TRANSFERRING, Stage.JOB)
        planned_exhausted = False
        with (
            ThreadPoolExecutor(max_workers=options.workers,
                               thread_name_prefix="icevault-migrate-chunk") as chunk_pool,
            ThreadPoolExecutor(max_workers=max(1, options.max_jobs),
                               thread_name_prefix="icevault-migrate") as archive_pool,
        ):
            try:
                while True:
                    while len(active) < options.max_jobs:
                        if not queue and not planned_exhausted:
                            queue = [a for a in self.state.in_stage(Stage.PLANNED, limit=1000)
                                     if a.source_id not in active]
                            planned_exhausted = not queue
                        if not queue:
                            break
                        archive = queue.pop(0)
                        active[archive.source_id] = _Active(archive, archive.job_id)
                    if not active:
                        return
                    for source_id in list(active):
                        if self._step(active[source_id], chunk_pool, archive_pool):
                            del active[source_id]
                            planned_exhausted = False
                    self.sleep(0.02)
            except BaseException:
                self.stop.set()
                raise

