"""The admin API from the command line: ``POST /_icevault/admin/{Action}`` with a JSON body,
signed with SigV4 by botocore (the profile's key, service ``glacier``), as any Glacier call.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from icevault.core.errors import GlacierError

ADMIN_PATH = "/_icevault/admin/"


class RemoteError(GlacierError):
    """A refusal from the server, with its Glacier code (which sets the exit code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.remote_code = code


class AdminClient:
    def __init__(self, endpoint_url: str, profile: str | None, region: str) -> None:
        if not endpoint_url.startswith(("http://", "https://")):
            raise ValueError(f"--endpoint-url must be an http(s) URL, not {endpoint_url!r}")
        self.endpoint_url = endpoint_url.rstrip("/")
        self.profile = profile
        self.region = region

    def _credentials(self) -> Any:
        import boto3

        credentials = boto3.session.Session(profile_name=self.profile).get_credentials()
        if credentials is None:
            raise RemoteError("MissingAuthenticationTokenException",
                              "no AWS credentials found for the admin API (set AWS_PROFILE, "
                              "AWS_ACCESS_KEY_ID or --profile)")
        return credentials.get_frozen_credentials()

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any] | None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = json.dumps(params).encode()
        url = self.endpoint_url + ADMIN_PATH + action
        request = AWSRequest(method="POST", url=url, data=body,
                             headers={"Content-Type": "application/json"})
        SigV4Auth(self._credentials(), "glacier", self.region).add_auth(request)
        # The URL is the operator's own --endpoint-url, checked to be http(s) above.
        sent = urllib.request.Request(url, data=body, method="POST",  # noqa: S310
                                      headers=dict(request.headers.items()))
        try:
            with urllib.request.urlopen(sent, timeout=3600) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read().decode(errors="replace")
            try:
                error = json.loads(text)
            except ValueError:
                error = {"code": str(exc.code), "message": text[:500]}
            # The server's message, as the same command on a data directory prints it; a
            # refusal names its code (AccessDeniedException ...) in the message itself.
            code = str(error.get("code"))
            message = str(error.get("message"))
            if code == "AccessDeniedException" or code.startswith("Missing"):
                message = f"{code}: {message}"
            raise RemoteError(code, message) from None
        result: dict[str, Any] | None = json.loads(raw) if raw else None
        return result
