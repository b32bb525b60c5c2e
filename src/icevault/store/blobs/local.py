"""Blobs as files on a local disk, written durably.

Layout under the root::

    blobs/<k[:2]>/<k>    committed blobs (archives, job outputs), fanned out by key prefix
    staging/<k>          sparse files of multipart uploads, parts written at their offsets
    tmp/<random>         single writes in flight; renamed into blobs/ on commit
    icevault-owner       the installation whose objects these are

Archive bytes are written with direct I/O where the file system allows it (``diskio``).
A write goes to ``tmp/``, is fsynced, renamed into place, and the directory is fsynced, so a
key is either absent or complete. A multipart upload is completed by hard-linking its staging
file into ``blobs/`` after truncating and fsyncing it: the archive is assembled without
copying a byte.
"""

from __future__ import annotations

import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from icevault.core.ids import new_blob_key
from icevault.diskio import BLOCK, SequentialWriter, UncachedReader, open_for_write
from icevault.store.blobs.base import BlobNotFoundError, StagedPart
from icevault.store.paths import ensure_private_dir, make_private_dir, write_private_file

# Direct writes of 1 MiB, each written by a disk thread while the next fills: per upload in
# flight 2 MiB of buffers. Larger blocks measured no faster here and cost server memory.


OWNER_FILE = "icevault-owner"  # the installation whose objects these are (see base.py)


