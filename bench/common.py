"""What the benchmark's scenarios share: the result row, timing, raw HTTP reads and the
peers' jobs."""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.peers import REGION, Peer
from icevault.core.treehash import MIB

HERE = Path(__file__).resolve().parent
MOTO_AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/glacier/aws4_request, "
    "SignedHeaders=host, Signature=0",
    "x-amz-glacier-version": "2012-06-01",
}
NOT_SUPPORTED = "not supported"


@dataclass
class Row:
    scenario: str
    unit: str
    icevault: float | str | None
    moto: float | str | None = None
    limit: float | str | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def mb_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def make_file(path: Path, size: int) -> Path:
    block = os.urandom(16 * MIB)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            handle.write(piece)
            written += len(piece)
    return path


RANDOM_BLOCK = os.urandom(8 * MIB)


def generated(size: int) -> Iterator[bytes]:
    """The same pseudo-random bytes every time (hashed in one pass, sent in another)."""
    block = RANDOM_BLOCK
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece


def wait_job(client: Any, vault: str, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not client.describe_job(vaultName=vault, jobId=job_id)["Completed"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not complete")
        time.sleep(0.1)


def retrieval(client: Any, vault: str, archive_id: str) -> str:
    job_id = str(client.initiate_job(vaultName=vault, jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Expedited"})["jobId"])
    wait_job(client, vault, job_id)
    return job_id


class RawHTTP:
    """A minimal HTTP/1.1 client on a bare socket, so the reader is not the bottleneck: the
    body is received with recv_into into one buffer, exactly like the sendfile limit's reader."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buffer = bytearray(8 * MIB)
        self.view = memoryview(self.buffer)
        self.pending = b""

    def get(self, path: str, headers: dict[str, str]) -> int:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self.pending
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the response headers")
            head += chunk
        header_bytes, _, rest = head.partition(b"\r\n\r\n")
        status_line, *header_lines = header_bytes.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(fields.get("content-length", "0"))
        if status not in (200, 206):
            raise RuntimeError(f"GET {path} -> {status}")
        received = min(len(rest), length)
        self.pending = rest[length:]
        while received < length:
            n = self.sock.recv_into(self.view[: min(len(self.buffer), length - received)])
            if not n:
                raise RuntimeError("connection closed mid-body")
            received += n
        if fields.get("connection", "").lower() == "close":  # moto's server does not keep alive
            self.sock.close()
            self.sock = socket.create_connection(("127.0.0.1", self.port))
            self.pending = b""
        return received

    def close(self) -> None:
        self.sock.close()


def raw_read(peer: Peer, path: str, headers: dict[str, str], conn: RawHTTP | None = None) -> int:
    own = conn is None
    client = conn or RawHTTP(peer.port)
    try:
        return client.get(path, headers)
    finally:
        if own:
            client.close()


def timed_median(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median time of ``repeat`` runs (see limits.loopback_sendfile_rate for why)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def boto3_read(client: Any, vault: str, job_id: str) -> int:
    body = client.get_job_output(vaultName=vault, jobId=job_id)["body"]
    total = 0
    while chunk := body.read(8 * MIB):
        total += len(chunk)
    return total


def peak_rss_during(peer: Peer, action: Callable[[], Any]) -> tuple[int, Any]:
    peak = [peer.rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], peer.rss())
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = action()
    finally:
        stop.set()
        thread.join()
    return peak[0], result


def signed_headers(peer: Peer, path: str) -> dict[str, str]:
    """A SigV4-signed GET, valid for 15 minutes: replaying it measures verification cost."""
    request = AWSRequest(method="GET", url=peer.url + path, headers={"x-amz-glacier-version": "2012-06-01"})
    SigV4Auth(Credentials(peer.key, peer.secret), "glacier", REGION).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}

