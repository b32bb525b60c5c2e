"""Integrity at rest: stored bytes are checked against the leaf hashes recorded at upload.

A retrieval job reads what it will serve before it reports Succeeded, and a scrub re-reads
whole archives in the background. An archive whose bytes fail is marked corrupt: from then
on no job completes for it and GetJobOutput refuses to serve it. Nothing is repaired here:
one disk holds one copy, and the operator is told which archive to restore.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from icevault.core import treehash
from icevault.core.models import Archive, iso8601
from icevault.service.context import Context
from icevault.store.blobs.base import BlobNotFoundError

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
    ) -> str | None:
        """Read the leaves under ``[start, end]`` and compare each with its stored hash.

        Returns None when every byte matches, else why not. ``pace`` is told each read's
        size (a scrub's rate limit)."""
        if archive.blob_key is None:
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
            reader = self.ctx.blobs.open_range(archive.blob_key, offset, length)
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
