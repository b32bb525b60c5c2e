"""Who is calling: SigV4 checked before a body is read, and the body bound to the
signature (the one authentication of every request: Glacier operations and the admin API)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from icevault.core.errors import InvalidSignatureError, MissingParameterValueError
from icevault.core.identity import Principal
from icevault.server import sigv4
from icevault.server.bodies import JSON_CAP, read_body
from icevault.server.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    body: bytes  # a JSON operation's body (streamed bodies are read by their handler)
    # An upload's body must match its x-amz-sha256-tree-hash, itself SHA-256 based: when the
    # signature covers that header (or nothing is signed), checking the tree hash binds the
    # body, and the linear SHA-256 of x-amz-content-sha256 need not be computed again.
    tree_hash_binds_body: bool


async def authenticate(runtime: Runtime, request: web.Request, *, streamed: bool) -> Caller:
    """Who is calling, and the body of a JSON operation (streamed bodies are read later).

    Everything the signature covers is checked before a body is read; a body is then
    bound to the signature by its SHA-256 (the signed ``x-amz-content-sha256``)."""
    glacier = runtime.glacier
    limits = runtime.limits
    if runtime.settings.auth == "off":
        body = b"" if streamed else await read_body(request, limits, JSON_CAP)
        return Caller(Principal(glacier.identity.default_account(), None, None), body, True)
    signed = sigv4.SignedRequest(
        method=request.method,
        raw_path=request.raw_path.split("?", 1)[0],
        raw_query=request.rel_url.raw_query_string,
        headers=_header_lists(request),
    )
    creds = sigv4.parse_credentials(signed)
    loop = asyncio.get_running_loop()
    key = await loop.run_in_executor(
        runtime.executor, glacier.identity.lookup_key, creds.access_key_id
    )
    key = sigv4.check_key(key)
    declared = signed.header("x-amz-content-sha256")
    now = datetime.now(UTC)
    region = glacier.ctx.region
    body = b""
    if streamed:
        if declared is None:
            raise MissingParameterValueError(
                "Required parameter missing: x-amz-content-sha256 (needed to sign an upload)"
            )
        # The upload path hashes the body as it streams and refuses it on a mismatch.
        sigv4.verify(signed, creds, key, region=region, now=now, body_sha256=None)
    elif declared is not None:
        sigv4.verify(signed, creds, key, region=region, now=now, body_sha256=None)
        body = await read_body(request, limits, JSON_CAP)
        computed = hashlib.sha256(body).hexdigest()
        if declared.strip().lower() != computed:
            # The signature covers the declared hash, so the body itself must match it.
            raise InvalidSignatureError(
                "The provided x-amz-content-sha256 header does not match what was computed: "
                f"declared {declared[:64]}, body {computed}"
            )
    else:
        # Without a declared hash the signature covers the body itself; it is capped and timed.
        body = await read_body(request, limits, JSON_CAP)
        sigv4.verify(signed, creds, key, region=region, now=now,
                     body_sha256=hashlib.sha256(body).hexdigest())
    return Caller(Principal(key.account_id, key.user, key.id), body,
                  "x-amz-sha256-tree-hash" in creds.signed_headers)


def _header_lists(request: web.Request) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers
