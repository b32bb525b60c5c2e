"""HTTP byte ranges, parsed at the edge into a typed value and checked against a size."""

from __future__ import annotations

import re
from dataclasses import dataclass

from icevault.core.errors import InvalidParameterValueError

# ASCII digits only, at most 19 (a Java long, as Glacier's sizes are).
_RANGE_RE = re.compile(
    r"^\s*bytes\s*=\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*$", re.IGNORECASE | re.ASCII
)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``[start, end]`` as written in ``Range: bytes=start-end``.

    ``end`` is None for an open range (``bytes=a-``); ``suffix`` is set for ``bytes=-n``.
    """

    start: int | None
    end: int | None

    @classmethod
    def parse(cls, header: str) -> ByteRange:
        """Parse a ``Range`` header value; a malformed one is InvalidParameterValue."""
        match = _RANGE_RE.fullmatch(header[:128])
        if not match or (not match.group(1) and not match.group(2)):
            raise InvalidParameterValueError(f"Invalid range header: {header[:64]}")
        first = int(match.group(1)) if match.group(1) else None
        last = int(match.group(2)) if match.group(2) else None
        if first is not None and last is not None and last < first:
            raise InvalidParameterValueError(f"Invalid range header: {header}")
        return cls(first, last)

    def resolve(self, size: int) -> tuple[int, int]:
        """Concrete inclusive ``(start, end)`` within a payload of ``size`` bytes.

        The end is clamped to the payload; a range that selects nothing is rejected.
        """
        if self.start is None:
            assert self.end is not None
            if self.end == 0 or size == 0:
                raise InvalidParameterValueError(self._unsatisfiable(size))
            return max(0, size - self.end), size - 1
        if self.start >= size:
            raise InvalidParameterValueError(self._unsatisfiable(size))
        end = size - 1 if self.end is None else min(self.end, size - 1)
        return self.start, end

    def _unsatisfiable(self, size: int) -> str:
        text = f"bytes={'' if self.start is None else self.start}-{'' if self.end is None else self.end}"
        return f"The requested range is not satisfiable: {text} (output size {size})"


_RETRIEVAL_RE = re.compile(r"^([0-9]{1,19})-([0-9]{1,19})$", re.ASCII)


def parse_retrieval_range(text: str) -> tuple[int, int]:
    """Parse a job's ``RetrievalByteRange`` ("start-end", inclusive)."""
    match = _RETRIEVAL_RE.fullmatch(text.strip()[:64])
    if not match:
        raise InvalidParameterValueError(f"Invalid RetrievalByteRange: {text[:64]}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise InvalidParameterValueError(f"Invalid RetrievalByteRange: {text}")
    return start, end
