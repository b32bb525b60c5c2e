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
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError as BotoClientError

from icevault.client.api import make_glacier_client
from icevault.client.chunks import Chunk, check_chunk_size, plan_chunks
from icevault.client.exceptions import (
    ChecksumMismatchError,
    ClientError,
    JobExpiredError,
    JobNotReadyError,
    RetriesExceededError,
)
from icevault.client.files import tree_hash_region
from icevault.client.journal import Journal, JournalState
from icevault.client.progress import Subscriber
from icevault.core.treehash import MIB, TreeHasher, combine_hex
from icevault.diskio import SequentialWriter, open_for_write
from icevault.pacing import BandwidthLimiter

PART_SUFFIX = ".icevault-part"
JOURNAL_SUFFIX = ".icevault-journal"
RETRYABLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "ServiceUnavailableException", "ServiceUnavailable", "RequestTimeoutException",
    "InternalFailure", "InternalError", "SlowDown",
})


@dataclass(frozen=True)
class DownloadConfig:
    chunk_size: int = 8 * MIB
    workers: int = 4
    resume: bool = True
    bandwidth_limit: float | None = None  # bytes per second
    max_attempts: int = 8
    retry_deadline_s: float = 900.0  # per chunk, from its first attempt
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 20.0
    read_block: int = MIB
    # Direct writes this large, two per worker (one filling while the other is written),
    # keep a virtual disk busy: 1.2 GB/s with 4 MiB, 1.5 GB/s with 8 MiB measured here.
    write_block: int = 8 * MIB
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)


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


