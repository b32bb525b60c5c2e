"""The S3 store's writer holds the store to the bytes sent: each part's MD5 goes with it
(the store refuses one that arrived otherwise), the part's ETag must be that MD5, and the
object's ETag must be the one S3 computes from the parts'. A copy in an archive class,
which cannot be read back, counts on these."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from icevault.store.blobs.base import BlobIntegrityError
from icevault.store.blobs.s3 import S3BlobStore, S3Location


class FakeS3:
    """Takes parts as S3 does, or, told to, answers with wrong checksums."""

    def __init__(self, *, bad_part: bool = False, bad_object: bool = False) -> None:
        self.bad_part, self.bad_object = bad_part, bad_object
        self.deleted: list[str] = []
        self.aborted = 0
        self.sent: list[tuple[int, str]] = []

    def head_bucket(self, **kwargs: Any) -> None:
        pass

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self.storage_class = kwargs.get("StorageClass")
        return {"UploadId": "u1"}

    def upload_part(self, **kwargs: Any) -> dict[str, Any]:
        md5 = hashlib.md5(kwargs["Body"], usedforsecurity=False).digest()
        assert kwargs["ContentMD5"] == base64.b64encode(md5).decode()
        self.sent.append((kwargs["PartNumber"], md5.hex()))
        etag = "0" * 32 if self.bad_part else md5.hex()
        return {"ETag": f'"{etag}"'}

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        digests = b"".join(bytes.fromhex(md5) for _, md5 in self.sent)
        whole = hashlib.md5(digests, usedforsecurity=False).hexdigest()
        if self.bad_object:
            whole = "f" * 32
        return {"ETag": f'"{whole}-{len(self.sent)}"'}

    def abort_multipart_upload(self, **kwargs: Any) -> None:
        self.aborted += 1

    def delete_object(self, **kwargs: Any) -> None:
        self.deleted.append(kwargs["Key"])


def store(fake: FakeS3) -> S3BlobStore:
    location = S3Location.parse("s3://b/p?storage-class=DEEP_ARCHIVE")
    return S3BlobStore(location, client=fake, ensure_bucket=False)


def test_parts_and_object_match_what_was_sent() -> None:
    fake = FakeS3()
    target = store(fake)
    assert not target.readable_at_once
    writer = target.create()
    writer.write(b"x" * (9 * 1024 * 1024))  # a part of its own
    writer.write(b"w" * 1000)  # the short last part
    key = writer.commit()
    assert key and fake.storage_class == "DEEP_ARCHIVE" and len(fake.sent) == 2
    assert fake.deleted == [] and fake.aborted == 0


def test_a_part_the_store_took_otherwise_fails_the_write() -> None:
    fake = FakeS3(bad_part=True)
    writer = store(fake).create()
    with pytest.raises(BlobIntegrityError, match="took part 1"):
        writer.write(b"y" * (9 * 1024 * 1024))
        writer.commit()


def test_an_object_assembled_otherwise_is_deleted_and_fails() -> None:
    fake = FakeS3(bad_object=True)
    writer = store(fake).create()
    writer.write(b"z" * 100)
    with pytest.raises(BlobIntegrityError, match="assembled"):
        writer.commit()
    assert len(fake.deleted) == 1
