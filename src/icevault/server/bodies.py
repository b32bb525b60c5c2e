"""The one reader of small request bodies: Glacier's JSON operations, the admin API, the
console's forms and the test controls all read theirs here.

Each route names its cap. A body declared larger than the cap is refused before a byte of
it is read, one that turns out larger is refused at the first byte past the cap, and either
way the connection is closed after the answer (see :mod:`icevault.server.errors`), so a
peer can make the server hold at most one cap's worth per connection. Bodies move under the
same deadlines as uploads (:mod:`icevault.server.transfer`): no stall longer than
``--io-timeout``, and the whole body within ``--io-timeout`` plus the cap at ``--min-rate``.
Uploads, which stream to storage, are read by :meth:`icevault.server.call.Call.stream_body`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from icevault.core.errors import InvalidParameterValueError
from icevault.server.transfer import StepClock, TransferLimits

# Glacier's JSON operations: the largest body, a 20 KiB vault policy escaped inside a JSON
# string, fits with room to spare. The admin API and the test controls take JSON too.
JSON_CAP = 64 * 1024
# A console sign-in form (two key fields and a token) is under 1 KiB.
SIGN_IN_CAP = 2 * 1024
# Any other console form: a vault name, an archive id, a tier and a token.
FORM_CAP = 8 * 1024


class BodyTooLargeError(InvalidParameterValueError):
    """A body over its route's cap (answered 400, and the connection closed)."""


async def read_body(request: web.Request, limits: TransferLimits, cap: int) -> bytes:
    """The whole body of ``request``: at most ``cap`` bytes, under the transfer deadlines.

    A peer that hangs up mid-body raises :class:`ConnectionResetError`, which the listener
    logs as one line (no answer can reach it)."""
    declared = request.content_length
    if declared is not None and declared > cap:
        raise BodyTooLargeError(
            f"The request body is {declared} bytes; this operation takes at most {cap} bytes")
    if declared == 0 or not request.body_exists:
        return b""
    clock = StepClock(limits, "request body", step=cap)
    pieces: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(clock.remaining_s()):
                data = await request.content.readany()
        except TimeoutError:
            raise clock.too_slow() from None
        if not data:
            return b"".join(pieces)
        size += len(data)
        if size > cap:
            raise BodyTooLargeError(f"The request body is larger than {cap} bytes")
        clock.advance(len(data))
        pieces.append(data)
