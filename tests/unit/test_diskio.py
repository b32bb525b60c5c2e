"""Direct I/O writes and reads: exact bytes at exact offsets, on disks that have it and tmpfs
that lacks it."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from icevault.diskio import ALIGN, BLOCK, O_DIRECT, SequentialWriter, UncachedReader, open_for_write
from icevault.store.blobs.local import LocalBlobStore

# The disk threads write-behind writers hand full blocks to (a caller's own pool).
DISK = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-disk")


def fs_type(path: Path) -> str:
    """The file system type of the mount holding ``path`` (longest mount point prefix)."""
    best, kind = "", ""
    resolved = str(path.resolve())
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _dev, mount_point, fstype, *_ = line.split()
            if (resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")) \
                    and len(mount_point) > len(best):
                best, kind = mount_point, fstype
    return kind


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(dir="/dev/shm"))
    yield root
    shutil.rmtree(root)


def write_stream(path: Path, offset: int, data: bytes, sizes: list[int], direct: bool = True) -> bool:
    fd, is_direct = open_for_write(path, os.O_WRONLY | os.O_CREAT, offset, direct)
    try:
        out = SequentialWriter(fd, offset, is_direct)
        pos, i = 0, 0
        while pos < len(data):
            n = sizes[i % len(sizes)]
            out.write(data[pos:pos + n])
            pos, i = pos + n, i + 1
        out.finish()
        assert out.written == len(data)
    finally:
        os.close(fd)
    return is_direct


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this platform")
def test_direct_on_a_disk_file_system(tmp_path: Path) -> None:
    kind = fs_type(tmp_path)
    if kind not in {"ext4", "xfs", "btrfs"}:
        pytest.skip(f"{tmp_path} is on {kind}, not a block-device file system")
    data = os.urandom(2 * BLOCK + ALIGN + 17)
    path = tmp_path / "f"
    assert write_stream(path, 0, data, [65536, 5, BLOCK + 3]) is True
    assert path.read_bytes() == data


def test_tmpfs_bytes_exact(shm_dir: Path) -> None:
    # tmpfs has accepted O_DIRECT since Linux 6.6 and refuses it before; either way the bytes
    # must come out exact.
    assert fs_type(shm_dir) == "tmpfs"
    data = os.urandom(BLOCK + 99)
    write_stream(shm_dir / "f", 0, data, [1000, BLOCK])
    assert (shm_dir / "f").read_bytes() == data


def test_open_without_direct_io_support_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_direct(path: object, flags: int, mode: int = 0o777) -> int:
        if flags & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    data = os.urandom(BLOCK + 99)
    assert write_stream(tmp_path / "f", 0, data, [BLOCK]) is False
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this platform")
def test_write_refused_after_open_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some file systems accept O_DIRECT at open and refuse the writes (EINVAL).
    real_pwrite = os.pwrite

    def refuse_direct(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", refuse_direct)
    data = os.urandom(2 * BLOCK + 5)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | O_DIRECT, 0o600)
    try:
        out = SequentialWriter(fd, 0, True)
        out.write(data)
        out.finish()
        assert out.direct is False
    finally:
        os.close(fd)
    assert path.read_bytes() == data


@pytest.mark.parametrize("direct", [True, False])
def test_writes_at_offsets_leave_neighbours_alone(tmp_path: Path, direct: bool) -> None:
    path = tmp_path / "f"
    before = os.urandom(3 * BLOCK + 100)
    path.write_bytes(before)
    middle = os.urandom(BLOCK + ALIGN + 1)  # ends mid-page, inside the old bytes
    write_stream(path, BLOCK, middle, [7, 70_000], direct)
    expected = before[:BLOCK] + middle + before[BLOCK + len(middle):]
    assert path.read_bytes() == expected


def test_unaligned_start_is_buffered(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 10)
    data = os.urandom(BLOCK + 5)
    assert write_stream(path, 10, data, [BLOCK]) is False
    assert path.read_bytes() == b"a" * 10 + data


def reader_of(data: bytes, step: int) -> Callable[[memoryview], int]:
    """A readinto over ``data`` that returns at most ``step`` bytes per call, like a socket."""
    position = 0

    def readinto(room: memoryview) -> int:
        nonlocal position
        n = min(len(room), step, len(data) - position)
        room[:n] = data[position:position + n]
        position += n
        return n

    return readinto


@pytest.mark.parametrize("write_behind", [False, True])
def test_read_from_and_write_behind_bytes_exact(tmp_path: Path, write_behind: bool) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"\xee" * (6 * BLOCK))
    data = os.urandom(3 * BLOCK + ALIGN + 11)
    fd, direct = open_for_write(path, os.O_WRONLY, BLOCK)
    seen = bytearray()
    try:
        out = SequentialWriter(fd, BLOCK, direct, block=4 * ALIGN, write_behind=DISK if write_behind else None)
        readinto = reader_of(data, 5000)
        while True:
            with out.read_from(readinto, 3 * ALIGN) as fresh:
                if not len(fresh):
                    break
                seen += fresh  # what the caller hashes is exactly what arrived
        out.finish()
    finally:
        os.close(fd)
    assert bytes(seen) == data
    on_disk = path.read_bytes()
    assert on_disk[BLOCK:BLOCK + len(data)] == data
    assert on_disk[:BLOCK] == b"\xee" * BLOCK and on_disk[BLOCK + len(data):] == b"\xee" * (
        5 * BLOCK - len(data))


@pytest.mark.parametrize("write_behind", [False, True])
def test_write_pieces_spanning_blocks_bytes_exact(tmp_path: Path, write_behind: bool) -> None:
    # Pieces larger than a block and pieces straddling block ends, as a network delivers them.
    data = os.urandom(37 * ALIGN + 5)
    fd, direct = open_for_write(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0)
    try:
        out = SequentialWriter(fd, 0, direct, block=4 * ALIGN, write_behind=DISK if write_behind else None)
        position, sizes = 0, [9 * ALIGN + 1, 3, 5 * ALIGN, ALIGN - 3]
        for i in range(1000):
            if position >= len(data):
                break
            piece = data[position:position + sizes[i % len(sizes)]]
            out.write(piece)
            position += len(piece)
        out.finish()
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_write_behind_failure_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite
    calls = 0

    def failing(fd: int, data: memoryview, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", failing)
    fd, direct = open_for_write(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0)
    try:
        out = SequentialWriter(fd, 0, direct, block=4 * ALIGN, write_behind=DISK)
        with pytest.raises(OSError, match="Input/output"):
            for _ in range(10):
                out.write(os.urandom(4 * ALIGN))
            out.finish()
        out.close()
    finally:
        os.close(fd)


def read_all(reader: UncachedReader, offset: int, size: int, step: int) -> bytes:
    pieces = []
    end = offset + size
    while offset < end:
        piece = reader.pread(min(step, end - offset), offset)
        if not piece:
            break
        pieces.append(piece)
        offset += len(piece)
    return b"".join(pieces)


@pytest.mark.parametrize("where", ["disk", "tmpfs"])
def test_uncached_reads_bytes_exact(tmp_path: Path, shm_dir: Path, where: str) -> None:
    path = (tmp_path if where == "disk" else shm_dir) / "f"
    data = os.urandom(3 * BLOCK + ALIGN + 17)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    reader = UncachedReader(fd, path)
    try:
        # Aligned and unaligned offsets, reads shorter and longer than a block, and past the
        # end of the file (fewer bytes, then none).
        for offset, size, step in [(0, len(data), BLOCK), (0, len(data), 3 * BLOCK),
                                   (ALIGN, 2 * BLOCK, 5000), (7, BLOCK + 3, BLOCK),
                                   (3 * BLOCK, 2 * BLOCK, BLOCK), (BLOCK, 1, 1)]:
            assert read_all(reader, offset, size, step) == data[offset:offset + size]
        assert reader.pread(BLOCK, len(data)) == b""
        assert reader.pread(10 * BLOCK, 0) == data
    finally:
        reader.close()
        os.close(fd)


def disk_bytes_read() -> int:
    """Bytes this process has had the block layer fetch for it (not served from the page
    cache)."""
    with open("/proc/self/io") as io:
        for line in io:
            name, _, value = line.partition(":")
            if name == "read_bytes":
                return int(value)
    raise AssertionError("no read_bytes in /proc/self/io")


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this platform")
def test_blob_reads_come_from_the_disk_not_the_page_cache(tmp_path: Path) -> None:
    # A copy's read-back must check what the disk holds, and scanning archives must not cost
    # the kernel a page per 4 KiB: a local store's reads skip the page cache.
    kind = fs_type(tmp_path)
    if kind not in {"ext4", "xfs", "btrfs"}:
        pytest.skip(f"{tmp_path} is on {kind}, not a block-device file system")
    store = LocalBlobStore(tmp_path / "store")
    data = os.urandom(4 * BLOCK + 99)
    writer = store.create()
    writer.write(data)
    key = writer.commit()
    assert store.blob_path(key).read_bytes() == data  # now every page of it is cached
    before = disk_bytes_read()
    reader = store.open_range(key, 0, len(data))
    try:
        got = b"".join(iter(lambda: reader.read(BLOCK), b""))
    finally:
        reader.close()
    assert got == data
    assert disk_bytes_read() - before >= 4 * BLOCK


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this platform")
def test_uncached_read_refused_after_open_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some file systems accept O_DIRECT at open and refuse the reads (EINVAL).
    real_preadv = os.preadv

    def refuse_direct(fd: int, buffers: list[memoryview], offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", refuse_direct)
    path = tmp_path / "f"
    data = os.urandom(2 * BLOCK + 5)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    reader = UncachedReader(fd, path)
    try:
        assert read_all(reader, 0, len(data), BLOCK) == data
        assert reader.direct is False
    finally:
        reader.close()
        os.close(fd)


def test_uncached_reader_of_an_unlinked_file_reads_it(tmp_path: Path) -> None:
    # A blob deleted while a reader has it open is still read to its end, as before.
    store = LocalBlobStore(tmp_path / "store")
    data = os.urandom(BLOCK + 7)
    writer = store.create()
    writer.write(data)
    key = writer.commit()
    reader = store.open_range(key, 0, len(data))
    store.delete(key)
    try:
        got = b"".join(iter(lambda: reader.read(BLOCK), b""))
    finally:
        reader.close()
    assert got == data
