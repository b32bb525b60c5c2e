from __future__ import annotations

import hashlib

import pytest
from botocore.utils import calculate_tree_hash
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from icevault.core import treehash
from icevault.core.treehash import MIB, TreeHasher, combine, is_tree_hash_aligned, tree_hash

VECTORS = [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"hello", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
    (b"a" * 1024, "2edc986847e209b4016e141a6dc8716d3207350f416969382d431539bf292e4a"),
    (b"a" * MIB, "9bc1b2a288b26af7257a36277ae3816a7d4f16e89c1e7e77d0a5c48bad62b360"),
    (b"a" * (MIB + 1), "8dd49bbc6297567fac3852c2deddcdbc57358bc403c10d4f6dc64b143ad9b27b"),
    (b"a" * 2 * MIB, "560c2c9333c719cb00cfdffee3ba293db17f58743cdd1f7e4055373ae6300afa"),
    (b"a" * 3 * MIB, "70239f4f2ead7561f69d48b956b547edef52a1280a93c262c0b582190be7db17"),
    (b"a" * 4 * MIB, "9491cb2ed1d4e7cd53215f4017c23ec4ad21d7050a1e6bb636c4f67e8cddb844"),
    (b"a" * (4 * MIB + 20), "12f3cbd6101b981cde074039f6f728071da8879d6f632de8afc7cdf00661b08f"),
    (b"a" * 5 * MIB, "1ca676a2caf9791fcf24580c2c6f9b051ebbf689720da6ff8c41f2d01cdde5ea"),
    (b"a" * int(6.5 * MIB), "0dae0a3f606e3eae41361ffc1dc3e1c5311ae06f9c14299ca46052f89947f412"),
    (
        bytes(i % 256 for i in range(3 * MIB + 12345)),
        "8fa50320c61bd787d335d9dd21ac12bfa61ecd22e7d4e043d955f4af1bd1f8ae",
    ),
]


@pytest.mark.parametrize(("data", "expected"), VECTORS, ids=lambda v: str(len(v)) if isinstance(v, bytes) else "")
def test_spec_vectors(data: bytes, expected: str) -> None:
    assert tree_hash(data) == expected


def test_streaming_in_odd_slices_matches_whole() -> None:
    data = bytes((i * 7) % 251 for i in range(int(5.5 * MIB)))
    hasher = TreeHasher()
    pos = 0
    for step in [1, 1000, MIB - 1001, 3, MIB, 2 * MIB + 17]:
        hasher.update(data[pos : pos + step])
        pos += step
    hasher.update(data[pos:])
    assert hasher.hexdigest() == "dec019e4fa1e19c77797183e6b6ed8d733d5df7486060b6121f3bbdae9a6d6d4"
    assert hasher.size == len(data)
    assert len(hasher.leaves()) == 6


@pytest.mark.parametrize("part_mib", [1, 2, 4, 8])
def test_combining_part_hashes_gives_the_whole(part_mib: int) -> None:
    data = bytes((i * 7) % 251 for i in range(int(5.5 * MIB)))
    size = part_mib * MIB
    parts = [bytes.fromhex(tree_hash(data[i : i + size])) for i in range(0, len(data), size)]
    assert combine(parts).hex() == "dec019e4fa1e19c77797183e6b6ed8d733d5df7486060b6121f3bbdae9a6d6d4"


def test_aligned_ranges_of_a_six_and_a_half_mib_archive() -> None:
    size = int(6.5 * MIB)
    aligned = {(0, 1), (0, 2), (0, 4), (0, 7), (1, 2), (2, 3), (2, 4), (3, 4), (4, 5), (4, 6),
               (4, 7), (5, 6), (6, 7)}
    for p in range(7):
        for q in range(p + 1, 8):
            start, end = p * MIB, min(q * MIB, size) - 1
            assert is_tree_hash_aligned(start, end, size) == ((p, q) in aligned), (p, q)
    assert is_tree_hash_aligned(2 * MIB, 4 * MIB - 1, size)
    assert not is_tree_hash_aligned(1 * MIB, 3 * MIB - 1, size)
    assert not is_tree_hash_aligned(1, MIB - 1, size)


def test_aligned_ranges_of_a_three_point_one_mib_archive() -> None:
    size = int(3.1 * MIB)
    assert is_tree_hash_aligned(MIB, 2 * MIB - 1, size)
    assert is_tree_hash_aligned(2 * MIB, size - 1, size)
    assert not is_tree_hash_aligned(MIB, size - 1, size)


def test_megabyte_alignment() -> None:
    size = 5 * MIB + 10
    assert treehash.is_megabyte_aligned(MIB, 3 * MIB - 1, size)
    assert treehash.is_megabyte_aligned(MIB, size - 1, size)
    assert not treehash.is_megabyte_aligned(MIB, 3 * MIB, size)
    assert not treehash.is_megabyte_aligned(1, MIB - 1, size)
    assert not treehash.is_megabyte_aligned(0, size, size)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(min_value=0, max_value=9 * MIB), seed=st.integers(0, 255))
def test_matches_botocore(size: int, seed: int) -> None:
    data = bytes([seed]) * size
    import io

    assert tree_hash(data) == calculate_tree_hash(io.BytesIO(data))


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=9 * MIB),
    p=st.integers(0, 9),
    q=st.integers(1, 10),
)
def test_range_hash_from_leaves_equals_hash_of_the_slice(size: int, p: int, q: int) -> None:
    data = bytes((i * 13) % 256 for i in range(4096)) * (size // 4096) + b"z" * (size % 4096)
    hasher = TreeHasher()
    hasher.update(data)
    leaves = hasher.leaves()
    n = treehash.leaf_count(size)
    assume(p < n)
    q = min(max(q, p + 1), n)
    start, end = p * MIB, min(q * MIB, size) - 1
    digest = treehash.range_tree_hash(leaves, start, end, size)
    if is_tree_hash_aligned(start, end, size):
        assert digest is not None
        assert digest.hex() == tree_hash(data[start : end + 1])
    else:
        assert digest is None


def test_single_leaf_is_plain_sha256() -> None:
    data = b"x" * 12345
    assert tree_hash(data) == hashlib.sha256(data).hexdigest()


def test_leaves_pack_round_trip() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(5)]
    assert treehash.unpack_leaves(treehash.pack_leaves(leaves)) == leaves
    with pytest.raises(ValueError):
        treehash.unpack_leaves(b"short")
