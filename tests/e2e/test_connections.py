"""Connections from peers that misbehave: idle, slowloris, too many, stalled readers,
malformed HTTP, and too few file descriptors. The server stays up and answers the rest."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_edge import assert_glacier_error
from tests.e2e.test_hostile_edge import read_response, signed_headers
from tests.support import ServerProcess, pattern, self_signed_certificate, wait_for_job


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (reading and dropping data)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("guarded") / "data", auth="sigv4",
        extra_args=["--idle-timeout", "1s", "--io-timeout", "1s", "--min-rate", "1MiB",
                    "--max-connections", "24"],
    ).start()
    yield server
    server.stop()


def test_idle_connections_are_closed(guarded: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        assert _closed_within(sock, 4)


def test_idle_keep_alive_connections_are_closed(guarded: ServerProcess) -> None:
    headers = signed_headers(guarded, "GET", "/-/vaults", b"")
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        lines = ["GET /-/vaults HTTP/1.1", f"Host: 127.0.0.1:{guarded.port}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert read_response(sock, 5).status == 200
        assert _closed_within(sock, 4)


def test_slowloris_headers_are_cut_off(guarded: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
        request = b"GET /-/vaults HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > 5:
                break
        assert closed or _closed_within(sock, 1)
        assert time.monotonic() - started < 5


def test_connections_past_the_cap_get_503_and_the_server_recovers(guarded: ServerProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(24)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", guarded.port)) as extra:
            response = read_response(extra, 5)
        assert_glacier_error(response, 503, "ServiceUnavailableException")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert guarded.client().list_vaults()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert guarded.log().count("refusing connections") <= 2


def test_stalled_job_output_reader_is_dropped(guarded: ServerProcess) -> None:
    client = guarded.client()
    client.create_vault(vaultName="stall")
    archive = client.upload_archive(vaultName="stall", body=pattern(48 << 20))
    job = client.initiate_job(vaultName="stall", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive["archiveId"]})
    wait_for_job(client, "stall", job["jobId"])
    path = f"/-/vaults/stall/jobs/{job['jobId']}/output"
    headers = signed_headers(guarded, "GET", path, b"")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", guarded.port))
    with sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{guarded.port}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + 15  # one step: 1 s + 4 MiB at 1 MiB/s
        while "dropping a GetJobOutput reader" not in guarded.log():
            assert time.monotonic() < deadline, "the stalled reader was never dropped"
            time.sleep(0.2)
        # what the kernel had buffered drains, then the connection ends short of 48 MiB
        sock.settimeout(5)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        assert received < 48 << 20


def test_malformed_http_gets_glacier_json_and_no_traceback(guarded: ServerProcess) -> None:
    for garbage in (b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01"
                    + b"\x00" * 100 + b"\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", guarded.port)) as sock:
            sock.sendall(garbage)
            response = read_response(sock, 5)
        assert 400 <= response.status < 500
        assert response.headers["content-type"].startswith("application/json")
        assert json.loads(response.body)["code"] == "InvalidParameterValueException"
        assert response.headers["x-amzn-requestid"]
    assert "Traceback" not in guarded.log()


# -- the process's own limits ------------------------------------------------------------------

def _limit_files(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit")


def test_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 4096
    server = ServerProcess(tmp_path / "data", preexec=_limit_files(256, min(hard, 8192))).start()
    try:
        assert server.proc is not None
        assert _soft_limit(server.proc.pid) == min(hard, 8192)
    finally:
        server.stop()


def test_running_out_of_descriptors_is_logged_once_per_interval(tmp_path: Path) -> None:
    # A cap above what the descriptors allow: accept() itself fails with EMFILE.
    server = ServerProcess(tmp_path / "data", extra_args=["--max-connections", "5000"],
                           preexec=_limit_files(160, 160)).start()
    try:
        held: list[socket.socket] = []
        try:
            for _ in range(300):
                try:
                    held.append(socket.create_connection(("127.0.0.1", server.port), timeout=1))
                except OSError:
                    break
            # The first line as soon as the server meets the limit (later on a loaded
            # machine), then no second one while the failures go on within the interval.
            deadline = time.monotonic() + 15
            while "accept() is failing" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(2)
            log = server.log()
            assert "Traceback" not in log
            assert log.count("accept() is failing") == 1, log[-2000:]
            assert len(log) < 20_000
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.5)
        assert server.client().list_vaults()["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        server.stop()


def test_default_cap_keeps_descriptors_for_the_server(tmp_path: Path) -> None:
    # 200 descriptors: the default cap is (200 - 128) / 2 = 36 connections.
    server = ServerProcess(tmp_path / "data", preexec=_limit_files(200, 200)).start()
    try:
        held: list[socket.socket] = []
        try:
            for _ in range(150):
                held.append(socket.create_connection(("127.0.0.1", server.port), timeout=1))
            time.sleep(0.5)
            refused = 0
            for sock in held:
                sock.setblocking(False)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue  # being served: idle, so nothing to read
                assert data.startswith(b"HTTP/1.1 503 "), data[:100]
                assert b'"ServiceUnavailableException"' in data
                refused += 1
            assert 150 - 36 <= refused <= 150 - 35
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.5)
        assert server.client().list_vaults()["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert "Traceback" not in server.log()
        assert "Too many open files" not in server.log()
    finally:
        server.stop()


# -- start-up ----------------------------------------------------------------------------------

def _serve(*args: str, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "icevault", "serve", *args],
                          capture_output=True, text=True, timeout=60, preexec_fn=preexec)


def _one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_start_up_failures_are_one_line_and_exit_2(tmp_path: Path) -> None:
    assert "--bogus" in _one_line_failure(_serve("--bogus"))
    assert "--port" in _one_line_failure(_serve("--port", "nope"))
    assert "tier" in _one_line_failure(
        _serve("--data-dir", str(tmp_path / "d1"), "--tier-delays", "warp=1"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_failure(_serve("--data-dir", str(tmp_path / "d2"), "--port", str(port)))
        assert "address" in line.lower()
        assert not (tmp_path / "d2").exists()  # nothing was written before the failure


def test_read_only_data_directory_is_one_line(tmp_path: Path, tmpfs: Callable[..., Path]) -> None:
    mount = tmpfs(tmp_path / "ro", "16m")
    data = mount / "data"
    server = ServerProcess(data).start()  # a data directory with everything in it
    server.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    line = _one_line_failure(_serve("--data-dir", str(data), "--port", "0"))
    assert "cannot start" in line and "read-only" in line.lower()
    line = _one_line_failure(_serve("--data-dir", str(mount / "fresh"), "--port", "0"))
    assert "cannot start" in line


def _no_umask() -> None:
    os.umask(0)


def test_data_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", preexec=_no_umask).start()
    try:
        data = tmp_path / "data"
        dirs = [data, data / "blobs", data / "staging", data / "tmp", data / "blobs" / "00",
                data / "blobs" / "ff"]
        for path in dirs:
            assert oct(path.stat().st_mode & 0o777) == oct(0o700), path
        for path in data.rglob("*"):
            if path.is_file():
                assert path.stat().st_mode & 0o077 == 0, path
    finally:
        server.stop()


def test_failed_tls_handshakes_do_not_use_up_the_connection_cap(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = ServerProcess(tmp_path / "data", auth="sigv4", extra_args=[
        "--tls-cert", str(cert), "--tls-key", str(key), "--max-connections", "4"]).start()
    try:
        for _ in range(30):  # plain HTTP to a TLS port: every handshake fails
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"GET /-/vaults HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _closed_within(sock, 5)
        client = server.tls_client(cert)
        assert client.list_vaults()["ResponseMetadata"]["HTTPStatusCode"] == 200
        client.close()
    finally:
        server.stop()