def _older(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return entry.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False  # deleted meanwhile: nothing to sweep


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileWriter(ABC):
    """Bytes written block by block at an offset of an open file (see
    diskio.SequentialWriter), then made durable; what the blob is once written is each
    subclass's ``_publish``."""

    def __init__(self, fd: int, offset: int, direct: bool, disk_threads: Executor) -> None:
        self._fd: int | None = fd
        self._out = SequentialWriter(fd, offset, direct, BLOCK, write_behind=disk_threads)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._fd is not None, "writer is closed"
        self._out.write(data)

    def commit(self) -> str:
        assert self._fd is not None, "writer is closed"
        try:
            self._out.finish()
            self._sync(self._fd)
        finally:
            self._close()
        return self._publish()

    def abort(self) -> None:
        self._close()

    def _close(self) -> None:
        self._out.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _sync(self, fd: int) -> None:
        os.fsync(fd)

    @abstractmethod
    def _publish(self) -> str:
        """What the written, synced bytes become: the key the writer returns."""


class _LocalWriter(_FileWriter):
    """A new blob: written to a temporary file, renamed to its key's path once durable."""

    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        self._tmp = store.root / "tmp" / f"{secrets.token_hex(12)}.part"
        fd, direct = open_for_write(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0,
                                    store.direct_io)
        super().__init__(fd, 0, direct, store.disk_threads)

    def _publish(self) -> str:
        key = new_blob_key()
        target = self._store.blob_path(key)
        os.rename(self._tmp, target)
        _fsync_dir(target.parent)
        return key

    def abort(self) -> None:
        super().abort()
        self._tmp.unlink(missing_ok=True)


class _PartWriter(_FileWriter):
    """A part written in place into its upload's staging file."""

    def __init__(self, path: Path, offset: int, staging_key: str, direct_io: bool,
                 disk_threads: Executor) -> None:
        try:
            fd, direct = open_for_write(path, os.O_WRONLY, offset, direct_io)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no staging area {staging_key}") from None
        super().__init__(fd, offset, direct, disk_threads)
        self._key = staging_key

    def _sync(self, fd: int) -> None:
        # The part's bytes and the file size they need; promotion fsyncs the rest.
        os.fdatasync(fd)

    def _publish(self) -> str:
        # Bytes of an aborted part stay in the sparse file; they are either overwritten by
        # a retried part or never referenced, since only acknowledged parts count.
        return self._key


class _LocalReader:
    """A range of a blob: handed to the kernel whole (``file_segment``, sent from the page
    cache), or read block by block without the page cache (see diskio.UncachedReader)."""

    def __init__(self, path: Path, start: int, length: int, key: str, direct_io: bool) -> None:
        try:
            self._file: BinaryIO = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {key}") from None
        self._path = path
        self._direct_io = direct_io
        self._reads: UncachedReader | None = None  # opened by the first read
        self._start = start
        self._length = length
        self._pos = 0

    @property
    def length(self) -> int:
        return self._length

    def file_segment(self) -> tuple[BinaryIO, int, int]:
        return self._file, self._start, self._length

    def read(self, size: int) -> bytes:
        want = min(size, self._length - self._pos)
        if want <= 0:
            return b""
        if self._reads is None:
            self._reads = UncachedReader(self._file.fileno(), self._path, self._direct_io)
        data = self._reads.pread(want, self._start + self._pos)
        if not data:
            raise OSError(f"blob is shorter than expected at offset {self._start + self._pos}")
        self._pos += len(data)
        return data

    def close(self) -> None:
        if self._reads is not None:
            self._reads.close()
        self._file.close()


class LocalBlobStore:
    """The embedded blob store: files under one directory, fsynced on commit."""

    opens_are_local = True
    readable_at_once = True

    def __init__(self, root: Path, direct_io: bool = True) -> None:
        self.root = root
        # Archive bytes bypass the page cache where the file system allows (see diskio).
        self.direct_io = direct_io
        # Writes one block of each upload while the next fills (see diskio.SequentialWriter).
        self.disk_threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="icevault-disk")
        make_private_dir(root)
        for sub in ("blobs", "staging", "tmp"):
            ensure_private_dir(root / sub)
        blobs = root / "blobs"
        created = False
        for i in range(256):
            created = ensure_private_dir(blobs / f"{i:02x}") or created
        if created:
            _fsync_dir(blobs)
            _fsync_dir(root)

    def blob_path(self, key: str) -> Path:
        if len(key) < 2 or not all(c in "0123456789abcdef" for c in key):
            raise BlobNotFoundError(f"invalid blob key {key!r}")
        return self.root / "blobs" / key[:2] / key

    def _staging_path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise BlobNotFoundError(f"invalid staging key {key!r}")
        return self.root / "staging" / key

    def create(self) -> _LocalWriter:
        return _LocalWriter(self)

    def create_zero_filled(self, size: int) -> str:
        """A committed blob of ``size`` zero bytes, as a sparse file (test seeding): no byte
        is written and no disk space used. Not fsynced: seeded test data need not survive a
        crash."""
        key = new_blob_key()
        fd = os.open(self.blob_path(key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        return key

    def open_range(self, key: str, start: int, length: int) -> _LocalReader:
        return _LocalReader(self.blob_path(key), start, length, key, self.direct_io)

    def delete(self, key: str) -> None:
        path = self.blob_path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def create_staging(self) -> str:
        key = new_blob_key()
        path = self._staging_path(key)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        _fsync_dir(path.parent)
        return key

    def open_part(self, staging_key: str, offset: int) -> _PartWriter:
        return _PartWriter(self._staging_path(staging_key), offset, staging_key, self.direct_io,
                           self.disk_threads)

    def promote_staging(self, staging_key: str, size: int, parts: Sequence[StagedPart]) -> str:
        # One sparse file holds every part (a data directory has one server): the parts are
        # already in place.
        del parts
        path = self._staging_path(staging_key)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            raise BlobNotFoundError(f"no staging area {staging_key}") from None
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        key = new_blob_key()
        target = self.blob_path(key)
        os.link(path, target)
        _fsync_dir(target.parent)
        return key

    def delete_staging(self, staging_key: str) -> None:
        path = self._staging_path(staging_key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def read_owner(self) -> str | None:
        try:
            return (self.root / OWNER_FILE).read_text().strip()
        except FileNotFoundError:
            return None

    def write_owner(self, owner: str) -> None:
        write_private_file(self.root / OWNER_FILE, owner.encode())

    def ping(self) -> None:
        # The directories the store writes in must be there and writable.
        for sub in ("blobs", "staging", "tmp"):
            if not os.access(self.root / sub, os.W_OK | os.X_OK):
                raise OSError(f"{self.root / sub} is missing or not writable")

    def iter_keys(self, older_than_s: float = 0.0) -> Iterator[str]:
        cutoff = time.time() - older_than_s
        for fan in sorted((self.root / "blobs").iterdir()):
            if fan.is_dir():
                for entry in os.scandir(fan):
                    if _older(entry, cutoff):
                        yield entry.name

    def iter_staging_keys(self, older_than_s: float = 0.0) -> Iterator[str]:
        cutoff = time.time() - older_than_s
        for entry in os.scandir(self.root / "staging"):
            if _older(entry, cutoff):
                yield entry.name

    def sweep_temporary(self, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in os.scandir(self.root / "tmp"):
            try:
                if entry.stat().st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
