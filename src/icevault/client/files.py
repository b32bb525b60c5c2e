"""Hashing regions of open files without reading them twice."""

from __future__ import annotations

import hashlib
import os

from icevault.core.treehash import MIB, TreeHasher

READ_SIZE = 4 * MIB


def hash_region(fd: int, start: int, size: int) -> tuple[str, str] | None:
    """Tree hash and plain SHA-256 (hex) of ``size`` bytes at ``start``, in one read;
    None when the file ends before the region does."""
    tree, linear = TreeHasher(), hashlib.sha256()
    position, end = start, start + size
    while position < end:
        data = os.pread(fd, min(READ_SIZE, end - position), position)
        if not data:
            return None
        tree.update(data)
        linear.update(data)
        position += len(data)
    return tree.hexdigest(), linear.hexdigest()


def tree_hash_region(fd: int, start: int, size: int) -> str | None:
    """Tree hash (hex) of ``size`` bytes at ``start``; None when the file is shorter."""
    tree = TreeHasher()
    position, end = start, start + size
    while position < end:
        data = os.pread(fd, min(READ_SIZE, end - position), position)
        if not data:
            return None
        tree.update(data)
        position += len(data)
    return tree.hexdigest()


def tree_hash_file(path: str | os.PathLike[str]) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        digest = tree_hash_region(fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert digest is not None
    return digest
