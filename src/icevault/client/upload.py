"""Uploading archives: one request for small files, parallel multipart for the rest.

Each part is read once to compute both its tree hash and the SHA-256 that SigV4 signs (botocore
would otherwise read it twice more for them), then streamed from the file while it is sent.
Parts already uploaded (resuming with ``upload_id``) are skipped when their tree hash matches.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from icevault.client.api import make_glacier_client
from icevault.client.chunks import check_chunk_size
from icevault.client.exceptions import ChecksumMismatchError, ClientError
from icevault.client.files import hash_region
from icevault.client.progress import Subscriber
from icevault.core.treehash import MIB, TreeHasher, combine_hex

MAX_SINGLE_UPLOAD = 4 * 1024**3
SEND_BLOCK = MIB
_pending_sha256 = threading.local()


@dataclass(frozen=True)
class UploadResult:
    archive_id: str
    tree_hash: str
    size: int
    upload_id: str | None  # None for a single-request upload
    parts: int
    skipped_parts: int = 0
    location: str | None = None


class _Body(io.RawIOBase):
    """A read-only, seekable request body of ``_size`` bytes that botocore streams."""

    _size = 0
    _pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def __len__(self) -> int:
        return self._size


class UploadStoppedError(ClientError):
    """The upload was stopped (Ctrl-C): parts in flight were cut short, none started after.
    ``upload_id`` names the multipart upload that holds what was sent."""

    exit_code = 130

    def __init__(self, upload_id: str | None, sent: int, parts: int) -> None:
        super().__init__(f"upload {upload_id} stopped with {sent} of {parts} parts sent")
        self.upload_id, self.sent, self.parts = upload_id, sent, parts


class _Section(_Body):
    """A window on a file, so botocore can stream one part of it; reading stops at once
    when ``stop`` is set (a part in flight is cut short rather than sent to its end)."""

    def __init__(self, fd: int, start: int, size: int,
                 stop: threading.Event | None = None) -> None:
        self._fd, self._start, self._size, self._pos = fd, start, size, 0
        self._stop = stop

    def read(self, size: int = -1) -> bytes:
        if self._stop is not None and self._stop.is_set():
            raise OSError("the upload was stopped")
        # urllib3 asks for 16 KiB at a time and sends whatever it gets; answering with at
        # least a megabyte per call saves tens of thousands of Python round trips per GiB.
        remaining = self._size - self._pos
        want = remaining if size is None or size < 0 else min(max(size, SEND_BLOCK), remaining)
        if want <= 0:
            return b""
        data = os.pread(self._fd, want, self._start + self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        n = os.preadv(self._fd, [memoryview(buffer)[:want]], self._start + self._pos)
        self._pos += n
        return n


class _BufferBody(_Body):
    """Bytes in memory, so botocore streams a part from a buffer (a bytearray is not a body
    it takes) without a whole copy of it."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._view, self._size, self._pos = memoryview(data), len(data), 0

    def read(self, size: int = -1) -> bytes:
        remaining = len(self._view) - self._pos
        want = remaining if size is None or size < 0 else min(max(size, SEND_BLOCK), remaining)
        data = self._view[self._pos:self._pos + want].tobytes()
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), len(self._view) - self._pos)
        memoryview(buffer)[:want] = self._view[self._pos:self._pos + want]
        self._pos += want
        return want


def _hash_region(fd: int, start: int, size: int) -> tuple[str, str]:
    hashes = hash_region(fd, start, size)
    if hashes is None:
        raise ClientError("the file shrank while it was being uploaded")
    return hashes


UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"  # SigV4's word for a payload the signature leaves out


def _inject_content_sha256(params: Any, **_kwargs: Any) -> None:
    value = getattr(_pending_sha256, "value", None)
    if value is not None:
        params["headers"]["x-amz-content-sha256"] = value


