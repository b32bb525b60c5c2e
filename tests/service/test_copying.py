"""One copy from store to store: it counts only when its bytes match the archive's tree hash,
and a mismatch names the side at fault and leaves nothing in the target."""

from __future__ import annotations

from pathlib import Path

import pytest

from icevault.core.models import Archive, VaultRef
from icevault.core.treehash import MIB, tree_hash
from icevault.service.copying import CopyMismatchError, SourceMismatchError, copy_verified
from icevault.store.blobs.base import BlobStore
from icevault.store.blobs.local import LocalBlobStore, _LocalWriter
from tests.support import pattern

DATA = pattern(3 * MIB + 12345)


class _FlippingWriter(_LocalWriter):
    """Writes every byte it is given, but the first byte of the fourth block flipped."""

    def __init__(self, store: LocalBlobStore) -> None:
        super().__init__(store)
        self._seen = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytearray(data)
        if self._seen <= 3 * MIB < self._seen + len(chunk):
            chunk[3 * MIB - self._seen] ^= 0x01
        self._seen += len(chunk)
        super().write(chunk)


class FlippingStore(LocalBlobStore):
    """A store whose disk changes what it is given."""

    def create(self) -> _LocalWriter:
        return _FlippingWriter(self)


class ArchiveClassStore(LocalBlobStore):
    """A store that cannot be read back at once, as an S3 archive class."""

    readable_at_once = False


def _stored(store: BlobStore, data: bytes) -> Archive:
    writer = store.create()
    writer.write(data)
    key = writer.commit()
    return Archive("a" * 138, VaultRef("acct", "v"), "", len(DATA), tree_hash(DATA), 0, key)


def _keys(store: BlobStore) -> list[str]:
    return list(store.iter_keys())


def test_a_good_copy_holds_the_exact_bytes(tmp_path: Path) -> None:
    source, target = LocalBlobStore(tmp_path / "hot"), LocalBlobStore(tmp_path / "copy")
    archive = _stored(source, DATA)
    assert archive.blob_key is not None
    key = copy_verified(archive, source, archive.blob_key, target)
    assert target.blob_path(key).read_bytes() == DATA
    assert _keys(target) == [key]


def test_a_copy_written_wrong_is_deleted_and_blamed_on_the_copy(tmp_path: Path) -> None:
    source, target = LocalBlobStore(tmp_path / "hot"), FlippingStore(tmp_path / "copy")
    archive = _stored(source, DATA)
    assert archive.blob_key is not None
    with pytest.raises(CopyMismatchError):
        copy_verified(archive, source, archive.blob_key, target)
    assert _keys(target) == []
    assert source.blob_path(archive.blob_key).read_bytes() == DATA


@pytest.mark.parametrize("target_kind", [LocalBlobStore, ArchiveClassStore])
def test_bad_source_bytes_are_blamed_on_the_source_and_leave_no_copy(
        tmp_path: Path, target_kind: type[LocalBlobStore]) -> None:
    source, target = LocalBlobStore(tmp_path / "hot"), target_kind(tmp_path / "copy")
    bad = bytearray(DATA)
    bad[MIB + 7] ^= 0x80
    archive = _stored(source, bytes(bad))  # recorded with the tree hash of DATA
    assert archive.blob_key is not None
    with pytest.raises(SourceMismatchError):
        copy_verified(archive, source, archive.blob_key, target)
    assert _keys(target) == []
