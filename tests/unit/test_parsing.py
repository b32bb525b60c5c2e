"""Strict parsing of client numbers, dates and JSON: every bad value is a Glacier error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icevault.core.errors import GlacierError, InvalidParameterValueError, SerializationError
from icevault.core.models import MAX_MS, iso8601, parse_iso8601
from icevault.core.parsing import MAX_LONG, load_json, parse_decimal
from icevault.core.ranges import ByteRange, parse_retrieval_range


@pytest.mark.parametrize("text", ["²", "١٢", "1" * 20, "9" * 5000, "-1", "0x1", "1e3", "", " "])
def test_parse_decimal_refuses(text: str) -> None:
    with pytest.raises(InvalidParameterValueError):
        parse_decimal(text, "limit")


def test_parse_decimal_bounds() -> None:
    assert parse_decimal(" 42 ", "limit") == 42
    assert parse_decimal(str(MAX_LONG), "size") == MAX_LONG
    with pytest.raises(InvalidParameterValueError):
        parse_decimal(str(MAX_LONG + 1), "size")


@given(st.text(max_size=40))
def test_parse_decimal_only_raises_glacier_errors(text: str) -> None:
    try:
        parse_decimal(text, "x")
    except GlacierError:
        pass


@given(st.text(max_size=60))
def test_ranges_only_raise_glacier_errors(text: str) -> None:
    for parse in (ByteRange.parse, parse_retrieval_range):
        try:
            parse(text)
        except GlacierError:
            pass


def test_range_digit_limits() -> None:
    for header in ("bytes=0-" + "9" * 5000, "bytes=²-5", "bytes=" + "1" * 20 + "-"):
        with pytest.raises(InvalidParameterValueError):
            ByteRange.parse(header)


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deep_json_is_a_serialization_error(depth: int) -> None:
    with pytest.raises(SerializationError):
        load_json("[" * depth + "]" * depth)


def test_json_within_depth_parses() -> None:
    assert load_json(json.dumps({"a": [[{"b": 1}]]})) == {"a": [[{"b": 1}]]}
    with pytest.raises(SerializationError):
        load_json(b"\xff\xfe{")


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z",
])
def test_dates_outside_the_stored_range_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameterValueError):
        parse_iso8601(text)


@given(st.integers())
def test_iso8601_is_total(ms: int) -> None:
    text = iso8601(ms)
    assert text.endswith("Z")
    assert parse_iso8601(text) == min(max(ms, 0), MAX_MS)
