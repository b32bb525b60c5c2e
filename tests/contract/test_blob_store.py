"""The blob store contract, run on every blob backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from icevault.store.blobs.base import BlobNotFoundError, BlobStore, StagedPart
from tests.seaweed import SeaweedServer


def read_all(store: BlobStore, key: str, start: int, length: int) -> bytes:
    reader = store.open_range(key, start, length)
    try:
        assert reader.length == length
        chunks = []
        step = 7 if length < 1000 else 100_000  # small steps for small blobs: piece seams
        while chunk := reader.read(step):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        reader.close()


def test_write_commit_read_ranges(blobs: BlobStore) -> None:
    writer = blobs.create()
    writer.write(b"hello ")
    writer.write(memoryview(b"world"))
    key = writer.commit()
    assert read_all(blobs, key, 0, 11) == b"hello world"
    assert read_all(blobs, key, 6, 5) == b"world"
    assert key in set(blobs.iter_keys())


def test_file_segment_for_zero_copy(blobs: BlobStore) -> None:
    writer = blobs.create()
    writer.write(b"0123456789")
    key = writer.commit()
    reader = blobs.open_range(key, 3, 4)
    segment = reader.file_segment()
    # Local files can be sent with sendfile; an object store's range cannot.
    assert (segment is not None) == blobs.opens_are_local
    if segment is not None:
        file, offset, count = segment
        file.seek(offset)
        assert file.read(count) == b"3456"
    assert reader.read(100) == b"3456"
    reader.close()


def test_abort_leaves_nothing(blobs: BlobStore) -> None:
    writer = blobs.create()
    writer.write(b"partial")
    writer.abort()
    assert list(blobs.iter_keys()) == []
    assert blobs.sweep_temporary(0) == 0


def test_uncommitted_writes_are_swept(blobs: BlobStore) -> None:
    writer = blobs.create()
    writer.write(b"left behind by a crash")
    assert blobs.sweep_temporary(0) == 1
    assert list(blobs.iter_keys()) == []


def test_delete_is_idempotent_and_missing_reads_fail(blobs: BlobStore) -> None:
    writer = blobs.create()
    writer.write(b"x")
    key = writer.commit()
    blobs.delete(key)
    blobs.delete(key)
    with pytest.raises(BlobNotFoundError):
        blobs.open_range(key, 0, 1)
    with pytest.raises(FileNotFoundError):
        blobs.open_range("00deadbeef", 0, 1)


class Parts:
    """What the metadata records of a staging area's parts: the last write of each wins."""

    def __init__(self, blobs: BlobStore, staging: str) -> None:
        self.blobs, self.staging = blobs, staging
        self.recorded: dict[int, StagedPart] = {}

    def write(self, offset: int, chunks: list[bytes]) -> str:
        part = self.blobs.open_part(self.staging, offset)
        for chunk in chunks:
            part.write(chunk)
        name = part.commit()
        self.recorded[offset] = StagedPart(offset, sum(map(len, chunks)), name)
        return name

    def promote(self, size: int) -> str:
        return self.blobs.promote_staging(self.staging, size, sorted(self.recorded.values()))


def test_staging_parts_in_any_order_then_promote(blobs: BlobStore) -> None:
    staging = blobs.create_staging()
    parts = Parts(blobs, staging)
    for offset, data in [(8, b"89ab"), (0, b"0123"), (4, b"4567"), (0, b"abcd")]:
        parts.write(offset, [data])
    key = parts.promote(12)
    assert read_all(blobs, key, 0, 12) == b"abcd456789ab"
    assert staging in set(blobs.iter_staging_keys())
    blobs.delete_staging(staging)
    blobs.delete_staging(staging)
    assert read_all(blobs, key, 0, 12) == b"abcd456789ab"  # the archive outlives its staging
    with pytest.raises(BlobNotFoundError):
        blobs.open_part(staging, 0)


MIB = 1024 * 1024


def pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into pieces of the given sizes, cycling, like a network delivers them."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        out.append(data[pos:pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return out


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, MIB - 1, MIB, 3 * MIB + 12345, 11 * MIB + 7])
def test_blob_bytes_exact_for_any_size(blobs: BlobStore, size: int) -> None:
    data = os.urandom(size)
    writer = blobs.create()
    for piece in pieces(data, [65536, 1, 300_000, 4096, 777, 5 * MIB + 3]):
        writer.write(piece)
    key = writer.commit()
    assert read_all(blobs, key, 0, size) == data
    reader = blobs.open_range(key, 0, size)
    segment = reader.file_segment()
    if segment is not None:  # nothing past the data: sendfile must not see padding
        assert os.fstat(segment[0].fileno()).st_size == size
    reader.close()


