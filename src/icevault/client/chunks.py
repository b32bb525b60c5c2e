"""Plans of tree-hash-aligned chunks.

Every chunk is one node of the archive's tree hash, so Glacier must send its checksum. For a
whole archive or an aligned retrieval, the chunks are equal powers of two (the last one may be
shorter) and their checksums combine into the whole output's tree hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from icevault.core.treehash import MIB


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int  # offset in the job's output
    end: int  # inclusive

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def range_header(self) -> str:
        return f"bytes={self.start}-{self.end}"


def check_chunk_size(chunk_size: int, what: str = "chunk size") -> int:
    mib, rest = divmod(chunk_size, MIB)
    if rest or mib < 1 or mib & (mib - 1):
        raise ValueError(
            f"{what} {chunk_size} is not tree-hash aligned: a {what} is 1 MiB times a power "
            "of two (1MiB, 2MiB, 4MiB, ... 4GiB)"
        )
    return chunk_size


def plan_chunks(
    output_size: int, chunk_size: int, *, archive_start: int = 0, archive_size: int | None = None
) -> list[Chunk]:
    """Cut ``output_size`` bytes (the output of a retrieval starting at byte
    ``archive_start`` of an archive of ``archive_size`` bytes) into chunks that are each a
    node of the archive's tree and at most ``chunk_size`` long."""
    check_chunk_size(chunk_size)
    if output_size <= 0:
        return []
    total = archive_size if archive_size is not None else archive_start + output_size
    if archive_start % MIB:
        raise ValueError("a retrieval starts at a megabyte boundary")
    leaves = -(-total // MIB)
    first = archive_start // MIB
    stop = -(-(archive_start + output_size) // MIB)
    width = chunk_size // MIB
    chunks: list[Chunk] = []
    position = first
    while position < stop:
        w = width
        # The largest power of two that starts here and ends inside the range (or at the
        # archive's end, where a node may be short).
        while w > 1 and (position % w or (position + w > stop and stop != leaves)):
            w //= 2
        end_leaf = min(position + w, stop)
        start_byte = position * MIB - archive_start
        end_byte = min(end_leaf * MIB, archive_start + output_size) - archive_start - 1
        chunks.append(Chunk(len(chunks), start_byte, end_byte))
        position = end_leaf
    return chunks
