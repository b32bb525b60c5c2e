"""One archive's bytes from one blob store to another: a copy counts only once its bytes,
read back (or checked by the store as it took them), match the archive's tree hash."""

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


def tree_hash_of(store: BlobStore, key: str, size: int,
                 pace: Callable[[int], None] | None = None) -> str:
    """The tree hash of ``size`` bytes stored under ``key`` (fewer bytes: another hash);
    ``pace`` is told each block before it is read."""
    hasher = TreeHasher()
    reader = store.open_range(key, 0, size)
    left = size
    try:
        while left > 0:
            if pace is not None:
                pace(min(BLOCK, left))
            if not (chunk := reader.read(BLOCK)):
                break
            hasher.update(chunk)
            left -= len(chunk)
    finally:
        reader.close()
    return hasher.hexdigest()


def copy_verified(archive: Archive, source: BlobStore, source_key: str,
                  target: BlobStore, pace: Callable[[int], None] | None = None) -> str:
    """Stream ``archive``'s bytes from ``source`` into a new object of ``target``; its key.

    Memory stays at one block whatever the size. Raises SourceMismatchError (nothing is
    kept in ``target``) or CopyMismatchError (the bad copy is deleted)."""
    # A copy that can be read back is checked once, as read back: its bytes matching the
    # tree hash prove the source's did too, so hashing them on the way out would be a second
    # pass over every byte for nothing. The source is hashed only to tell whose fault a
    # mismatch was. A copy in an archive class cannot be read back, so what is sent is
    # hashed as it goes, and the store checks what it took against it.
    hasher = None if target.readable_at_once else TreeHasher()
    reader = source.open_range(source_key, 0, archive.size)
    writer = target.create()
    try:
        while chunk := reader.read(BLOCK):
            if pace is not None:
                pace(len(chunk))
            if hasher is not None:
                hasher.update(chunk)
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    if hasher is not None:
        if hasher.hexdigest() != archive.tree_hash:
            writer.abort()
            raise _source_mismatch(hasher.hexdigest(), archive)
        # The store checked every part's MD5 as it took it, and the object's ETag against
        # them (the writer raises otherwise); a read needs a restore.
        return writer.commit()
    key = writer.commit()
    try:
        written = tree_hash_of(target, key, archive.size, pace)
        if written != archive.tree_hash:
            read = tree_hash_of(source, source_key, archive.size)
            if read != archive.tree_hash:
                raise _source_mismatch(read, archive)
            raise CopyMismatchError(f"the copy read back hashes to {written}")
    except BaseException:
        target.delete(key)
        raise
    return key


def _source_mismatch(found: str, archive: Archive) -> SourceMismatchError:
    return SourceMismatchError(f"the source's bytes hash to {found}, not {archive.tree_hash}")
