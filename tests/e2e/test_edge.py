"""The request edge, with raw HTTP: errors are Glacier's, never a traceback."""

from __future__ import annotations

from typing import Any

from tests.support import RawResponse, ServerProcess, raw_request


def assert_glacier_error(response: RawResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, response.body
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-amzn-errortype"] == code
    assert response.headers["x-amzn-requestid"]
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["type"] == ("Server" if status >= 500 else "Client")
    assert body["message"]
    assert "Traceback" not in body["message"]
    return body


def test_unknown_route(server: ServerProcess) -> None:
    assert_glacier_error(raw_request(server, "GET", "/-/no-such-thing"), 404, "ResourceNotFoundException")


def test_wrong_method(server: ServerProcess) -> None:
    response = raw_request(server, "PATCH", "/-/vaults/some-vault")
    assert_glacier_error(response, 400, "InvalidParameterValueException")
    assert response.headers["allow"] == "DELETE, GET, PUT"


def test_malformed_json(server: ServerProcess, vault: str) -> None:
    response = raw_request(
        server, "POST", f"/-/vaults/{vault}/jobs", body=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_glacier_error(response, 400, "SerializationException")


def test_wrong_glacier_version(server: ServerProcess) -> None:
    response = raw_request(server, "GET", "/-/vaults", headers={"x-amz-glacier-version": "2011-01-01"})
    assert_glacier_error(response, 400, "InvalidParameterValueException")


def test_missing_version_header_is_accepted(open_server: ServerProcess) -> None:
    import http.client

    open_server.client().create_vault(vaultName="no-version-header")
    conn = http.client.HTTPConnection("127.0.0.1", open_server.port)
    conn.request("GET", "/-/vaults/no-version-header")
    response = conn.getresponse()
    assert response.status == 200
    conn.close()


def test_percent_encoded_slash_stays_in_the_name(server: ServerProcess) -> None:
    response = raw_request(server, "PUT", "/-/vaults/a%2Fb")
    body = assert_glacier_error(response, 400, "InvalidParameterValueException")
    assert "a/b" in body["message"]


def test_invalid_limit(server: ServerProcess) -> None:
    assert_glacier_error(raw_request(server, "GET", "/-/vaults?limit=abc"), 400, "InvalidParameterValueException")
    assert_glacier_error(raw_request(server, "GET", "/-/vaults?limit=0"), 400, "InvalidParameterValueException")


def test_unauthenticated_requests_are_refused(sigv4_server: ServerProcess) -> None:
    response = raw_request(sigv4_server, "GET", "/-/vaults", sign=False)
    assert_glacier_error(response, 400, "MissingAuthenticationTokenException")
