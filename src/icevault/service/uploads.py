"""The multipart upload family: initiate, upload part, list, complete, abort.

Parts are written straight into the upload's staging area at their offsets, hashed on the
way, and fsynced before they are acknowledged. Completing checks sizes and the whole tree
hash from the stored part leaves alone, then promotes the staging area to an archive blob
without copying it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from icevault.core import treehash
from icevault.core.errors import (
    BodyChecksumMismatchError,
    InvalidParameterValueError,
    ResourceNotFoundError,
)
from icevault.core.ids import new_archive_id, new_upload_id
from icevault.core.models import (
    Archive,
    ArchiveImport,
    Part,
    Upload,
    UploadState,
    VaultRef,
    validate_description,
    validate_vault_name,
)
from icevault.service.archives import StreamHasher, import_conflict
from icevault.service.context import Context
from icevault.service.copies import CopiesBeforeAck
from icevault.service.vaults import require_vault, vault_not_found
from icevault.store.blobs.base import BlobWriter, StagedPart
from icevault.store.metadata.base import ArchiveIdTakenError

MIN_PART = treehash.MIB
MAX_PART = 4 * 1024**3
# RFC 2616's form: the total is "*" (unknown) or the whole archive's size, as some tools send.


class _SharedExclusiveLock:
    """Parts of one upload are written concurrently (shared); completing or aborting it
    waits for them and keeps new ones out (exclusive), because once the staging file is
    promoted a late part must not change the archive's bytes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def acquire_shared(self) -> None:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def release_shared(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def upload_not_found(upload_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"The upload ID was not found: {upload_id}")


@dataclass(frozen=True, slots=True)
class PartRequest:
    """An UploadMultipartPart, typed at the edge: bytes ``first`` to ``last`` (inclusive)."""

    vault: VaultRef
    upload_id: str
    first: int
    last: int
    archive_size: int | None  # the whole archive's size, when the client named it
    tree_hash: str
    content_sha256: str | None  # None: the tree hash alone binds the body
    content_length: int


@dataclass(frozen=True, slots=True)
class UploadPage:
    uploads: list[Upload]
    marker: str | None


@dataclass(frozen=True, slots=True)
class PartPage:
    upload: Upload
    parts: list[Part]
    marker: str | None


