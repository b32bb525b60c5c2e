"""AWS Signature Version 4 verification, exactly as botocore signs Glacier requests.

The request is reduced to a :class:`SignedRequest` at the edge; :func:`verify` recomputes
the signature with the caller's secret and compares in constant time. Both the header form
(``Authorization: AWS4-HMAC-SHA256 ...``) and the presigned query form are accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from icevault.core.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from icevault.core.identity import AccessKey, KeyStatus
from icevault.core.parsing import is_decimal

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "glacier"
MAX_SKEW_S = 15 * 60
MAX_PRESIGNED_S = 7 * 24 * 3600  # AWS's limit on a presigned URL's lifetime

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*"
    r"Signature=([0-9a-fA-F]+)\s*$"
)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parts of an HTTP request that SigV4 covers."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, Sequence[str]]  # lowercase name -> values in arrival order

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    date: str  # yyyymmdd
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    amz_date: str
    presigned: bool
    expires_s: int | None


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    for segment in path.split("/"):
        if segment == ".":
            continue
        if segment == "..":
            if output and output[-1] != "":
                output.pop()
            continue
        output.append(segment)
    result = "/".join(output)
    if path.endswith(("/.", "/..")):
        result += "/"
    return result or "/"


def canonical_uri(raw_path: str) -> str:
    # Glacier is not S3: the path as sent is URI-encoded once more ('%2F' -> '%252F').
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str, *, drop_signature: bool) -> str:
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&") if raw_query else []:
        key, _, value = item.partition("=")
        if drop_signature and unquote(key) == "X-Amz-Signature":
            continue
        pairs.append(
            (quote(unquote(key), safe="-_.~"), quote(unquote(value.replace("+", " ")), safe="-_.~"))
        )
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_headers(request: SignedRequest, names: Sequence[str]) -> str:
    lines = []
    for name in names:
        values = request.headers.get(name)
        if values is None:
            raise InvalidSignatureError(f"Signed header {name!r} is missing from the request")
        lines.append(f"{name}:" + ",".join(" ".join(v.split()) for v in values))
    return "\n".join(lines) + "\n"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    key = hmac.new(key, region.encode(), hashlib.sha256).digest()
    key = hmac.new(key, service.encode(), hashlib.sha256).digest()
    return hmac.new(key, b"aws4_request", hashlib.sha256).digest()


def parse_credentials(request: SignedRequest) -> Credentials:
    authorization = request.header("authorization")
    query = {}
    if authorization is None and "X-Amz-Signature" in request.raw_query:
        for item in request.raw_query.split("&"):
            key, _, value = item.partition("=")
            query[unquote(key)] = unquote(value)
    if authorization is None and not query:
        raise MissingAuthenticationTokenError("Missing Authentication Token")
    if authorization is not None:
        match = _AUTH_RE.fullmatch(authorization.strip())
        if not match:
            raise IncompleteSignatureError(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
                f"with algorithm {ALGORITHM}"
            )
        credential, signed, signature = match.groups()
        amz_date = request.header("x-amz-date")
        expires = None
        presigned = False
    else:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise IncompleteSignatureError(f"X-Amz-Algorithm must be {ALGORITHM}")
        try:
            credential = query["X-Amz-Credential"]
            signed = query["X-Amz-SignedHeaders"]
            signature = query["X-Amz-Signature"]
            amz_date = query["X-Amz-Date"]
            expires_text = query.get("X-Amz-Expires", "3600")
        except KeyError:
            raise IncompleteSignatureError("Incomplete presigned query parameters") from None
        if not is_decimal(expires_text) or not 1 <= int(expires_text) <= MAX_PRESIGNED_S:
            raise IncompleteSignatureError(
                "X-Amz-Expires must be a number of seconds from 1 to "
                f"{MAX_PRESIGNED_S} (7 days)"
            )
        expires = int(expires_text)
        presigned = True
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise IncompleteSignatureError(f"Invalid credential scope: {credential}")
    if amz_date is None:
        raise IncompleteSignatureError("Missing X-Amz-Date")
    return Credentials(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=signed.lower().split(";"),
        signature=signature.lower(),
        amz_date=amz_date,
        presigned=presigned,
        expires_s=expires,
    )


def check_key(key: AccessKey | None) -> AccessKey:
    """The key a request names, if it exists and is active."""
    if key is None or key.status is not KeyStatus.ACTIVE:
        raise UnrecognizedClientError("The security token included in the request is invalid.")
    return key


def verify(
    request: SignedRequest,
    creds: Credentials,
    key: AccessKey | None,
    *,
    region: str,
    now: datetime,
    body_sha256: str | None,
) -> AccessKey:
    """Check a request's signature against the key it names and return that key.

    ``body_sha256`` is the hex SHA-256 of the body, needed only when the client did not send
    ``x-amz-content-sha256`` (whose agreement with the body the upload path checks).
    """
    key = check_key(key)
    try:
        signed_at = datetime.strptime(creds.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignatureError(f"Invalid X-Amz-Date: {creds.amz_date}") from None
    skew = (now - signed_at).total_seconds()
    if creds.presigned:
        assert creds.expires_s is not None
        if skew > creds.expires_s or skew < -MAX_SKEW_S:
            raise InvalidSignatureError(
                f"Signature expired: {creds.amz_date} is outside the presigned window"
            )
    elif abs(skew) > MAX_SKEW_S:
        raise InvalidSignatureError(
            f"Signature expired: {creds.amz_date} is more than 15 minutes from the server's "
            f"time {now.strftime('%Y%m%dT%H%M%SZ')}"
        )
    if creds.date != creds.amz_date[:8]:
        raise InvalidSignatureError(f"Credential should be scoped to a valid date, not {creds.date}")
    if creds.region != region:
        raise InvalidSignatureError(
            f"Credential should be scoped to a valid region, not '{creds.region}'. "
            f"This server's region is '{region}'."
        )
    if creds.service != SERVICE:
        raise InvalidSignatureError(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if "host" not in creds.signed_headers:
        raise InvalidSignatureError("The host header must be signed")
    payload = request.header("x-amz-content-sha256") or body_sha256
    if payload is None:
        raise IncompleteSignatureError("x-amz-content-sha256 is required for this request")
    canonical = "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.raw_path),
            canonical_query(request.raw_query, drop_signature=creds.presigned),
            canonical_headers(request, creds.signed_headers),
            ";".join(creds.signed_headers),
            payload,
        ]
    )
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            creds.amz_date,
            f"{creds.date}/{creds.region}/{creds.service}/aws4_request",
            # Header bytes that are not UTF-8 reach us as surrogates; they were signed as bytes.
            hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest(),
        ]
    )
    expected = hmac.new(
        signing_key(key.secret, creds.date, creds.region, creds.service),
        string_to_sign.encode(),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, creds.signature):
        raise InvalidSignatureError(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return key
