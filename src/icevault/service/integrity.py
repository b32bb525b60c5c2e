"""Integrity at rest: stored bytes are checked against the leaf hashes recorded at upload.

A retrieval job reads what it will serve before it reports Succeeded, a scrub re-reads
whole archives in the background, and the console's downloads check each MiB as they send
it (:class:`VerifyingReader`). An archive whose bytes fail is repaired from the first of
its copies (``--copy-url``) that still matches its tree hash; with none, it is marked
corrupt: from then on no job completes for it and GetJobOutput refuses to serve it, and
the operator is told which archive to restore.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import BinaryIO

from icevault.core import treehash
from icevault.core.models import Archive, iso8601
from icevault.service.context import Context, Event
from icevault.service.copying import SourceMismatchError, copy_verified
from icevault.store.blobs.base import BlobNotFoundError, BlobReader, BlobStore
from icevault.store.metadata.copy_port import CopyState

log = logging.getLogger("icevault.integrity")

READ_SIZE = treehash.MIB


def corruption_message(archive: Archive) -> str:
    when = "" if archive.corrupt_at is None else f" on {iso8601(archive.corrupt_at)}"
    return (
        f"The archive's stored bytes failed verification{when} ({archive.corrupt_reason}); "
        "it cannot be retrieved until it is restored"
    )


class IntegrityService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(
        self,
        archive: Archive,
        start: int = 0,
        end: int | None = None,
        pace: Callable[[int], None] | None = None,
        source: tuple[BlobStore, str] | None = None,
    ) -> str | None:
        """Read the leaves under ``[start, end]`` and compare each with its stored hash.

        Returns None when every byte matches, else why not. ``pace`` is told each read's
        size (a scrub's rate limit). ``source`` reads another store's object instead of
        the hot bytes (a restored cold copy)."""
        store, key = source if source is not None else (self.ctx.blobs, archive.blob_key)
        if key is None:
            return "its bytes are no longer stored"
        last = archive.size - 1 if end is None else end
        first_leaf = start // treehash.MIB
        stop_leaf = last // treehash.MIB + 1
        packed = self.ctx.meta.get_archive_leaves(archive.id, first_leaf, stop_leaf - first_leaf)
        if packed is None or len(packed) != (stop_leaf - first_leaf) * treehash.DIGEST_SIZE:
            return "its leaf hashes are missing from the metadata"
        offset = first_leaf * treehash.MIB
        length = min(stop_leaf * treehash.MIB, archive.size) - offset
        try:
            reader = store.open_range(key, offset, length)
        except BlobNotFoundError:
            return "its stored bytes are missing"
        try:
            for index in range(stop_leaf - first_leaf):
                want = min(treehash.MIB, length - index * treehash.MIB)
                data = _read_exactly(reader.read, want)
                if pace is not None:
                    pace(len(data))
                if len(data) != want:
                    return f"its stored bytes end early, at byte {offset + index * READ_SIZE + len(data)}"
                expected = packed[index * treehash.DIGEST_SIZE:(index + 1) * treehash.DIGEST_SIZE]
                if hashlib.sha256(data).digest() != expected:
                    leaf = first_leaf + index
                    return (
                        f"the 1 MiB block at byte {leaf * treehash.MIB} does not match its "
                        "tree-hash leaf"
                    )
        except OSError as exc:
            return f"its stored bytes cannot be read: {exc}"
        finally:
            reader.close()
        return None

    def repair_or_quarantine(self, archive: Archive, reason: str) -> Archive | None:
        """``archive``'s stored bytes failed verification for ``reason``: replace them from
        a good copy (the archive as it is then), or, with no good copy left, mark it corrupt
        (None)."""
        repaired = self.repair(archive, reason)
        if repaired is None:
            self.quarantine(archive, reason)
        return repaired

    def repair(self, archive: Archive, reason: str) -> Archive | None:
        """New hot bytes for ``archive`` from the first of its verified copies that still
        matches its tree hash; a copy that does not is marked failed (made again later)."""
        if archive.blob_key is None or not self.ctx.copies:
            return None
        for copy in self.ctx.meta.archive_copies(archive.id):
            store = self.ctx.copies.get(copy.store)
            if (copy.state is not CopyState.VERIFIED or copy.blob_key is None or store is None
                    or not store.readable_at_once):
                continue  # a cold copy is read only after a restore, which a job starts
            try:
                key = copy_verified(archive, store, copy.blob_key, self.ctx.blobs)
            except SourceMismatchError as exc:
                self.ctx.meta.mark_copy_failed(archive.id, copy.store,
                                               self.ctx.clock.now_ms(), f"scrubbed: {exc}")
                self.ctx.observe(Event.COPY_REMADE, 1)
                continue
            except Exception as exc:  # noqa: BLE001 - any store's client error: try the next
                log.warning("cannot repair archive %s from %s: %s: %s", archive.id,
                            copy.store, type(exc).__name__, exc)
                continue
            now = self.ctx.clock.now_ms()
            if not self.ctx.meta.replace_archive_blob(archive.id, archive.blob_key, key, now):
                self.ctx.blobs.delete(key)  # deleted or repaired by another meanwhile
                return None
            self.ctx.observe(Event.ARCHIVE_REPAIRED, 1)
            log.warning(
                "REPAIRED ARCHIVE %s in vault %s of account %s from the copy in %s: its "
                "stored bytes had failed verification (%s)", archive.id, archive.vault.name,
                archive.vault.account_id, copy.store, reason,
                extra={"event": "archive_repaired", "archive_id": archive.id,
                       "store": copy.store})
            return replace(archive, blob_key=key, corrupt_at=None, corrupt_reason=None)
        return None

    def quarantine(self, archive: Archive, reason: str) -> bool:
        """Mark ``archive`` corrupt and say so; False when it was marked already."""
        marked = self.ctx.meta.mark_archive_corrupt(archive.id, self.ctx.clock.now_ms(), reason)
        if marked:
            log.error(
                "CORRUPT ARCHIVE %s in vault %s of account %s: %s. It will not be served; "
                "restore it from another copy.",
                archive.id, archive.vault.name, archive.vault.account_id, reason,
            )
        return marked


class CorruptBytesError(Exception):
    """Bytes read for a client failed their leaf hash: the archive is marked corrupt and
    the transfer must stop (whatever was sent so far is not a whole, good copy)."""


# Leaf hashes are fetched this many at a time (32 KiB), so a verifying read of any archive
# holds a bounded slice of them.
_LEAF_BATCH = 1024


class VerifyingReader:
    """A MiB-aligned range of an archive, each 1 MiB checked against its stored leaf hash
    before a byte of it is handed out (for clients that check no tree-hash header, such as
    a browser downloading from the console)."""

    def __init__(self, integrity: IntegrityService, archive: Archive, inner: BlobReader,
                 start: int) -> None:
        assert start % treehash.MIB == 0
        self._integrity = integrity
        self._archive = archive
        self._inner = inner
        self._offset = start  # of the next leaf to read, in the archive
        self._end = start + inner.length
        self._pending = b""
        self._leaves = b""
        self._leaves_from = start // treehash.MIB

    @property
    def length(self) -> int:
        return self._inner.length

    def file_segment(self) -> tuple[BinaryIO, int, int] | None:
        return None  # every byte passes through the check

    def read(self, size: int) -> bytes:
        if not self._pending:
            if self._offset >= self._end:
                return b""
            self._pending = self._next_leaf()
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def _next_leaf(self) -> bytes:
        leaf = self._offset // treehash.MIB
        want = min(treehash.MIB, self._end - self._offset)
        data = _read_exactly(self._inner.read, want)
        index = leaf - self._leaves_from
        if index * treehash.DIGEST_SIZE >= len(self._leaves):
            self._leaves_from = leaf
            index = 0
            count = min(_LEAF_BATCH, -(-(self._end - self._offset) // treehash.MIB))
            self._leaves = self._integrity.ctx.meta.get_archive_leaves(
                self._archive.id, leaf, count) or b""
        expected = self._leaves[index * treehash.DIGEST_SIZE:(index + 1) * treehash.DIGEST_SIZE]
        if len(data) != want or hashlib.sha256(data).digest() != expected:
            reason = (f"the 1 MiB block at byte {leaf * treehash.MIB} does not match its "
                      "tree-hash leaf (found while serving it)")
            # This transfer stops either way (what it sent is not a whole good copy); a
            # repair makes the next one good.
            self._integrity.repair_or_quarantine(self._archive, reason)
            raise CorruptBytesError(reason)
        self._offset += want
        return data

    def close(self) -> None:
        self._inner.close()


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    pieces: list[bytes] = []
    got = 0
    while got < size:
        data = read(size - got)
        if not data:
            break
        pieces.append(data)
        got += len(data)
    return b"".join(pieces)
