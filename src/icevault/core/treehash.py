"""The SHA-256 tree hash Glacier uses for archives, parts and ranges.

A payload is cut into 1 MiB leaves; each leaf is hashed with SHA-256 and the digests are
combined pairwise, level by level, an unpaired last node being carried up unchanged. Because
every node of that tree is itself the tree hash of the bytes it covers, the hash of any
*tree-hash-aligned* range can be computed from the stored leaf digests alone, without reading
a byte of data. All hashing goes through :mod:`hashlib`, which releases the GIL on large
buffers, so there is no per-byte Python work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

MIB = 1024 * 1024
LEAF_SIZE = MIB
DIGEST_SIZE = 32
EMPTY_DIGEST = hashlib.sha256(b"").digest()


def combine(digests: Sequence[bytes]) -> bytes:
    """Combine node digests into their root with Glacier's pairing and carry rule.

    An empty sequence is the hash of an empty payload.
    """
    if not digests:
        return EMPTY_DIGEST
    level = list(digests)
    sha256 = hashlib.sha256
    while len(level) > 1:
        paired = [sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def combine_hex(hex_digests: Iterable[str]) -> str:
    """Combine lowercase-hex node hashes, e.g. the checksums of downloaded chunks."""
    return combine([bytes.fromhex(h) for h in hex_digests]).hex()


class TreeHasher:
    """Streaming tree hash: feed bytes in any slicing, read the leaves and the root.

    The current leaf is hashed incrementally, so data is never copied into a buffer.
    """

    __slots__ = ("_current", "_filled", "_leaves", "_size")

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._current = hashlib.sha256()
        self._filled = 0
        self._size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        total = len(view)
        self._size += total
        pos = 0
        while pos < total:
            room = LEAF_SIZE - self._filled
            take = min(room, total - pos)
            if self._filled == 0 and take == LEAF_SIZE:
                self._leaves.append(hashlib.sha256(view[pos : pos + take]).digest())
            else:
                self._current.update(view[pos : pos + take])
                self._filled += take
                if self._filled == LEAF_SIZE:
                    self._leaves.append(self._current.digest())
                    self._current = hashlib.sha256()
                    self._filled = 0
            pos += take

    @property
    def size(self) -> int:
        return self._size

    def leaves(self) -> list[bytes]:
        """Leaf digests of everything fed so far (an empty payload has one leaf)."""
        if self._filled or not self._leaves:
            return [*self._leaves, self._current.copy().digest()]
        return list(self._leaves)

    def digest(self) -> bytes:
        return combine(self.leaves())

    def hexdigest(self) -> str:
        return self.digest().hex()


def tree_hash(data: bytes | bytearray | memoryview) -> str:
    """Hex tree hash of an in-memory payload."""
    hasher = TreeHasher()
    hasher.update(data)
    return hasher.hexdigest()


def leaf_count(size: int) -> int:
    """Number of 1 MiB leaves of a payload of ``size`` bytes (an empty payload has one)."""
    return max(1, -(-size // LEAF_SIZE))


def pack_leaves(leaves: Sequence[bytes]) -> bytes:
    return b"".join(leaves)


def unpack_leaves(packed: bytes) -> list[bytes]:
    if len(packed) % DIGEST_SIZE:
        raise ValueError("packed leaf hashes are not a multiple of 32 bytes")
    return [packed[i : i + DIGEST_SIZE] for i in range(0, len(packed), DIGEST_SIZE)]


def is_megabyte_aligned(start: int, end: int, size: int) -> bool:
    """Whether the inclusive range ``[start, end]`` of a ``size``-byte payload is MiB aligned."""
    if not 0 <= start <= end < size:
        return False
    return start % MIB == 0 and ((end + 1) % MIB == 0 or end == size - 1)


def is_tree_hash_aligned(start: int, end: int, size: int) -> bool:
    """Whether the inclusive range ``[start, end]`` is exactly one node of the payload's tree."""
    if not is_megabyte_aligned(start, end, size):
        return False
    first = start // MIB
    stop = -(-(end + 1) // MIB)
    n = leaf_count(size)
    width = 1
    while first % width == 0:
        if stop == min(first + width, n):
            return True
        if first + width >= n:
            return False
        width *= 2
    return False


def range_tree_hash(leaves: Sequence[bytes], start: int, end: int, size: int) -> bytes | None:
    """Tree hash of the inclusive byte range from stored leaves, or None if not a tree node."""
    if not is_tree_hash_aligned(start, end, size):
        return None
    return combine(leaves[start // MIB : -(-(end + 1) // MIB)])
