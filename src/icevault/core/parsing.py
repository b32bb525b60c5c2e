"""Strict parsing of what clients send as text: decimal numbers and JSON documents.

Python's own parsers are too lenient for hostile input: ``str.isdigit`` accepts characters
such as ``²`` that ``int`` then refuses, ``int`` refuses more than 4,300 digits with an
exception of its own, and ``json.loads`` raises ``RecursionError`` on deep nesting. Every
number and JSON document a request carries goes through these functions instead, so that
each of those ends as the Glacier error the client should see.
"""

from __future__ import annotations

import json
import re
from typing import Any

from icevault.core.errors import InvalidParameterValueError, SerializationError

# Glacier's numbers are Java longs.
MAX_LONG = 2**63 - 1
_DECIMAL_RE = re.compile(r"[0-9]{1,19}", re.ASCII)

# Nothing in the API nests deeper than a policy's Condition block (about six levels).
MAX_JSON_DEPTH = 32


def parse_decimal(text: str, what: str, *, maximum: int = MAX_LONG) -> int:
    """A non-negative ASCII decimal of at most ``maximum``; anything else is
    InvalidParameterValue naming ``what``."""
    stripped = text.strip()
    if not _DECIMAL_RE.fullmatch(stripped) or int(stripped) > maximum:
        raise InvalidParameterValueError(f"Invalid {what}: {_shorten(text)}")
    return int(stripped)


def is_decimal(text: str) -> bool:
    return _DECIMAL_RE.fullmatch(text) is not None


def load_json(raw: bytes | str, what: str = "request body") -> Any:
    """Parse a client's JSON, refusing malformed text and documents nested too deeply."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise SerializationError(f"The {what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SerializationError(f"The {what} is not valid JSON: {_shorten(str(exc))}") from None
    if _depth(document) > MAX_JSON_DEPTH:
        raise SerializationError(
            f"The {what} is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    return document


def _depth(document: Any) -> int:
    # Iterative, so that checking depth cannot itself run out of stack.
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
