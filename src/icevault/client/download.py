"""Verified, parallel, resumable download of a job's output.

The output is fetched in chunks that are each a node of the archive's tree hash, so every
response must carry ``x-amz-sha256-tree-hash``. Each chunk is streamed to its offset of a
partial file while it is hashed (memory: about ``workers`` blocks), its length, Content-Range
and checksum are checked, and it is retried alone when anything is off. The chunk hashes are
then combined and compared with DescribeJob, the size with the job's, and only then is the
partial file renamed to the destination. A journal beside it lets a rerun resume.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError as BotoClientError

from icevault.client.api import make_glacier_client
from icevault.client.checkpoints import Checkpoints
from icevault.client.chunks import Chunk, check_chunk_size, plan_chunks
from icevault.client.download_config import DownloadConfig, JobFacts
from icevault.client.exceptions import (
    ChecksumMismatchError,
    ClientError,
    JobExpiredError,
    JobNotReadyError,
)
from icevault.client.fetch import Fetcher, FileSink
from icevault.client.files import tree_hash_region
from icevault.client.journal import Journal, JournalState
from icevault.client.progress import Subscriber
from icevault.core.treehash import combine_hex
from icevault.pacing import BandwidthLimiter

PART_SUFFIX = ".icevault-part"
JOURNAL_SUFFIX = ".icevault-journal"


class _Unset:
    """The default of a keyword that may also be given as None."""


UNSET = _Unset()


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    tree_hash: str | None  # of the whole output, when the job has one to compare with
    chunks: int
    fetched: int  # chunks fetched in this run
    resumed: int  # chunks found verified on disk


def _describe(client: Any, vault: str, job_id: str, account_id: str, hint: str | None) -> JobFacts:
    try:
        job = client.describe_job(accountId=account_id, vaultName=vault, jobId=job_id)
    except BotoClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            archive = hint or "<ARCHIVE_ID>"
            raise JobExpiredError(
                f"job {job_id} does not exist in vault {vault}: job output is kept for about "
                f"24 hours after the job completes. Start a new retrieval with: "
                f"icevault retrieve --vault {vault} --archive-id {archive}"
            ) from None
        raise
    status = job.get("StatusCode")
    if status == "InProgress":
        raise JobNotReadyError(
            f"job {job_id} is still in progress; wait for it with: "
            f"icevault jobs wait --vault {vault} --job-id {job_id}"
        )
    if status != "Succeeded":
        raise JobNotReadyError(f"job {job_id} {status}: {job.get('StatusMessage')}")
    if job.get("Action") == "InventoryRetrieval":
        return JobFacts(int(job["InventorySizeInBytes"]), 0, None, None, False, None)
    archive_size = int(job["ArchiveSizeInBytes"])
    first, _, last = str(job.get("RetrievalByteRange") or f"0-{archive_size - 1}").partition("-")
    start, end = int(first), int(last)
    whole = (start, end) == (0, archive_size - 1)
    expected = job.get("SHA256TreeHash") or (job.get("ArchiveSHA256TreeHash") if whole else None)
    return JobFacts(end - start + 1, start, archive_size, expected, True, job.get("ArchiveId"))


def _check_room(size: int, target: Path) -> None:
    """Refuse an output larger than the free space where it goes, before planning or
    allocating anything for it: what the server claims bounds this process's memory (the
    plan has a chunk per few MiB) only once it is held to what could be written."""
    directory = target.parent if str(target.parent) else Path(".")
    free = shutil.disk_usage(directory).free
    if size > free:
        raise ClientError(
            f"the job's output is {size} bytes; {directory} has {free} bytes free")


def download_job_output(
    vault: str,
    job_id: str,
    dest: str | os.PathLike[str],
    *,
    account_id: str = "-",
    chunk_size: int | None = None,
    workers: int | None = None,
    resume: bool | None = None,
    bandwidth_limit: float | _Unset | None = UNSET,
    subscribers: Iterable[Subscriber] = (),
    client: Any = None,
    config: DownloadConfig | None = None,
) -> DownloadResult:
    """Download a succeeded job's output to ``dest``, verified chunk by chunk and whole.

    Raises JobNotReadyError / JobExpiredError for jobs that cannot be downloaded,
    ChecksumMismatchError when the whole does not match DescribeJob, RetriesExceededError
    when a chunk keeps failing; in every failure ``dest`` is left untouched and the journal
    kept, so a rerun resumes. A keyword given here overrides the same setting of ``config``;
    one not given keeps it.
    """
    cfg = _effective_config(config or DownloadConfig(), chunk_size, workers, resume,
                            bandwidth_limit)
    subs = list(subscribers)
    glacier = client or make_glacier_client(max_pool_connections=max(10, cfg.workers))
    target = Path(dest)
    part_path = target.with_name(target.name + PART_SUFFIX)
    journal_path = target.with_name(target.name + JOURNAL_SUFFIX)
    previous = Journal.load(journal_path) if cfg.resume else None
    job = _describe(glacier, vault, job_id, account_id, previous.archive_id if previous else None)
    _check_room(job.output_size, target)
    chunks = (plan_chunks(job.output_size, cfg.chunk_size, archive_start=job.archive_start,
                          archive_size=job.archive_size)
              if job.checksummed else plan_chunks(job.output_size, cfg.chunk_size))
    state = JournalState(
        job_id=job_id, vault=vault, account_id=account_id, archive_id=job.archive_id,
        output_size=job.output_size, chunk_size=cfg.chunk_size, archive_start=job.archive_start,
        archive_size=job.archive_size, expected_tree_hash=job.expected_tree_hash,
    )
    fd = os.open(part_path, os.O_RDWR | os.O_CREAT, 0o644)
    checkpoints: Checkpoints | None = None
    try:
        resumed = _still_verified(previous, state, chunks, fd, part_path)
        os.ftruncate(fd, job.output_size)
        state.verified = dict(resumed)
        journal = Journal(journal_path, state)
        journal.save()
        pending = [c for c in chunks if c.index not in resumed]
        done_bytes = sum(chunks[i].size for i in resumed)
        for subscriber in subs:
            subscriber.on_queued(total_bytes=job.output_size, already=done_bytes, chunks=len(chunks))
        limiter = (
            BandwidthLimiter(cfg.bandwidth_limit, clock=cfg.clock, sleep=cfg.sleep)
            if cfg.bandwidth_limit else None
        )
        stop = threading.Event()
        checkpoints = Checkpoints(fd, journal, cfg.clock)
        hashes = dict(resumed)
        if pending:
            make_fetcher = partial(Fetcher, glacier, vault, job_id, account_id, job,
                                   checkpoints=checkpoints, config=cfg, subscribers=subs,
                                   limiter=limiter, stop=stop)
            hashes.update(_fetch_all(pending, make_fetcher, part_path, cfg, stop, checkpoints))
        checkpoints.close()
        whole = _verify_whole(fd, job, [hashes[c.index] for c in chunks], journal, part_path)
        os.fsync(fd)
    finally:
        if checkpoints is not None:
            checkpoints.syncer.shutdown(wait=True)  # its syncs use fd
        os.close(fd)
    _publish(part_path, target)
    journal_path.unlink(missing_ok=True)
    result = DownloadResult(
        path=target, size=job.output_size,
        tree_hash=whole if job.expected_tree_hash is not None else None,
        chunks=len(chunks), fetched=len(pending), resumed=len(resumed),
    )
    for subscriber in subs:
        subscriber.on_done(result=result)
    return result


def _effective_config(cfg: DownloadConfig, chunk_size: int | None, workers: int | None,
                      resume: bool | None,
                      bandwidth_limit: float | _Unset | None) -> DownloadConfig:
    """``cfg`` with the keywords given to download_job_output in place of its settings."""
    return replace(
        cfg,
        chunk_size=check_chunk_size(cfg.chunk_size if chunk_size is None else chunk_size),
        workers=max(1, cfg.workers if workers is None else workers),
        resume=cfg.resume if resume is None else resume,
        bandwidth_limit=(cfg.bandwidth_limit if isinstance(bandwidth_limit, _Unset)
                         else bandwidth_limit),
    )


def _verify_whole(fd: int, job: JobFacts, ordered: list[str], journal: Journal,
                  part_path: Path) -> str | None:
    """The whole output's tree hash from its chunks', checked against the job's; a whole
    that does not match (though every chunk did) leaves nothing to resume from."""
    whole = combine_hex(ordered) if job.checksummed and ordered else None
    if os.fstat(fd).st_size != job.output_size:
        raise ChecksumMismatchError(
            f"the downloaded file has {os.fstat(fd).st_size} bytes; the job's output has "
            f"{job.output_size}"
        )
    if job.expected_tree_hash is not None and whole != job.expected_tree_hash:
        journal.remove()
        part_path.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"the chunks' combined tree hash {whole} does not match the job's "
            f"{job.expected_tree_hash}"
        )
    return whole


def _publish(part_path: Path, target: Path) -> None:
    """The verified, synced partial file becomes ``target``, durably (the rename too)."""
    os.replace(part_path, target)
    dir_fd = os.open(target.parent if str(target.parent) else ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _still_verified(previous: JournalState | None, state: JournalState, chunks: list[Chunk], fd: int,
                    part_path: Path) -> dict[int, str]:
    """The chunks an earlier run verified that still hash to what it recorded; an earlier
    run of another plan leaves nothing (its partial file is emptied)."""
    resumed: dict[int, str] = {}
    if previous is None or not previous.same_plan(state) or not part_path.exists():
        os.ftruncate(fd, 0)
        return resumed
    for index, recorded in previous.verified.items():
        if 0 <= index < len(chunks):
            chunk = chunks[index]
            if tree_hash_region(fd, chunk.start, chunk.size) == recorded:
                resumed[index] = recorded
    return resumed


def _fetch_all(pending: list[Chunk], make_fetcher: Callable[..., Fetcher], part_path: Path,
               cfg: DownloadConfig, stop: threading.Event,
               checkpoints: Checkpoints) -> dict[int, str]:
    """Fetch ``pending`` in parallel; on the first failure stop the rest, keep what was
    verified (a rerun resumes from it) and raise."""
    workers = cfg.workers
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="icevault-dl") as pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="icevault-disk") as disk,
    ):
        fetcher = make_fetcher(sink=FileSink(part_path, cfg.write_block, disk))
        futures: dict[Future[str], Chunk] = {pool.submit(fetcher.fetch, c): c for c in pending}
        try:
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in finished:
                error = future.exception()
                if error is not None:
                    raise error
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            wait([f for f in futures if not f.cancelled()])
            checkpoints.flush()
            raise
        return {chunk.index: future.result() for future, chunk in futures.items()}