class PartUpload:
    """One UploadMultipartPart in flight; ``write`` and ``finish`` block."""

    def __init__(
        self,
        service: UploadService,
        upload: Upload,
        part: Part,
        tree_hash: str,
        content_sha256: str | None,
        writer: BlobWriter,
        lock: _SharedExclusiveLock,
    ) -> None:
        self._service = service
        self._upload = upload
        self._part = part
        self._tree_hash = tree_hash
        self._content_sha256 = content_sha256
        self._hasher = StreamHasher(content_sha256 is not None)
        self._writer = writer
        self._lock: _SharedExclusiveLock | None = lock
        self.received = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._hasher.update(data)
        self._writer.write(data)
        self.received += len(data)

    def finish(self) -> str:
        try:
            if self.received != self._part.size:
                raise InvalidParameterValueError(
                    f"Body length {self.received} does not match the Content-Range length "
                    f"{self._part.size}"
                )
            tree_hash, leaves = self._hasher.check(self._tree_hash, self._content_sha256)
            part = replace(self._part, blob_part=self._writer.commit())
            ctx = self._service.ctx
            if not ctx.meta.put_part(
                self._upload.id, part, treehash.pack_leaves(leaves), ctx.clock.now_ms()
            ):
                raise upload_not_found(self._upload.id)
            return tree_hash
        except BaseException:
            self._writer.abort()
            raise
        finally:
            self._done()

    def abort(self) -> None:
        self._writer.abort()
        self._done()

    def _done(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release_shared()


class UploadService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._locks: dict[str, _SharedExclusiveLock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, upload_id: str) -> _SharedExclusiveLock:
        with self._locks_guard:
            lock = self._locks.get(upload_id)
            if lock is None:
                lock = self._locks[upload_id] = _SharedExclusiveLock()
            return lock

    def _forget_lock(self, upload_id: str) -> None:
        with self._locks_guard:
            self._locks.pop(upload_id, None)

    def _open_upload(self, ref: VaultRef, upload_id: str) -> Upload:
        upload = self.ctx.meta.get_upload(ref, upload_id)
        if upload is None or upload.state is not UploadState.OPEN:
            require_vault(self.ctx, ref)
            raise upload_not_found(upload_id)
        return upload

    def initiate(self, ref: VaultRef, part_size: int, description: str | None,
                 imported: ArchiveImport | None = None) -> Upload:
        validate_vault_name(ref.name)
        size = part_size
        if size < MIN_PART or size > MAX_PART or size & (size - 1):
            raise InvalidParameterValueError(
                f"Invalid part size: {part_size}. The part size must be a megabyte (1024 KB) "
                "multiplied by a power of 2, from 1048576 (1 MB) to 4294967296 (4 GB)."
            )
        if description is not None:
            validate_description(description)
        require_vault(self.ctx, ref)
        now = self.ctx.clock.now_ms()
        upload = Upload(
            id=new_upload_id(),
            vault=ref,
            description=description,
            part_size=size,
            created_at=now,
            updated_at=now,
            blob_key=self.ctx.blobs.create_staging(),
            state=UploadState.OPEN,
            imported=imported,
        )
        if not self.ctx.meta.insert_upload(upload):
            self.ctx.blobs.delete_staging(upload.blob_key)
            raise vault_not_found(self.ctx, ref)
        return upload

    def begin_part(self, request: PartRequest) -> PartUpload:
        validate_vault_name(request.vault.name)
        first, last, total = request.first, request.last, request.archive_size
        shown = f"bytes {first}-{last}/{'*' if total is None else total}"
        tree_hash, content_sha256 = request.tree_hash, request.content_sha256
        upload = self._open_upload(request.vault, request.upload_id)
        length = last - first + 1
        if first % upload.part_size:
            raise InvalidParameterValueError(
                f"Invalid Content-Range: {shown}. The range must start at a "
                f"multiple of the part size {upload.part_size}"
            )
        if length > upload.part_size:
            raise InvalidParameterValueError(
                f"Invalid Content-Range: {shown}. A part is at most the part "
                f"size {upload.part_size}"
            )
        if first // upload.part_size >= self.ctx.limits.max_parts:
            raise InvalidParameterValueError(
                f"Invalid Content-Range: {shown}. An upload has at most "
                f"{self.ctx.limits.max_parts} parts"
            )
        if request.content_length != length:
            raise InvalidParameterValueError(
                f"Content-Length {request.content_length} does not match the Content-Range "
                f"{shown}"
            )
        if total is not None:
            declared = self.ctx.meta.declare_upload_size(upload.id, total)
            if declared is not None and declared != total:
                raise InvalidParameterValueError(
                    f"Invalid Content-Range: {shown}. Another part of this "
                    f"upload declared the archive size {declared}"
                )
        lock = self._lock(upload.id)
        lock.acquire_shared()
        try:
            # Checked again under the lock: a Complete may have run since the first look.
            upload = self._open_upload(request.vault, request.upload_id)
            writer = self.ctx.blobs.open_part(upload.blob_key, first)
        except BaseException:
            lock.release_shared()
            raise
        return PartUpload(
            self, upload, Part(first, last, tree_hash), tree_hash, content_sha256, writer, lock
        )

    def list_uploads(self, ref: VaultRef, marker: str | None, limit: int) -> UploadPage:
        validate_vault_name(ref.name)
        require_vault(self.ctx, ref)
        rows = self.ctx.meta.list_uploads(ref, marker or None, limit + 1)
        return UploadPage(rows[:limit], rows[limit].id if len(rows) > limit else None)

    def list_parts(self, ref: VaultRef, upload_id: str, start: int, limit: int) -> PartPage:
        """Parts from byte offset ``start`` on (ListParts' marker is the next part's offset)."""
        validate_vault_name(ref.name)
        upload = self._open_upload(ref, upload_id)
        rows = self.ctx.meta.list_parts(upload_id, start, limit + 1)
        next_marker = str(rows[limit].start) if len(rows) > limit else None
        return PartPage(upload, rows[:limit], next_marker)

    def complete(self, ref: VaultRef, upload_id: str, size: int, tree_hash: str) -> Archive:
        """Assemble the archive; ``tree_hash`` is the client's, in lowercase hex."""
        validate_vault_name(ref.name)
        expected_hash = tree_hash
        upload = self.ctx.meta.get_upload(ref, upload_id)
        if upload is None or upload.state is UploadState.ABORTED:
            require_vault(self.ctx, ref)
            raise upload_not_found(upload_id)
        if upload.state is UploadState.COMPLETED:
            return self._repeat_complete(ref, upload)
        with self._lock(upload_id).exclusive():
            upload = self.ctx.meta.get_upload(ref, upload_id)
            if upload is None or upload.state is UploadState.ABORTED:
                raise upload_not_found(upload_id)
            if upload.state is UploadState.COMPLETED:
                return self._repeat_complete(ref, upload)
            parts, leaves = self._check_parts(upload, size)
            computed = treehash.combine(leaves).hex()
            if computed != expected_hash:
                raise BodyChecksumMismatchError(
                    f"Invalid x-amz-sha256-tree-hash: {tree_hash}. The tree hash of the "
                    f"uploaded parts is {computed}"
                )
            blob_key = self.ctx.blobs.promote_staging(upload.blob_key, size, [
                StagedPart(part.start, part.size, part.blob_part) for part in parts])
            imported = upload.imported
            archive = Archive(
                id=new_archive_id() if imported is None else imported.archive_id,
                vault=ref,
                description=upload.description,
                size=size,
                tree_hash=computed,
                created_at=self.ctx.clock.now_ms() if imported is None else imported.created_at,
                blob_key=blob_key,
                stored_at=None if imported is None else self.ctx.clock.now_ms(),
            )
            before_ack = CopiesBeforeAck(self.ctx)
            copies = before_ack.make(archive)
            try:
                stored = self.ctx.meta.complete_upload(upload, archive,
                                                       treehash.pack_leaves(leaves))
            except ArchiveIdTakenError as taken:
                self.ctx.blobs.delete(blob_key)
                before_ack.discard(copies)
                raise import_conflict(taken.existing, archive) from None
            if stored is None or stored.blob_key != archive.blob_key:
                self.ctx.blobs.delete(blob_key)
                before_ack.discard(copies)  # another completion of the upload recorded it
            elif copies:
                before_ack.record(stored, copies)
            if stored is None:
                raise upload_not_found(upload_id)
        self._forget_lock(upload_id)
        return stored

    def _repeat_complete(self, ref: VaultRef, upload: Upload) -> Archive:
        assert upload.archive_id is not None
        archive = self.ctx.meta.get_archive(ref, upload.archive_id)
        if archive is None:
            raise upload_not_found(upload.id)
        return archive

    def _check_parts(self, upload: Upload, size: int) -> tuple[list[Part], list[bytes]]:
        if upload.declared_size is not None and upload.declared_size != size:
            raise InvalidParameterValueError(
                f"Invalid x-amz-archive-size: {size}. The parts' Content-Range declared the "
                f"archive size {upload.declared_size}"
            )
        parts = self.ctx.meta.part_leaves(upload.id)
        if not parts:
            raise InvalidParameterValueError(
                f"The upload {upload.id} has no parts; nothing to complete"
            )
        leaves: list[bytes] = []
        expected_start = 0
        for index, (part, packed) in enumerate(parts):
            if part.start != expected_start:
                raise InvalidParameterValueError(
                    f"Parts do not cover the archive: missing bytes {expected_start}-{part.start - 1}"
                    if part.start > expected_start
                    else f"Parts overlap at byte {part.start}"
                )
            last = index == len(parts) - 1
            if not last and part.size != upload.part_size:
                raise InvalidParameterValueError(
                    f"Part {part.start}-{part.end} is shorter than the part size "
                    f"{upload.part_size} but is not the last part"
                )
            leaves.extend(treehash.unpack_leaves(packed))
            expected_start = part.end + 1
        if expected_start != size:
            raise InvalidParameterValueError(
                f"Invalid x-amz-archive-size: {size}. The uploaded parts hold {expected_start} bytes"
            )
        return [part for part, _ in parts], leaves

    def abort(self, ref: VaultRef, upload_id: str) -> None:
        validate_vault_name(ref.name)
        with self._lock(upload_id).exclusive():
            upload = self.ctx.meta.abort_upload(ref, upload_id, self.ctx.clock.now_ms())
        self._forget_lock(upload_id)
        if upload is None:
            require_vault(self.ctx, ref)
            raise upload_not_found(upload_id)
        if upload.state is UploadState.COMPLETED:
            raise upload_not_found(upload_id)
