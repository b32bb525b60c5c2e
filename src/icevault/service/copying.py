"""One archive's bytes from one blob store to another, verified against its tree hash on
the way out and read back once written: a copy counts only when both match."""

from __future__ import annotations

from collections.abc import Callable

from icevault.core.models import Archive
from icevault.core.treehash import TreeHasher
from icevault.diskio import BLOCK
from icevault.store.blobs.base import BlobStore


class SourceMismatchError(Exception):
    """The bytes read from the source do not hash to the archive's tree hash."""


class CopyMismatchError(Exception):
    """The written copy, read back, does not hash to the archive's tree hash."""


def tree_hash_of(store: BlobStore, key: str, size: int) -> str:
    """The tree hash of ``size`` bytes stored under ``key`` (fewer bytes: another hash)."""
    hasher = TreeHasher()
    reader = store.open_range(key, 0, size)
    try:
        while chunk := reader.read(BLOCK):
            hasher.update(chunk)
    finally:
        reader.close()
    return hasher.hexdigest()


def copy_verified(archive: Archive, source: BlobStore, source_key: str,
                  target: BlobStore, pace: Callable[[int], None] | None = None) -> str:
    """Stream ``archive``'s bytes from ``source`` into a new object of ``target``; its key.

    Memory stays at one block whatever the size. Raises SourceMismatchError (nothing is
    kept in ``target``) or CopyMismatchError (the bad copy is deleted)."""
    hasher = TreeHasher()
    reader = source.open_range(source_key, 0, archive.size)
    writer = target.create()
    try:
        while chunk := reader.read(BLOCK):
            if pace is not None:
                pace(len(chunk))
            hasher.update(chunk)
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    if hasher.hexdigest() != archive.tree_hash:
        writer.abort()
        raise SourceMismatchError(
            f"the source's bytes hash to {hasher.hexdigest()}, not {archive.tree_hash}")
    key = writer.commit()
    if not target.readable_at_once:
        # An archive class: the store checked every part's MD5 as it took it, and the
        # object's ETag against them (the writer raises otherwise); a read needs a restore.
        return key
    try:
        written = tree_hash_of(target, key, archive.size)
    except BaseException:
        target.delete(key)
        raise
    if written != archive.tree_hash:
        target.delete(key)
        raise CopyMismatchError(f"the copy read back hashes to {written}")
    return key
