"""Blobs in an S3-compatible object store (tested against SeaweedFS).

Layout under ``s3://bucket/prefix``::

    blobs/<key>                  committed blobs (archives, job outputs): plain objects
    staging/<key>/.staging       marks a multipart upload's staging area as existing
    staging/<key>/<offset hex>   one object per part, named by its offset
    icevault-owner               the installation (metadata database) whose objects these are

Every blob is written as an S3 multipart upload that is started when the writer is created:
the object appears only when the upload completes, so a key is either absent or complete,
and a writer cut off by a crash stays listed as an incomplete upload, which
:meth:`S3BlobStore.sweep_temporary` aborts. Completing a Glacier multipart upload assembles
the parts into one object with server-side copies (UploadPartCopy) when every part but the
last is at least S3's 5 MiB minimum; smaller parts are streamed through in 8 MiB pieces.
Reads are ranged GETs, streamed.

Several servers on one database share a bucket: their sweeps leave alone what is younger
than the orphan grace (another server's upload in flight). Servers on different databases
must not: each would sweep the other's objects, which the owner mark prevents.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlparse

import boto3
import boto3.session
import botocore.config
from botocore.exceptions import ClientError

from icevault.core.ids import new_blob_key
from icevault.diskio import BLOCK
from icevault.store.blobs.base import (
    BlobIntegrityError,
    BlobNotFoundError,
    RestoreState,
    RestoreStatus,
    StagedPart,
)

S3_MIN_PART = 5 * 1024 * 1024
PIECE = 8 * 1024 * 1024  # bytes buffered per writer before a part is sent
STAGING_MARKER = ".staging"
OWNER_KEY = "icevault-owner"  # the installation whose objects these are (see base.py)


def _missing(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str
    storage_class: str | None = None  # objects are written in it (a copy store's option)
    profile: str | None = None  # the AWS profile its credentials come from
    restore_days: int = 1  # how long a restored copy stays readable

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/prefix?endpoint=http://host:port&region=us-east-1``"""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
        query = parse_qs(parsed.query)
        prefix = parsed.path.strip("/")
        storage_class = query.get("storage-class", [None])[0]
        if storage_class is not None and storage_class not in STORAGE_CLASSES:
            raise ValueError(f"unknown storage class {storage_class!r} (one of "
                             f"{', '.join(sorted(STORAGE_CLASSES))})")
        days_text = query.get("restore-days", ["1"])[0]
        if not days_text.isdigit() or not 1 <= int(days_text) <= 365:
            raise ValueError(f"restore-days is a whole number of days from 1 to 365, not "
                             f"{days_text!r}")
        return cls(
            bucket=parsed.netloc,
            prefix=f"{prefix}/" if prefix else "",
            endpoint_url=query.get("endpoint", [None])[0],
            region=query.get("region", ["us-east-1"])[0],
            storage_class=storage_class,
            profile=query.get("profile", [None])[0],
            restore_days=int(days_text),
        )