def test_large_parts_with_a_short_last_part(blobs: BlobStore) -> None:
    part_size = 8 * MIB
    data = os.urandom(3 * part_size + 5000)
    parts = Parts(blobs, blobs.create_staging())
    # The last part first, then the others in reverse; one part written twice.
    offsets = list(range(0, len(data), part_size))[::-1] + [part_size]
    for offset in offsets:
        parts.write(offset, pieces(data[offset:offset + part_size],
                                   [100_000, 3, MIB, 5 * MIB + 1]))
    key = parts.promote(len(data))
    assert read_all(blobs, key, 0, len(data)) == data
    assert read_all(blobs, key, part_size - 3, 10) == data[part_size - 3:part_size + 7]


def test_part_at_an_unaligned_offset(blobs: BlobStore) -> None:
    parts = Parts(blobs, blobs.create_staging())
    first, second = os.urandom(5000), os.urandom(MIB + 3)
    for offset, data in ((0, first), (5000, second)):
        parts.write(offset, [data])
    key = parts.promote(5000 + MIB + 3)
    assert read_all(blobs, key, 0, 5000 + MIB + 3) == first + second


def test_aborted_part_keeps_acknowledged_neighbours(blobs: BlobStore) -> None:
    staging = blobs.create_staging()
    parts = Parts(blobs, staging)
    left, right = os.urandom(MIB), os.urandom(MIB)
    for offset, data in ((0, left), (MIB, right)):
        parts.write(offset, [data])
    broken = blobs.open_part(staging, 0)
    broken.write(b"\0" * 1000)
    broken.abort()
    key = parts.promote(2 * MIB)
    got = read_all(blobs, key, 0, 2 * MIB)
    assert got[MIB:] == right


def test_local_zero_filled_blob_is_sparse_and_reads_as_zeros(tmp_path: Path) -> None:
    from icevault.service.seeding import ZeroFilledBlobs
    from icevault.store.blobs.local import LocalBlobStore

    store = LocalBlobStore(tmp_path / "blobs")
    assert isinstance(store, ZeroFilledBlobs)
    size = 64 * 1024 * 1024 + 3
    key = store.create_zero_filled(size)
    path = store.blob_path(key)
    assert path.stat().st_size == size
    assert path.stat().st_blocks * 512 < 1024 * 1024  # no data blocks were written
    assert read_all(store, key, size - 10, 10) == bytes(10)
    assert key in set(store.iter_keys())
    store.disk_threads.shutdown()


def test_keys_younger_than_a_grace_are_not_listed(blobs: BlobStore) -> None:
    # The orphan sweep asks only for bytes older than its grace: another server's upload in
    # flight is younger.
    writer = blobs.create()
    writer.write(b"just written")
    key = writer.commit()
    staging = blobs.create_staging()
    assert key in set(blobs.iter_keys())
    assert key not in set(blobs.iter_keys(older_than_s=3600))
    assert staging in set(blobs.iter_staging_keys())
    assert staging not in set(blobs.iter_staging_keys(older_than_s=3600))
    assert blobs.sweep_temporary(3600) == 0


def test_a_shared_store_promotes_the_recorded_write_of_a_part(seaweed: SeaweedServer) -> None:
    # Two servers on one bucket may write the same part at once while a third completes:
    # the completion must copy exactly the write whose leaves it checked, not a newer one.
    from icevault.store.blobs.s3 import S3BlobStore, S3Location

    blobs = S3BlobStore(S3Location.parse(seaweed.new_store_url()), client=seaweed.client())
    parts = Parts(blobs, blobs.create_staging())
    first = parts.write(0, [b"recorded"])
    recorded = dict(parts.recorded)
    second = parts.write(0, [b"replaced"])
    assert first != second
    parts.recorded = recorded
    key = parts.promote(8)
    assert read_all(blobs, key, 0, 8) == b"recorded"


def test_the_owner_mark_is_kept_beside_the_objects(blobs: BlobStore) -> None:
    # The mark names the installation whose objects the store holds: never listed among
    # them, never swept, and replaced only by writing another.
    assert blobs.read_owner() is None
    blobs.write_owner("a" * 32)
    assert blobs.read_owner() == "a" * 32
    writer = blobs.create()
    writer.write(b"kept")
    key = writer.commit()
    blobs.sweep_temporary(0.0)
    assert list(blobs.iter_keys(0.0)) == [key]
    assert blobs.read_owner() == "a" * 32
    blobs.write_owner("b" * 32)
    assert blobs.read_owner() == "b" * 32
