"""Text from outside (a client's path, a source server's IDs and messages) made safe to
write on one line of a log or a terminal."""

from __future__ import annotations

import re

# Characters that end or rewrite a line on a terminal or in a log pipeline: C0 and C1
# controls (escape sequences among them), DEL, and Unicode's line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