def prepare_client(glacier: Any) -> Any:
    """Let ``glacier`` send the SHA-256 this module computes with each part and archive (so
    botocore does not read the body a second time to compute it); returns it."""
    glacier.meta.events.register_first(
        "before-call.glacier.UploadMultipartPart", _inject_content_sha256,
        unique_id="icevault-content-sha256-part",
    )
    glacier.meta.events.register_first(
        "before-call.glacier.UploadArchive", _inject_content_sha256,
        unique_id="icevault-content-sha256-archive",
    )
    return glacier


def upload_part(glacier: Any, vault: str, upload_id: str, start: int,
                data: bytes | bytearray, *, account_id: str = "-",
                tree_hash: str | None = None, icevault_target: bool = False) -> str:
    """Send one part of a multipart upload (``glacier`` from :func:`prepare_client`); return
    its tree hash once the server has confirmed it stored exactly these bytes.

    ``tree_hash``: the part's tree hash when the caller has just computed it over these very
    bytes (a migration verified it against the source), so it is not computed again.
    ``icevault_target``: the server is icevault, which takes the signed tree hash as what
    binds the body to the signature, so the plain SHA-256 (another pass over every byte) is
    not computed; AWS wants it."""
    if tree_hash is None and not icevault_target:
        tree, linear = _hashes(data)
    else:
        if tree_hash is None:
            hasher = TreeHasher()
            hasher.update(data)
            tree_hash = hasher.hexdigest()
        tree = tree_hash
        linear = UNSIGNED_PAYLOAD if icevault_target else hashlib.sha256(data).hexdigest()
    _pending_sha256.value = linear
    try:
        response = glacier.upload_multipart_part(
            accountId=account_id, vaultName=vault, uploadId=upload_id,
            range=f"bytes {start}-{start + len(data) - 1}/*", body=_BufferBody(data),
            checksum=tree,
        )
    finally:
        _pending_sha256.value = None
    _check_checksum(response, tree, f"the part at {start}")
    return tree


def _parts(size: int, part_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, size, part_size):
        yield start, min(part_size, size - start)


