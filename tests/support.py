"""Test helpers: a real icevault server process on a free loopback port, and clients for it."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import psutil

# Shared with the benchmarks; re-exported for the tests (the redundant aliases say so).
from bench.peers import free_port as free_port
from bench.peers import peak_rss_until_exit as peak_rss_until_exit
from icevault.testing.server import ForkedProcess, ServerStartError, launch

REGION = "us-east-1"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with openssl: ``--tls-cert``, ``--tls-key``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@dataclass
class ServerProcess:
    """``icevault serve`` exactly as users start it, on a free port."""

    data_dir: Path
    auth: str = "off"
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | ForkedProcess | None = None
    log_path: Path | None = None
    preexec: Callable[[], None] | None = None  # runs in the child before exec (limits, umask)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start on a port the system picks (the testing kit's launcher, as users' tests)."""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        try:
            self.proc, url = launch(
                ["--data-dir", str(self.data_dir), "--auth", self.auth, *self.extra_args],
                self.log_path, timeout=timeout, preexec=self.preexec,
            )
        except ServerStartError as exc:
            raise RuntimeError(str(exc)) from None
        self.port = int(url.rsplit(":", 1)[1])
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self) -> ServerProcess:
        self.stop()
        return self.start()

    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    # -- credentials ----------------------------------------------------------------------
    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials"

    def root_credentials(self) -> tuple[str, str]:
        if self.auth == "off":
            return "AKIDANYTHING", "anything"
        parser = configparser.ConfigParser()
        parser.read(self.credentials_file)
        section = parser["icevault"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]

    def _session_args(self) -> dict[str, Any]:
        key, secret = self.root_credentials()
        return {"endpoint_url": self.url, "region_name": REGION,
                "aws_access_key_id": key, "aws_secret_access_key": secret}

    def metrics_request(self) -> urllib.request.Request:
        """GET /metrics with the operator's token (the server's default, --metrics token)."""
        token = (self.data_dir / "metrics-token").read_text().strip()
        return urllib.request.Request(f"{self.url}/metrics",
                                      headers={"Authorization": f"Bearer {token}"})

    def client(self, **config: Any) -> Any:
        return boto3.client(
            "glacier", **self._session_args(),
            config=botocore.config.Config(retries={"total_max_attempts": 1}, **config),
        )

    def tls_client(self, cert: Path) -> Any:
        """A client over HTTPS (a server started with ``--tls-cert``) that trusts ``cert``."""
        key, secret = self.root_credentials()
        return boto3.client(
            "glacier", endpoint_url=f"https://127.0.0.1:{self.port}", region_name=REGION,
            aws_access_key_id=key, aws_secret_access_key=secret, verify=str(cert),
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )

    def resource(self) -> Any:
        return boto3.resource("glacier", **self._session_args())

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        key, secret = self.root_credentials()
        env.update(
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        return env

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the AWS CLI against this server."""
        aws = Path(sys.executable).with_name("aws")
        return subprocess.run(
            [str(aws), "--endpoint-url", self.url, "--output", "json", *args],
            env=self.cli_env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )


def wait_for_job(client: Any, vault: str, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.describe_job(vaultName=vault, jobId=job_id)
        if job["Completed"]:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not complete: {job}")
        time.sleep(0.05)


def seconds_until_refused(change: Callable[[], object], calls: list[Callable[[], object]],
                          code: str, limit: float = 10.0) -> float:
    """Make ``change``, then repeat every one of ``calls`` until each is refused with the
    Glacier error ``code``; how long after the change the last one was."""
    from botocore.exceptions import ClientError

    change()
    changed = time.monotonic()
    pending = list(calls)
    while pending:
        for call in list(pending):
            try:
                call()
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == code
                pending.remove(call)
        assert time.monotonic() - changed < limit
        if pending:
            time.sleep(0.02)
    return time.monotonic() - changed


class ManualClock:
    """A clock the test moves (wall and monotonic time together), for services built
    without a server: expiry and cache lifetimes without sleeping."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.now

    def monotonic_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class SleepingClock:
    """A monotonic clock in seconds the test moves, whose sleeps move it too; each sleep is
    recorded, to the microsecond (for pacing and back-off without sleeping)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking test bytes of any size, made fast."""
    block = bytes((i * 31 + seed * 17 + (i >> 8)) % 251 for i in range(65536))
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def raw_request(
    server: ServerProcess,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    sign: bool = True,
) -> RawResponse:
    """Send exactly these bytes (signed with the root key unless ``sign`` is False)."""
    import http.client

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    all_headers = {"x-amz-glacier-version": "2012-06-01", **(headers or {})}
    if sign and server.auth == "sigv4":
        key, secret = server.root_credentials()
        request = AWSRequest(method=method, url=server.url + path, data=body, headers=all_headers)
        SigV4Auth(Credentials(key, secret), "glacier", REGION).add_auth(request)
        all_headers = dict(request.headers.items())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return RawResponse(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()
