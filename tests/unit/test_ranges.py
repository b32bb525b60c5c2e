from __future__ import annotations

import pytest

from icevault.core.errors import InvalidParameterValueError
from icevault.core.ranges import ByteRange, parse_retrieval_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-1048575", 5_000_000, (0, 1048575)),
        ("bytes=100-", 1000, (100, 999)),
        ("bytes=100-5000", 1000, (100, 999)),  # clamped to the end
        ("bytes=-10", 1000, (990, 999)),
        ("bytes = 5 - 9", 1000, (5, 9)),
    ],
)
def test_resolve(header: str, size: int, expected: tuple[int, int]) -> None:
    assert ByteRange.parse(header).resolve(size) == expected


@pytest.mark.parametrize("header", ["bytes=", "bytes=a-b", "items=0-1", "bytes=5-1", "bytes=0-1,3-4", ""])
def test_malformed(header: str) -> None:
    with pytest.raises(InvalidParameterValueError):
        ByteRange.parse(header)


def test_unsatisfiable() -> None:
    with pytest.raises(InvalidParameterValueError, match="not satisfiable"):
        ByteRange.parse("bytes=1000-").resolve(1000)


def test_retrieval_range() -> None:
    assert parse_retrieval_range("0-1048575") == (0, 1048575)
    for bad in ["", "1-", "x-y", "5-1", "-5"]:
        with pytest.raises(InvalidParameterValueError):
            parse_retrieval_range(bad)