# S3's storage classes an object may be written in, and those read only after a restore.
STORAGE_CLASSES = frozenset({"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                             "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"})
COLD_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class _S3Writer:
    """Streams one object as a multipart upload; ``on_commit`` gives the caller's key."""

    def __init__(self, store: S3BlobStore, object_key: str, result: str) -> None:
        self._store = store
        self._object_key = object_key
        self._result = result
        s3 = store.client
        extra = {} if store.storage_class is None else {"StorageClass": store.storage_class}
        self._upload_id: str | None = s3.create_multipart_upload(
            Bucket=store.bucket, Key=object_key, **extra
        )["UploadId"]
        self._parts: list[dict[str, Any]] = []
        # Each part's MD5, as S3 computes its ETags; None once a part is a store-side copy.
        self._digests: list[bytes] | None = []
        self._pending = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._upload_id is not None, "writer is closed"
        self._pending += data
        if len(self._pending) >= PIECE:
            self._send(self._pending)
            self._pending = bytearray()

    def _send(self, data: bytes | bytearray) -> None:
        # The buffer itself is the body (no copy); the caller starts a new one afterwards.
        number = len(self._parts) + 1
        # Content-MD5: the store refuses a part that arrived other than sent (BadDigest),
        # and its ETag is then the MD5 it computed; the object's ETag is checked at the end.
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        response = self._store.client.upload_part(
            Bucket=self._store.bucket, Key=self._object_key, UploadId=self._upload_id,
            PartNumber=number, Body=data, ContentMD5=base64.b64encode(digest).decode(),
        )
        if response["ETag"].strip('"') != digest.hex():
            raise BlobIntegrityError(f"the store took part {number} of {self._object_key} "
                                     f"as {response['ETag']}, not {digest.hex()}")
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        if self._digests is not None:
            self._digests.append(digest)

    def copy(self, source_key: str, length: int) -> None:
        """Append the first ``length`` bytes of another object as a part, copied by the store."""
        assert self._upload_id is not None and not self._pending, "copy only whole parts"
        number = len(self._parts) + 1
        response = self._store.client.upload_part_copy(
            Bucket=self._store.bucket, Key=self._object_key, UploadId=self._upload_id,
            PartNumber=number, CopySource={"Bucket": self._store.bucket, "Key": source_key},
            CopySourceRange=f"bytes=0-{length - 1}",
        )
        self._parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
        self._digests = None  # a store-side copy's ETag need not be an MD5: not checked

    def commit(self) -> str:
        assert self._upload_id is not None, "writer is closed"
        try:
            if self._pending or not self._parts:
                self._send(self._pending)  # the last part may be short (or empty)
                self._pending = bytearray()
            completed = self._store.client.complete_multipart_upload(
                Bucket=self._store.bucket, Key=self._object_key, UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            digests = self._digests or []
            whole = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
            expected = f"{whole}-{len(digests)}"
            if self._digests is not None and completed.get("ETag", "").strip('"') != expected:
                # The object is whole but not what was sent: it must not count.
                self._store.client.delete_object(Bucket=self._store.bucket,
                                                 Key=self._object_key)
                raise BlobIntegrityError(
                    f"the store assembled {self._object_key} as {completed.get('ETag')}, "
                    f"not {expected}")
        except BaseException:
            self.abort()
            raise
        self._upload_id = None
        return self._result

    def abort(self) -> None:
        upload_id, self._upload_id = self._upload_id, None
        self._pending.clear()
        if upload_id is not None:
            try:
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._object_key, UploadId=upload_id
                )
            except ClientError as exc:
                if not _missing(exc):
                    raise


def parse_restore_header(value: str) -> RestoreStatus:
    """HeadObject's x-amz-restore (``ongoing-request="false", expiry-date="Fri, 21 Dec 2012
    00:00:00 GMT"``): the restore's state, and when a restored copy expires. By hand:
    botocore hands the header over as its text (``Restore``), and no library parses it."""
    if 'ongoing-request="true"' in value:
        return RestoreStatus(RestoreState.RESTORING)
    if 'ongoing-request="false"' not in value:
        return RestoreStatus(RestoreState.ARCHIVED)
    _, found, rest = value.partition('expiry-date="')
    if not found:
        return RestoreStatus(RestoreState.RESTORED)
    try:
        expiry = parsedate_to_datetime(rest.partition('"')[0])
    except (TypeError, ValueError):
        return RestoreStatus(RestoreState.RESTORED)  # readable; its end unsaid
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return RestoreStatus(RestoreState.RESTORED, int(expiry.timestamp() * 1000))


class _S3Reader:
    def __init__(self, body: Any, length: int) -> None:
        self._body = body
        self._length = length
        self._remaining = length

    @property
    def length(self) -> int:
        return self._length

    def file_segment(self) -> tuple[BinaryIO, int, int] | None:
        return None  # no file to hand to sendfile(2): the bytes come over HTTP

    def read(self, size: int) -> bytes:
        if self._remaining <= 0 or self._body is None:
            return b""
        data: bytes = self._body.read(min(size, self._remaining))
        if not data:
            raise OSError(f"object ended {self._remaining} bytes early")
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        if self._body is not None:
            self._body.close()


class S3BlobStore:
    """The blob store on an S3-compatible object store."""

    opens_are_local = False  # every open is a GET

    def __init__(self, location: S3Location, client: Any = None, *,
                 ensure_bucket: bool = True) -> None:
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.storage_class = location.storage_class
        self.restore_days = location.restore_days
        self.readable_at_once = location.storage_class not in COLD_CLASSES
        session = boto3.session.Session(profile_name=location.profile)
        self.client = client or session.client(
            "s3", endpoint_url=location.endpoint_url, region_name=location.region,
            config=botocore.config.Config(
                s3={"addressing_style": "path"}, max_pool_connections=64,
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )
        # The readiness probe's own client: one attempt, short timeouts, so a store that is
        # down is reported in seconds, not after the data path's retries.
        self._probe = client or session.client(
            "s3", endpoint_url=location.endpoint_url, region_name=location.region,
            config=botocore.config.Config(
                s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=2,
                retries={"total_max_attempts": 1},
            ),
        )
        # A copy store (ensure_bucket=False) is checked at its first write instead: one that
        # is down must not keep the server from starting.
        self._bucket_ready = False
        if ensure_bucket:
            self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
        self._bucket_ready = True

    def ping(self) -> None:
        self._probe.head_bucket(Bucket=self.bucket)

    def read_owner(self) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}{OWNER_KEY}")
        except ClientError as exc:
            if _missing(exc) or exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return None
            raise
        return str(body["Body"].read().decode().strip())

    def write_owner(self, owner: str) -> None:
        self._ensure_bucket()
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}{OWNER_KEY}",
                               Body=owner.encode())

    # -- keys -----------------------------------------------------------------------------
    def _blob(self, key: str) -> str:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise BlobNotFoundError(f"invalid blob key {key!r}")
        return f"{self.prefix}blobs/{key}"

    def _staging(self, key: str) -> str:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise BlobNotFoundError(f"invalid staging key {key!r}")
        return f"{self.prefix}staging/{key}/"

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    # -- blobs ----------------------------------------------------------------------------
    def create(self) -> _S3Writer:
        self._ensure_bucket()
        key = new_blob_key()
        return _S3Writer(self, self._blob(key), key)

    def open_range(self, key: str, start: int, length: int) -> _S3Reader:
        name = self._blob(key)
        try:
            if length == 0:
                self.client.head_object(Bucket=self.bucket, Key=name)
                return _S3Reader(None, 0)
            response = self.client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFoundError(f"no blob {key}") from None
            raise
        if int(response["ContentLength"]) != length:
            response["Body"].close()
            raise OSError(f"blob {key} has {response['ContentLength']} bytes at {start}, not {length}")
        return _S3Reader(response["Body"], length)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._blob(key))  # idempotent

    # -- archive classes (see blobs.base.Restorable) --------------------------------------
    @property
    def restore_tiers(self) -> frozenset[str]:
        if self.storage_class == "DEEP_ARCHIVE":
            return frozenset({"Standard", "Bulk"})
        return frozenset({"Expedited", "Standard", "Bulk"})

    def restore_state(self, key: str) -> RestoreStatus:
        """From HeadObject's x-amz-restore: ``ongoing-request="true"`` while a restore runs,
        ``"false"`` with an expiry date once the object is readable."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._blob(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise BlobNotFoundError(f"no blob {key}") from None
            raise
        return parse_restore_header(head.get("Restore") or "")

    def request_restore(self, key: str, days: int, tier: str) -> RestoreStatus:
        try:
            self.client.restore_object(
                Bucket=self.bucket, Key=self._blob(key),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "RestoreAlreadyInProgress":  # joined, not repeated
                return RestoreStatus(RestoreState.RESTORING)
            if code == "GlacierExpeditedRetrievalNotAvailable" and tier == "Expedited":
                # No Expedited capacity now (AWS's 503): Standard, as AWS advises.
                return self.request_restore(key, days, "Standard")
            raise
        return self.restore_state(key)

    def iter_keys(self, older_than_s: float = 0.0) -> Iterator[str]:
        base = f"{self.prefix}blobs/"
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        for item in self._list(base):
            if item["LastModified"] <= cutoff:
                yield item["Key"][len(base):]

    def sweep_temporary(self, older_than_s: float) -> int:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        removed = 0
        # Blobs and parts alike are written as multipart uploads: any left behind is garbage.
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] <= cutoff:
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if not _missing(exc):
                            raise
                        continue
                    removed += 1
        return removed

    # -- multipart staging ----------------------------------------------------------------
    def create_staging(self) -> str:
        key = new_blob_key()
        self.client.put_object(Bucket=self.bucket, Key=self._staging(key) + STAGING_MARKER, Body=b"")
        return key

    def _require_staging(self, key: str) -> str:
        base = self._staging(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=base + STAGING_MARKER)
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFoundError(f"no staging area {key}") from None
            raise
        return base

    def open_part(self, staging_key: str, offset: int) -> _S3Writer:
        base = self._require_staging(staging_key)
        # Each write of a part is a new object: a completion on another server copies only
        # the objects the metadata recorded, never one being replaced under it.
        name = f"{offset:016x}.{secrets.token_hex(8)}"
        return _S3Writer(self, f"{base}{name}", name)

    def promote_staging(self, staging_key: str, size: int, parts: Sequence[StagedPart]) -> str:
        base = self._require_staging(staging_key)
        pieces: list[tuple[int, int, str]] = []
        position = 0
        for offset, length, name in sorted(parts):
            if offset >= size:
                break
            if offset != position:
                raise BlobNotFoundError(f"staging area {staging_key} has no bytes at {position}")
            take = min(length, size - position)
            pieces.append((offset, take, base + (name or f"{offset:016x}")))
            position += take
        if position != size:
            raise BlobNotFoundError(f"staging area {staging_key} has {position} of {size} bytes")
        key = new_blob_key()
        writer = _S3Writer(self, self._blob(key), key)
        try:
            if all(length >= S3_MIN_PART for _, length, _ in pieces[:-1]):
                for _, length, name in pieces:  # server-side: no byte passes through here
                    writer.copy(name, length)
            else:  # parts under S3's minimum part size: stream them into bigger ones
                for _, length, name in pieces:
                    body = self.client.get_object(
                        Bucket=self.bucket, Key=name, Range=f"bytes=0-{length - 1}"
                    )["Body"]
                    try:
                        while chunk := body.read(BLOCK):
                            writer.write(chunk)
                    finally:
                        body.close()
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def delete_staging(self, staging_key: str) -> None:
        base = self._staging(staging_key)
        names = [item["Key"] for item in self._list(base)]
        # The marker goes last: a half-deleted area is still listed and swept again.
        names.sort(key=lambda name: name.endswith(STAGING_MARKER))
        for name in names:
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def iter_staging_keys(self, older_than_s: float = 0.0) -> Iterator[str]:
        # By their markers: some stores keep an emptied "directory" listed as a prefix.
        base = f"{self.prefix}staging/"
        suffix = "/" + STAGING_MARKER
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        for item in self._list(base):
            if item["Key"].endswith(suffix) and item["LastModified"] <= cutoff:
                yield item["Key"][len(base):-len(suffix)]