def upload_archive(
    vault: str,
    path_or_stream: str | os.PathLike[str] | IO[bytes],
    *,
    account_id: str = "-",
    description: str | None = None,
    part_size: int = 16 * MIB,
    workers: int = 4,
    upload_id: str | None = None,
    subscribers: Iterable[Subscriber] = (),
    client: Any = None,
    on_started: Callable[[str], None] | None = None,
) -> UploadResult:
    """Upload a file (or a binary stream) as one archive and return its id and tree hash.

    Files no larger than ``part_size`` go in one UploadArchive; larger ones in a multipart
    upload with ``workers`` parts in flight. Pass the ``upload_id`` of an interrupted upload to
    resume it: parts already there with the right tree hash are not sent again.
    ``on_started`` is told the multipart upload's ID once it exists. A KeyboardInterrupt
    stops the upload within a moment (no part starts, parts in flight are cut short) and
    raises :class:`UploadStoppedError` with the ID.
    """
    check_chunk_size(part_size)
    subs = list(subscribers)
    glacier = prepare_client(client or make_glacier_client(max_pool_connections=max(10, workers)))
    if isinstance(path_or_stream, (str, os.PathLike)):
        fd = os.open(Path(path_or_stream), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            return _upload_fd(glacier, vault, fd, size, account_id, description, part_size,
                              workers, upload_id, subs, on_started)
        finally:
            os.close(fd)
    return _upload_stream(glacier, vault, path_or_stream, account_id, description, part_size,
                          workers, upload_id, subs, on_started)


def _upload_fd(
    glacier: Any, vault: str, fd: int, size: int, account_id: str, description: str | None,
    part_size: int, workers: int, upload_id: str | None, subs: list[Subscriber],
    on_started: Callable[[str], None] | None,
) -> UploadResult:
    if size == 0:
        raise ClientError("Glacier archives are 1 byte or more; the file is empty")
    for subscriber in subs:
        subscriber.on_queued(total_bytes=size, already=0)
    if size <= part_size and upload_id is None and size <= MAX_SINGLE_UPLOAD:
        tree, linear = _hash_region(fd, 0, size)
        return _single_upload(glacier, vault, _Section(fd, 0, size), size, (tree, linear),
                              account_id, description, subs)

    existing: dict[int, str] = {}
    if upload_id is None:
        params = {"accountId": account_id, "vaultName": vault, "partSize": str(part_size)}
        if description is not None:
            params["archiveDescription"] = description
        upload_id = glacier.initiate_multipart_upload(**params)["uploadId"]
        if on_started is not None:
            on_started(upload_id)
    else:
        listing = glacier.list_parts(accountId=account_id, vaultName=vault, uploadId=upload_id)
        if int(listing["PartSizeInBytes"]) != part_size:
            raise ClientError(
                f"upload {upload_id} uses parts of {listing['PartSizeInBytes']} bytes; pass that "
                "part size to resume it"
            )
        for page in glacier.get_paginator("list_parts").paginate(
            accountId=account_id, vaultName=vault, uploadId=upload_id
        ):
            for part in page["Parts"]:
                first = int(part["RangeInBytes"].split("-")[0])
                existing[first] = part["SHA256TreeHash"]

    skipped = 0
    lock = threading.Lock()
    stop = threading.Event()

    def send(start: int, length: int) -> str:
        nonlocal skipped
        if stop.is_set():
            raise UploadStoppedError(upload_id, 0, 0)
        tree, linear = _hash_region(fd, start, length)
        if existing.get(start) == tree:
            with lock:
                skipped += 1
        else:
            _pending_sha256.value = linear
            try:
                response = glacier.upload_multipart_part(
                    accountId=account_id, vaultName=vault, uploadId=upload_id,
                    range=f"bytes {start}-{start + length - 1}/*",
                    body=_Section(fd, start, length, stop), checksum=tree,
                )
            finally:
                _pending_sha256.value = None
            _check_checksum(response, tree, f"the part at {start}")
        for subscriber in subs:
            subscriber.on_progress(bytes_transferred=length)
        return tree

    plan = list(_parts(size, part_size))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="icevault-up") as pool:
        futures: list[Future[str]] = [pool.submit(send, s, n) for s, n in plan]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt:
            stop.set()  # parts in flight stop reading; queued ones never start
            for other in futures:
                other.cancel()
            wait(futures)
            sent = sum(1 for f in futures if f.done() and not f.cancelled()
                       and f.exception() is None)
            raise UploadStoppedError(upload_id, sent, len(plan)) from None
        for future in done:
            if future.exception() is not None:
                for other in futures:
                    other.cancel()
                raise ClientError(
                    f"upload {upload_id} failed: {future.exception()}. Resume it with "
                    f"--upload-id {upload_id}"
                ) from future.exception()
        hashes = [f.result() for f in futures]
    whole = combine_hex(hashes)
    response = glacier.complete_multipart_upload(
        accountId=account_id, vaultName=vault, uploadId=upload_id, archiveSize=str(size),
        checksum=whole,
    )
    _check_checksum(response, whole, "the archive")
    result = UploadResult(response["archiveId"], whole, size, upload_id, len(plan), skipped,
                          response.get("location"))
    for subscriber in subs:
        subscriber.on_done(result=result)
    return result


def _check_checksum(response: dict[str, Any], expected: str, what: str) -> None:
    """The server answers with the tree hash of what it stored: it must be ours."""
    if response.get("checksum") != expected:
        raise ChecksumMismatchError(
            f"{what}: the server stored tree hash {response.get('checksum')}, we sent {expected}"
        )


