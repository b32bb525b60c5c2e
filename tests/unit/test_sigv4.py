"""SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from icevault.core.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from icevault.core.identity import AccessKey, KeyStatus
from icevault.server import sigv4

KEY = AccessKey("AKIVTESTKEY000000000", "s3cr3t/with+chars", "123456789012", None, KeyStatus.ACTIVE, 0)


def signed(
    method: str = "GET",
    url: str = "http://127.0.0.1:9099/-/vaults/my%2Fvault/jobs?limit=2&marker=a%20b",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    secret: str = KEY.secret,
    region: str = "us-east-1",
    presign: bool = False,
) -> sigv4.SignedRequest:
    request = AWSRequest(method=method, url=url, data=body, headers={
        "x-amz-glacier-version": "2012-06-01", **(headers or {})})
    creds = Credentials(KEY.id, secret)
    if presign:
        SigV4QueryAuth(creds, "glacier", region, expires=60).add_auth(request)
    else:
        SigV4Auth(creds, "glacier", region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    names: dict[str, list[str]] = {}
    for name, value in prepared.headers.items():
        names.setdefault(name.lower(), []).append(value)
    names.setdefault("host", [parts.netloc])
    return sigv4.SignedRequest(method, parts.path, parts.query, names)


def check(request: sigv4.SignedRequest, body: bytes = b"", key: AccessKey | None = KEY,
          now: datetime | None = None) -> AccessKey:
    creds = sigv4.parse_credentials(request)
    return sigv4.verify(request, creds, key, region="us-east-1", now=now or datetime.now(UTC),
                        body_sha256=hashlib.sha256(body).hexdigest())


def test_header_signature_verifies() -> None:
    assert check(signed()) == KEY


def test_body_and_content_sha256() -> None:
    body = b'{"Type":"inventory-retrieval"}'
    assert check(signed("POST", "http://h:1/-/vaults/v/jobs", body), body) == KEY
    with pytest.raises(InvalidSignatureError):
        check(signed("POST", "http://h:1/-/vaults/v/jobs", body), b'{"Type":"archive-retrieval"}')


def test_presigned_query_verifies() -> None:
    assert check(signed(presign=True)) == KEY


def test_wrong_secret() -> None:
    with pytest.raises(InvalidSignatureError, match="does not match"):
        check(signed(secret="wrong"))


def test_unknown_or_inactive_key() -> None:
    with pytest.raises(UnrecognizedClientError):
        check(signed(), key=None)
    inactive = AccessKey(KEY.id, KEY.secret, KEY.account_id, None, KeyStatus.INACTIVE, 0)
    with pytest.raises(UnrecognizedClientError):
        check(signed(), key=inactive)


def test_tampered_header_and_path() -> None:
    request = signed(headers={"x-amz-archive-description": "original"})
    tampered = sigv4.SignedRequest(
        request.method, request.raw_path, request.raw_query,
        {**request.headers, "x-amz-archive-description": ["changed"]},
    )
    with pytest.raises(InvalidSignatureError):
        check(tampered)
    moved = sigv4.SignedRequest(request.method, "/-/vaults/other", request.raw_query, request.headers)
    with pytest.raises(InvalidSignatureError):
        check(moved)


def test_skew_window() -> None:
    request = signed()
    with pytest.raises(InvalidSignatureError, match="Signature expired"):
        check(request, now=datetime.now(UTC) + timedelta(minutes=16))
    assert check(request, now=datetime.now(UTC) + timedelta(minutes=14)) == KEY


def test_wrong_region_scope() -> None:
    with pytest.raises(InvalidSignatureError, match="region"):
        check(signed(region="eu-west-1"))


def test_missing_and_incomplete() -> None:
    with pytest.raises(MissingAuthenticationTokenError):
        sigv4.parse_credentials(sigv4.SignedRequest("GET", "/-/vaults", "", {}))
    with pytest.raises(IncompleteSignatureError):
        sigv4.parse_credentials(
            sigv4.SignedRequest("GET", "/-/vaults", "", {"authorization": ["AWS4-HMAC-SHA256 nonsense"]})
        )


def test_canonical_uri_encodes_the_path_once_more() -> None:
    assert sigv4.canonical_uri("/-/vaults/my%2Fvault") == "/-/vaults/my%252Fvault"
