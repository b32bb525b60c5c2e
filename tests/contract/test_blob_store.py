"""The blob store contract, run on every blob backend."""

from __future__ import annotations

import pytest

from icevault.store.blobs.base import BlobNotFoundError, BlobStore


def read_all(store: BlobStore, key: str, start: int, length: int) -> bytes:
    reader = store.open_range(key, start, length)
    try:
        assert reader.length == length
        chunks = []
        while chunk := reader.read(7):
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
    if segment is not None:
        file, offset, count = segment
        file.seek(offset)
        assert file.read(count) == b"3456"
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


def test_staging_parts_in_any_order_then_promote(blobs: BlobStore) -> None:
    staging = blobs.create_staging()
    for offset, data in [(8, b"89ab"), (0, b"0123"), (4, b"4567"), (0, b"abcd")]:
        part = blobs.open_part(staging, offset)
        part.write(data)
        part.commit()
    # A stray longer write beyond the final size is cut off by promote.
    tail = blobs.open_part(staging, 12)
    tail.write(b"zzzz")
    tail.commit()
    key = blobs.promote_staging(staging, 12)
    assert read_all(blobs, key, 0, 12) == b"abcd456789ab"
    assert staging in set(blobs.iter_staging_keys())
    blobs.delete_staging(staging)
    blobs.delete_staging(staging)
    assert read_all(blobs, key, 0, 12) == b"abcd456789ab"  # the archive outlives its staging
    with pytest.raises(BlobNotFoundError):
        blobs.open_part(staging, 0)