def _hashes(data: bytes | bytearray) -> tuple[str, str]:
    tree = TreeHasher()
    tree.update(data)
    return tree.hexdigest(), hashlib.sha256(data).hexdigest()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the stream (pipes return short reads)."""
    pieces, remaining = [], size
    while remaining > 0:
        piece = stream.read(remaining)
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)


def _upload_stream(
    glacier: Any, vault: str, stream: IO[bytes], account_id: str, description: str | None,
    part_size: int, workers: int, upload_id: str | None, subs: list[Subscriber],
    on_started: Callable[[str], None] | None,
) -> UploadResult:
    """Non-seekable input: read part by part; at most ``workers + 1`` parts in memory."""
    if upload_id is not None:
        raise ClientError("resuming an upload needs a file, not a stream")
    first = _read_exactly(stream, part_size)
    if not first:
        raise ClientError("Glacier archives are 1 byte or more; the input is empty")
    rest = _read_exactly(stream, 1)
    if not rest:
        return _upload_bytes(glacier, vault, first, account_id, description, subs)
    for subscriber in subs:
        subscriber.on_queued(total_bytes=None, already=0)  # a stream's length is unknown
    params: dict[str, Any] = {"accountId": account_id, "vaultName": vault, "partSize": str(part_size)}
    if description is not None:
        params["archiveDescription"] = description
    new_id = glacier.initiate_multipart_upload(**params)["uploadId"]
    if on_started is not None:
        on_started(new_id)
    slots = threading.Semaphore(workers + 1)
    hashes: dict[int, str] = {}
    stop = threading.Event()

    def send(start: int, data: bytes) -> None:
        try:
            if stop.is_set():
                raise UploadStoppedError(new_id, 0, 0)
            hashes[start] = upload_part(glacier, vault, new_id, start, data,
                                        account_id=account_id)
            for subscriber in subs:
                subscriber.on_progress(bytes_transferred=len(data))
        finally:
            slots.release()

    size = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="icevault-up") as pool:
        futures = []
        data = first
        pending_byte = rest
        try:
            while data:
                slots.acquire()
                futures.append(pool.submit(send, size, data))
                size += len(data)
                data = (
                    pending_byte + _read_exactly(stream, part_size - 1)
                    if pending_byte
                    else _read_exactly(stream, part_size)
                )
                pending_byte = b""
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            # A part in flight from memory ends with its request; none starts after this.
            stop.set()
            for future in futures:
                future.cancel()
            raise UploadStoppedError(new_id, len(hashes), len(futures)) from None
    whole = combine_hex([hashes[s] for s in sorted(hashes)])
    response = glacier.complete_multipart_upload(
        accountId=account_id, vaultName=vault, uploadId=new_id, archiveSize=str(size),
        checksum=whole,
    )
    _check_checksum(response, whole, "the archive")
    result = UploadResult(response["archiveId"], whole, size, new_id, len(hashes), 0,
                          response.get("location"))
    for subscriber in subs:
        subscriber.on_done(result=result)
    return result


def _upload_bytes(
    glacier: Any, vault: str, data: bytes, account_id: str, description: str | None,
    subs: list[Subscriber],
) -> UploadResult:
    for subscriber in subs:
        subscriber.on_queued(total_bytes=len(data), already=0)
    return _single_upload(glacier, vault, data, len(data), _hashes(data), account_id,
                          description, subs)


def _single_upload(
    glacier: Any, vault: str, body: Any, size: int, hashes: tuple[str, str], account_id: str,
    description: str | None, subs: list[Subscriber],
) -> UploadResult:
    """One UploadArchive of ``body`` (``size`` bytes, its tree hash and linear SHA-256
    computed already), its checksum checked against the server's."""
    tree, linear = hashes
    params: dict[str, Any] = {"accountId": account_id, "vaultName": vault, "body": body,
                              "checksum": tree}
    if description is not None:
        params["archiveDescription"] = description
    _pending_sha256.value = linear
    try:
        response = glacier.upload_archive(**params)
    finally:
        _pending_sha256.value = None
    _check_checksum(response, tree, "the archive")
    for subscriber in subs:
        subscriber.on_progress(bytes_transferred=size)
    result = UploadResult(response["archiveId"], tree, size, None, 1,
                          location=response.get("location"))
    for subscriber in subs:
        subscriber.on_done(result=result)
    return result
