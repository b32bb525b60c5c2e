"""Fetching one chunk of a job's output: the request, the body read straight into the write
buffer, every check on what came back, and retries with back-off classified by failure."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError
from botocore.exceptions import ClientError as BotoClientError

from icevault.client.checkpoints import Checkpoints
from icevault.client.chunks import Chunk
from icevault.client.download_config import DownloadConfig, JobFacts
from icevault.client.exceptions import (
    ClientError,
    RetriesExceededError,
)
from icevault.client.progress import Subscriber
from icevault.core.treehash import TreeHasher
from icevault.diskio import SequentialWriter, open_for_write
from icevault.pacing import BandwidthLimiter

RETRYABLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "ServiceUnavailableException", "ServiceUnavailable", "RequestTimeoutException",
    "InternalFailure", "InternalError", "SlowDown",
})


class ChunkError(Exception):
    """A chunk came back wrong; ``kind`` says how (retried, then reported)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify(error: BaseException) -> str | None:
    """The retry class of an error, or None when retrying cannot help."""
    if isinstance(error, ChunkError):
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


def body_reader(body: Any, response: dict[str, Any], chunk: Chunk) -> tuple[
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
        raise ChunkError(kind, f"Content-Length {length} for the {chunk.size} bytes of "
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


class ChunkWriter(Protocol):
    """Where one chunk's bytes go as they arrive."""

    def read_from(self, readinto: Callable[[memoryview], int], limit: int) -> memoryview: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


class ChunkSink(Protocol):
    def open(self, chunk: Chunk) -> ChunkWriter: ...


class _FileChunkWriter:
    def __init__(self, path: Path, chunk: Chunk, write_block: int, disk_threads: Executor) -> None:
        self._fd, direct = open_for_write(path, os.O_WRONLY, chunk.start)
        self._out = SequentialWriter(self._fd, chunk.start, direct, write_block,
                                     write_behind=disk_threads)

    def read_from(self, readinto: Callable[[memoryview], int], limit: int) -> memoryview:
        return self._out.read_from(readinto, limit)

    def finish(self) -> None:
        self._out.finish()

    def close(self) -> None:
        try:
            self._out.close()
        finally:
            os.close(self._fd)


@dataclass(frozen=True)
class FileSink:
    """Chunks written at their offsets in one file (a download's ``.part`` file)."""

    path: Path
    write_block: int
    disk_threads: Executor

    def open(self, chunk: Chunk) -> ChunkWriter:
        return _FileChunkWriter(self.path, chunk, self.write_block, self.disk_threads)


class _MemoryChunkWriter:
    def __init__(self, sink: MemorySink, chunk: Chunk) -> None:
        self._sink = sink
        self._chunk = chunk
        self._buffer = sink.buffer(chunk.size)
        self._fill = 0

    def read_from(self, readinto: Callable[[memoryview], int], limit: int) -> memoryview:
        room = memoryview(self._buffer)[self._fill:self._fill + min(limit, len(self._buffer) - self._fill)]
        with room:
            n = readinto(room) if len(room) else 0
        fresh = memoryview(self._buffer)[self._fill:self._fill + n]
        self._fill += n
        return fresh

    def finish(self) -> None:
        self._sink.landed(self._chunk, self._buffer)  # handed over whole, not copied
        self._buffer = bytearray()

    def close(self) -> None:
        if self._buffer:  # not handed over: the attempt failed
            self._sink.release(self._buffer)
        self._buffer = bytearray()


class BufferPool:
    """Chunk buffers for reuse: fresh memory costs page faults on every first touch, a
    measurable share of a migration's time. At most ``keep`` are kept."""

    def __init__(self, keep: int) -> None:
        self._lock = threading.Lock()
        self._free: list[bytearray] = []
        self._keep = keep

    def take(self, size: int) -> bytearray:
        with self._lock:
            for n, free in enumerate(self._free):
                if len(free) == size:
                    del self._free[n]
                    return free
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buffer)


class MemorySink:
    """Chunks kept in memory until taken (a migration streams each one on as a part); give
    each taken buffer back with :meth:`release`."""

    def __init__(self, pool: BufferPool | None = None) -> None:
        self._lock = threading.Lock()
        self._landed: dict[int, bytearray] = {}
        self._pool = pool or BufferPool(keep=0)

    def buffer(self, size: int) -> bytearray:
        return self._pool.take(size)

    def release(self, buffer: bytearray) -> None:
        self._pool.give(buffer)

    def open(self, chunk: Chunk) -> ChunkWriter:
        return _MemoryChunkWriter(self, chunk)

    def landed(self, chunk: Chunk, data: bytearray) -> None:
        with self._lock:
            self._landed[chunk.index] = data

    def take(self, chunk: Chunk) -> bytearray:
        """The verified bytes of a fetched chunk (once)."""
        with self._lock:
            return self._landed.pop(chunk.index)


class Fetcher:
    def __init__(
        self,
        client: Any,
        vault: str,
        job_id: str,
        account_id: str,
        job: JobFacts,
        sink: ChunkSink,
        checkpoints: Checkpoints | None,
        config: DownloadConfig,
        subscribers: Sequence[Subscriber],
        limiter: BandwidthLimiter | None,
        stop: threading.Event,
        checked_downstream: bool = False,
    ) -> None:
        """``checked_downstream``: a chunk's bytes go on to a store that checks them against
        the source's checksum itself (a migration's target, given that checksum as the
        part's tree hash), so a chunk that comes with a checksum is not hashed here too.
        ``fetch(chunk, verify=True)`` hashes it anyway (when the store refused it)."""
        self.checked_downstream = checked_downstream
        self.client = client
        self.vault = vault
        self.job_id = job_id
        self.account_id = account_id
        self.job = job
        self.sink = sink
        self.checkpoints = checkpoints
        self.config = config
        self.subscribers = subscribers
        self.limiter = limiter
        self.stop = stop
        self.rng_lock = threading.Lock()

    def _progress(self, amount: int) -> None:
        for subscriber in self.subscribers:
            subscriber.on_progress(bytes_transferred=amount)

    def fetch(self, chunk: Chunk, *, verify: bool = False) -> str:
        config = self.config
        started = config.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                tree_hash = self._fetch_once(chunk, verify or not self.checked_downstream)
            except Exception as error:  # classified below; unknown kinds are re-raised
                kind = classify(error)
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
            if self.checkpoints is not None:
                self.checkpoints.add(chunk, tree_hash)
            return tree_hash

    def _fetch_once(self, chunk: Chunk, verify: bool) -> str:
        response = self.client.get_job_output(
            accountId=self.account_id, vaultName=self.vault, jobId=self.job_id,
            range=chunk.range_header(),
        )
        body = response["body"]
        reported = 0
        try:
            expected_range = f"bytes {chunk.start}-{chunk.end}/{self.job.output_size}"
            if response.get("contentRange") != expected_range:
                raise ChunkError(
                    "bad-range",
                    f"Content-Range {response.get('contentRange')!r}, expected {expected_range!r}",
                )
            checksum = response.get("checksum")
            if self.job.checksummed and not checksum:
                raise ChunkError(
                    "missing-checksum",
                    f"no x-amz-sha256-tree-hash for the aligned range {chunk.range_header()}",
                )
            # Hashed here unless a checksum came and the store downstream checks against it.
            hasher = TreeHasher() if verify or not checksum else None
            position = chunk.start
            readinto, release = body_reader(body, response, chunk)
            out = self.sink.open(chunk)
            try:
                while position <= chunk.end:
                    if self.stop.is_set():
                        raise ClientError("download stopped")
                    with out.read_from(readinto, min(self.config.read_block, chunk.end + 1 - position)) as data:
                        n = len(data)
                        if not n:
                            break
                        if hasher is not None:
                            hasher.update(data)
                    if self.limiter is not None:
                        self.limiter.consume(n)
                    position += n
                    reported += n
                    self._progress(n)
                if position == chunk.end + 1:
                    if readinto(memoryview(bytearray(1))):
                        raise ChunkError("long-body", f"more than {chunk.size} bytes for {chunk.range_header()}")
                    release()
                if position != chunk.end + 1:
                    raise ChunkError(
                        "short-body", f"{position - chunk.start} of {chunk.size} bytes for {chunk.range_header()}"
                    )
                if hasher is None:
                    assert checksum is not None
                    out.finish()  # the bytes the store downstream will check
                    return str(checksum)
                computed = hasher.hexdigest()
                if checksum and checksum != computed:
                    raise ChunkError(
                        "checksum-mismatch",
                        f"chunk {chunk.range_header()}: server checksum {checksum}, bytes hash to {computed}",
                    )
                out.finish()  # only verified bytes reach the sink's readers
            finally:
                out.close()
            return computed
        except BaseException:
            if reported:
                self._progress(-reported)
            raise
        finally:
            body.close()