class _ChunkError(Exception):
    """A chunk came back wrong; ``kind`` says how (retried, then reported)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _classify(error: BaseException) -> str | None:
    """The retry class of an error, or None when retrying cannot help."""
    if isinstance(error, _ChunkError):
        return error.kind
    if isinstance(error, BotoClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in RETRYABLE_CODES or status == 429:
            return "throttling" if "hrottl" in code or status == 429 else "server-error"
        if status >= 500:
            return "server-error"
        return None
    if isinstance(error, (BotoCoreError, ConnectionError, OSError)):
        return "connection"
    return None


@dataclass
class _Job:
    """What the download needs to know about the job, from DescribeJob."""

    output_size: int
    archive_start: int
    archive_size: int | None
    expected_tree_hash: str | None
    checksummed: bool  # archive outputs carry tree hashes; inventories do not
    archive_id: str | None


def _describe(client: Any, vault: str, job_id: str, account_id: str, hint: str | None) -> _Job:
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
        return _Job(int(job["InventorySizeInBytes"]), 0, None, None, False, None)
    archive_size = int(job["ArchiveSizeInBytes"])
    first, _, last = str(job.get("RetrievalByteRange") or f"0-{archive_size - 1}").partition("-")
    start, end = int(first), int(last)
    whole = (start, end) == (0, archive_size - 1)
    expected = job.get("SHA256TreeHash") or (job.get("ArchiveSHA256TreeHash") if whole else None)
    return _Job(end - start + 1, start, archive_size, expected, True, job.get("ArchiveId"))


class _Checkpoints:
    """Records verified chunks in the journal, in groups: one fdatasync covers every chunk
    of a group before the journal names them, so a crash never "verifies" unwritten bytes,
    while the disk is not forced to flush after every chunk. The syncs run in a thread of
    their own: a journal fsync can wait hundreds of milliseconds for the file system's
    commit, and no download worker should stand idle meanwhile."""

    def __init__(self, fd: int, journal: Journal, clock: Callable[[], float],
                 every_bytes: int = 256 * MIB, every_s: float = 2.0) -> None:
        self.fd = fd
        self.journal = journal
        self.clock = clock
        self.every_bytes = every_bytes
        self.every_s = every_s
        self.pending: dict[int, str] = {}
        self.pending_bytes = 0
        self.last = clock()
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icevault-journal")
        self.failure: BaseException | None = None

    def add(self, chunk: Chunk, tree_hash: str) -> None:
        with self.lock:
            self.pending[chunk.index] = tree_hash
            self.pending_bytes += chunk.size
            due = self.pending_bytes >= self.every_bytes or self.clock() - self.last >= self.every_s
            if due:
                self.pending_bytes = 0
                self.last = self.clock()
        if due:
            self.syncer.submit(self._flush_in_background)

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self.failure = exc

    def flush(self) -> None:
        with self.flush_lock:
            with self.lock:
                batch, self.pending = self.pending, {}
                self.pending_bytes = 0
                self.last = self.clock()
            if not batch:
                return
            os.fdatasync(self.fd)
            self.journal.record_many(batch)

    def close(self) -> None:
        """Wait for the syncs in flight (they use the file descriptor); raise what failed."""
        self.syncer.shutdown(wait=True)
        if self.failure is not None:
            raise self.failure


def _body_reader(body: Any, response: dict[str, Any], chunk: Chunk) -> tuple[
        Callable[[memoryview], int], Callable[[], None]]:
    """How to read a chunk's body into our own buffer, and how to hand the connection back
    after the last byte.

    urllib3's ``readinto`` reads into a fresh buffer and copies; http.client's, under it,
    receives straight into ours. That path is taken only when the body is a plain
    Content-Length body of exactly the chunk's size: http.client then stops at its end, and
    the connection goes back to the pool once it is read.
    """
    raw: Any = getattr(body, "_raw_stream", None)  # urllib3.HTTPResponse
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    length = headers.get("content-length")
    if length is not None and int(length) != chunk.size:
        kind = "long-body" if int(length) > chunk.size else "short-body"
        raise _ChunkError(kind, f"Content-Length {length} for the {chunk.size} bytes of "
                                  f"{chunk.range_header()}")
    fp: Any = getattr(raw, "_fp", None)  # http.client.HTTPResponse
    if (length is not None and "content-encoding" not in headers
            and "transfer-encoding" not in headers and callable(getattr(fp, "readinto", None))
            and callable(getattr(raw, "release_conn", None))):
        def release() -> None:
            if fp.isclosed():  # every byte read: the connection is clean for the next request
                raw.release_conn()
        return fp.readinto, release
    readinto = getattr(raw, "readinto", None)
    if callable(readinto):
        return readinto, lambda: None

    def copy_into(room: memoryview) -> int:
        data = body.read(len(room))
        room[:len(data)] = data
        return len(data)

    return copy_into, lambda: None


class _Fetcher:
    def __init__(
        self,
        client: Any,
        vault: str,
        job_id: str,
        account_id: str,
        job: _Job,
        part_path: Path,
        checkpoints: _Checkpoints,
        config: DownloadConfig,
        subscribers: Sequence[Subscriber],
        limiter: BandwidthLimiter | None,
        stop: threading.Event,
        disk_threads: Executor,
    ) -> None:
        self.client = client
        self.vault = vault
        self.job_id = job_id
        self.account_id = account_id
        self.job = job
        self.part_path = part_path
        self.checkpoints = checkpoints
        self.config = config
        self.subscribers = subscribers
        self.limiter = limiter
        self.stop = stop
        self.disk_threads = disk_threads
        self.rng_lock = threading.Lock()

    def _progress(self, amount: int) -> None:
        for subscriber in self.subscribers:
            subscriber.on_progress(bytes_transferred=amount)

    def fetch(self, chunk: Chunk) -> str:
        config = self.config
        started = config.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                tree_hash = self._fetch_once(chunk)
            except Exception as error:  # classified below; unknown kinds are re-raised
                kind = _classify(error)
                if kind is None or self.stop.is_set():
                    raise
                if attempt >= config.max_attempts:
                    raise RetriesExceededError(
                        f"chunk {chunk.range_header()} failed {attempt} times; last: {kind}: {error}",
                        error, verification=kind == "checksum-mismatch",
                    ) from error
                with self.rng_lock:
                    jitter = config.rng.random()
                delay = min(config.backoff_cap_s, config.backoff_base_s * 2 ** (attempt - 1)) * jitter
                if config.clock() + delay - started > config.retry_deadline_s:
                    raise RetriesExceededError(
                        f"chunk {chunk.range_header()} still failing after "
                        f"{config.retry_deadline_s:g} s; last: {kind}: {error}",
                        error, verification=kind == "checksum-mismatch",
                    ) from error
                for subscriber in self.subscribers:
                    subscriber.on_retry(chunk=chunk, attempt=attempt, error=error, kind=kind, delay=delay)
                config.sleep(delay)
                continue
            self.checkpoints.add(chunk, tree_hash)
            return tree_hash

    def _fetch_once(self, chunk: Chunk) -> str:
        response = self.client.get_job_output(
            accountId=self.account_id, vaultName=self.vault, jobId=self.job_id,
            range=chunk.range_header(),
        )
        body = response["body"]
        reported = 0
        try:
            expected_range = f"bytes {chunk.start}-{chunk.end}/{self.job.output_size}"
            if response.get("contentRange") != expected_range:
                raise _ChunkError(
                    "bad-range",
                    f"Content-Range {response.get('contentRange')!r}, expected {expected_range!r}",
                )
            checksum = response.get("checksum")
            if self.job.checksummed and not checksum:
                raise _ChunkError(
                    "missing-checksum",
                    f"no x-amz-sha256-tree-hash for the aligned range {chunk.range_header()}",
                )
            hasher = TreeHasher()
            position = chunk.start
            readinto, release = _body_reader(body, response, chunk)
            fd, direct = open_for_write(self.part_path, os.O_WRONLY, chunk.start)
            out = SequentialWriter(fd, chunk.start, direct, self.config.write_block,
                                   write_behind=self.disk_threads)
            try:
                while position <= chunk.end:
                    if self.stop.is_set():
                        raise ClientError("download stopped")
                    with out.read_from(readinto, min(self.config.read_block, chunk.end + 1 - position)) as data:
                        n = len(data)
                        if not n:
                            break
                        hasher.update(data)
                    if self.limiter is not None:
                        self.limiter.consume(n)
                    position += n
                    reported += n
                    self._progress(n)
                out.finish()
            finally:
                out.close()
                os.close(fd)
            if position == chunk.end + 1:
                if readinto(memoryview(bytearray(1))):
                    raise _ChunkError("long-body", f"more than {chunk.size} bytes for {chunk.range_header()}")
                release()
            if position != chunk.end + 1:
                raise _ChunkError(
                    "short-body", f"{position - chunk.start} of {chunk.size} bytes for {chunk.range_header()}"
                )
            computed = hasher.hexdigest()
            if checksum and checksum != computed:
                raise _ChunkError(
                    "checksum-mismatch",
                    f"chunk {chunk.range_header()}: server checksum {checksum}, bytes hash to {computed}",
                )
            return computed
        except BaseException:
            if reported:
                self._progress(-reported)
            raise
        finally:
            body.close()


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
    cfg = config or DownloadConfig()
    cfg = replace(
        cfg,
        chunk_size=check_chunk_size(cfg.chunk_size if chunk_size is None else chunk_size),
        workers=max(1, cfg.workers if workers is None else workers),
        resume=cfg.resume if resume is None else resume,
        bandwidth_limit=(cfg.bandwidth_limit if isinstance(bandwidth_limit, _Unset)
                         else bandwidth_limit),
    )
    subs = list(subscribers)
    glacier = client or make_glacier_client(max_pool_connections=max(10, cfg.workers))
    target = Path(dest)
    part_path = target.with_name(target.name + PART_SUFFIX)
    journal_path = target.with_name(target.name + JOURNAL_SUFFIX)
    previous = Journal.load(journal_path) if cfg.resume else None
    job = _describe(glacier, vault, job_id, account_id, previous.archive_id if previous else None)
    if job.checksummed:
        chunks = plan_chunks(job.output_size, cfg.chunk_size, archive_start=job.archive_start,
                             archive_size=job.archive_size)
    else:
        chunks = plan_chunks(job.output_size, cfg.chunk_size)
    state = JournalState(
        job_id=job_id, vault=vault, account_id=account_id, archive_id=job.archive_id,
        output_size=job.output_size, chunk_size=cfg.chunk_size, archive_start=job.archive_start,
        archive_size=job.archive_size, expected_tree_hash=job.expected_tree_hash,
    )
    fd = os.open(part_path, os.O_RDWR | os.O_CREAT, 0o644)
    checkpoints: _Checkpoints | None = None
    try:
        resumed: dict[int, str] = {}
        if previous is not None and previous.same_plan(state) and part_path.exists():
            for index, recorded in previous.verified.items():
                if 0 <= index < len(chunks):
                    chunk = chunks[index]
                    if tree_hash_region(fd, chunk.start, chunk.size) == recorded:
                        resumed[index] = recorded
        else:
            os.ftruncate(fd, 0)
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
        checkpoints = _Checkpoints(fd, journal, cfg.clock)
        hashes = dict(resumed)
        if pending:
            with (
                ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="icevault-dl") as pool,
                ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="icevault-disk") as disk,
            ):
                fetcher = _Fetcher(glacier, vault, job_id, account_id, job, part_path, checkpoints,
                                   cfg, subs, limiter, stop, disk)
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
                    # Keep what was verified: a rerun resumes from it.
                    wait([f for f in futures if not f.cancelled()])
                    checkpoints.flush()
                    raise
                for future, chunk in futures.items():
                    hashes[chunk.index] = future.result()
        checkpoints.close()
        ordered = [hashes[c.index] for c in chunks]
        whole = combine_hex(ordered) if job.checksummed and ordered else None
        if os.fstat(fd).st_size != job.output_size:
            raise ChecksumMismatchError(
                f"the downloaded file has {os.fstat(fd).st_size} bytes; the job's output has "
                f"{job.output_size}"
            )
        if job.expected_tree_hash is not None and whole != job.expected_tree_hash:
            # Every chunk matched its own checksum yet the whole does not: refetch everything.
            journal.remove()
            part_path.unlink(missing_ok=True)
            raise ChecksumMismatchError(
                f"the chunks' combined tree hash {whole} does not match the job's "
                f"{job.expected_tree_hash}"
            )
        os.fsync(fd)
    finally:
        if checkpoints is not None:
            checkpoints.syncer.shutdown(wait=True)  # its syncs use fd
        os.close(fd)
    os.replace(part_path, target)
    dir_fd = os.open(target.parent if str(target.parent) else ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    journal_path.unlink(missing_ok=True)
    result = DownloadResult(
        path=target, size=job.output_size,
        tree_hash=whole if job.expected_tree_hash is not None else None,
        chunks=len(chunks), fetched=len(pending), resumed=len(resumed),
    )
    for subscriber in subs:
        subscriber.on_done(result=result)
    return result
