"""UploadArchive and DeleteArchive.

An upload streams through :class:`ArchiveUpload`: each chunk is hashed (tree hash, and plain
SHA-256 when the client sent ``x-amz-content-sha256``) and written in the same pass. Only
when the checksums match are the bytes committed and the archive recorded, so a failed or
interrupted upload leaves nothing visible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from icevault.core import treehash
from icevault.core.errors import (
    BodyChecksumMismatchError,
    InvalidParameterValueError,
)
from icevault.core.ids import new_archive_id
from icevault.core.models import (
    Archive,
    ArchiveImport,
    VaultRef,
    validate_description,
    validate_vault_name,
)
from icevault.service.context import Context
from icevault.service.copies import CopiesBeforeAck
from icevault.service.vaults import require_vault, vault_not_found
from icevault.store.blobs.base import BlobWriter
from icevault.store.metadata.base import ArchiveIdTakenError, DeleteArchiveOutcome


def import_conflict(existing: Archive, imported: Archive) -> InvalidParameterValueError:
    if existing.vault.account_id != imported.vault.account_id:
        # Another account's archive: say nothing of it, not even that it exists.
        return InvalidParameterValueError(
            f"Archive ID {imported.id} cannot be used for this import; import the archive "
            "under a new ID")
    where = "" if existing.vault == imported.vault else f" in vault {existing.vault.name}"
    state = " (deleted)" if existing.deleted_at is not None else ""
    return InvalidParameterValueError(
        f"Archive ID {existing.id} exists already{where}{state} with tree hash "
        f"{existing.tree_hash} and size {existing.size}; the archive imported under it has "
        f"tree hash {imported.tree_hash} and size {imported.size}"
    )


@dataclass(frozen=True, slots=True)
class UploadRequest:
    """An UploadArchive, typed at the edge (hashes are lowercase hex)."""

    vault: VaultRef
    description: str | None
    tree_hash: str
    content_sha256: str | None  # None: the tree hash alone binds the body
    content_length: int
    imported: ArchiveImport | None = None  # keep another store's ID and creation date


class StreamHasher:
    """Tree hash plus, optionally, the plain SHA-256 of the same bytes."""

    def __init__(self, want_sha256: bool) -> None:
        self.tree = treehash.TreeHasher()
        self.linear = hashlib.sha256() if want_sha256 else None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.tree.update(data)
        if self.linear is not None:
            self.linear.update(data)

    def check(self, tree_hash: str, content_sha256: str | None) -> tuple[str, list[bytes]]:
        """Raise on a mismatch; return the tree hash and leaves of what was received."""
        leaves = self.tree.leaves()
        computed = treehash.combine(leaves).hex()
        if content_sha256 is not None and self.linear is not None:
            linear = self.linear.hexdigest()
            if linear != content_sha256:
                raise InvalidParameterValueError(
                    f"x-amz-content-sha256 mismatch: expected {content_sha256}, computed {linear}"
                )
        if computed != tree_hash:
            raise BodyChecksumMismatchError(
                f"Checksum mismatch: expected {tree_hash}, computed {computed}"
            )
        return computed, leaves


class ArchiveUpload:
    """One UploadArchive in flight. ``write`` blocks; call it from a worker thread."""

    def __init__(self, ctx: Context, request: UploadRequest, tree_hash: str) -> None:
        self._ctx = ctx
        self._request = request
        self._tree_hash = tree_hash
        self._hasher = StreamHasher(request.content_sha256 is not None)
        self._writer: BlobWriter | None = ctx.blobs.create()
        self.received = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._writer is not None, "upload already finished"
        self._hasher.update(data)
        self._writer.write(data)
        self.received += len(data)

    def finish(self) -> Archive:
        writer = self._writer
        assert writer is not None, "upload already finished"
        self._writer = None
        try:
            expected = self._request.content_length
            if expected is not None and self.received != expected:
                raise InvalidParameterValueError(
                    f"Body length {self.received} does not match Content-Length {expected}"
                )
            if self.received == 0:
                raise InvalidParameterValueError("Invalid Content-Length: 0. An archive is 1 byte or more.")
            tree_hash, leaves = self._hasher.check(self._tree_hash, self._request.content_sha256)
            blob_key = writer.commit()
        except BaseException:
            writer.abort()  # a failed commit (a full disk) leaves no temporary file behind
            raise
        imported = self._request.imported
        archive = Archive(
            id=new_archive_id() if imported is None else imported.archive_id,
            vault=self._request.vault,
            description=self._request.description,
            size=self.received,
            tree_hash=tree_hash,
            created_at=self._ctx.clock.now_ms() if imported is None else imported.created_at,
            blob_key=blob_key,
            stored_at=None if imported is None else self._ctx.clock.now_ms(),
        )
        before_ack = CopiesBeforeAck(self._ctx)
        copies = before_ack.make(archive)
        try:
            inserted = self._ctx.meta.insert_archive(archive, treehash.pack_leaves(leaves))
        except ArchiveIdTakenError as taken:
            self._ctx.blobs.delete(blob_key)
            before_ack.discard(copies)
            if taken.same_as(archive):
                return taken.existing  # the same import again: nothing new to store
            raise import_conflict(taken.existing, archive) from None
        if not inserted:
            self._ctx.blobs.delete(blob_key)
            before_ack.discard(copies)
            raise vault_not_found(self._ctx, archive.vault)
        before_ack.record(archive, copies)
        return archive

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


class ArchiveService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def begin_upload(self, request: UploadRequest) -> ArchiveUpload:
        """Check everything that can be checked before the body is read."""
        validate_vault_name(request.vault.name)
        if request.description is not None:
            validate_description(request.description)
        if request.content_length <= 0:
            raise InvalidParameterValueError(
                f"Invalid Content-Length: {request.content_length}. An archive is 1 byte or more."
            )
        if request.content_length > self.ctx.limits.max_single_upload:
            raise InvalidParameterValueError(
                f"Invalid Content-Length: {request.content_length}. A single upload is at most "
                f"{self.ctx.limits.max_single_upload} bytes; use a multipart upload."
            )
        require_vault(self.ctx, request.vault)
        return ArchiveUpload(self.ctx, request, request.tree_hash)

    def delete(self, ref: VaultRef, archive_id: str) -> None:
        validate_vault_name(ref.name)
        outcome = self.ctx.meta.delete_archive(ref, archive_id, self.ctx.clock.now_ms())
        # Deletion is idempotent (spec section 6): only a missing vault is an error.
        if outcome is DeleteArchiveOutcome.NOT_FOUND:
            require_vault(self.ctx, ref)
