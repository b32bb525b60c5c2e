"""Upload bodies of 8 MiB and more are read straight from the socket by a pool thread
(``server/bodypump.py``). The bytes stored are exactly those sent, whatever aiohttp had read
before the handler ran. The response closes the connection, the stall rules still hold, a
vanished client frees its thread, a full pool falls back to the event loop, and TLS never
takes this path."""

from __future__ import annotations

import hashlib
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icevault.core.treehash import tree_hash
from tests.e2e.test_connections import _closed_within
from tests.e2e.test_edge import assert_glacier_error
from tests.e2e.test_hostile_edge import read_response, send_head, signed_headers
from tests.support import ServerProcess, self_signed_certificate, wait_for_job

MIB = 1024 * 1024
PATH = "/-/vaults/big/archives"


def _bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # One body thread, so that tests can fill the pool and see it freed again.
    started = ServerProcess(tmp_path_factory.mktemp("bodies") / "data", auth="sigv4",
                            extra_args=["--io-timeout", "2s", "--body-threads", "1"]).start()
    started.client().create_vault(vaultName="big")
    yield started
    started.stop()


def _closes(response: dict[str, Any]) -> bool:
    return bool(response["ResponseMetadata"]["HTTPHeaders"].get("connection") == "close")


def _retrieve(client: Any, archive_id: str) -> bytes:
    job = client.initiate_job(vaultName="big", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id})
    wait_for_job(client, "big", job["jobId"])
    output = client.get_job_output(vaultName="big", jobId=job["jobId"])
    data: bytes = output["body"].read()
    assert output["checksum"] == tree_hash(data)
    return data


def _signed_upload_head(server: ServerProcess, body: bytes, tree: str | None = None) -> dict[str, str]:
    return signed_headers(server, "POST", PATH, body, headers={
        "x-amz-sha256-tree-hash": tree or tree_hash(body),
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest()})


def _pumped_upload_succeeds(server: ServerProcess, seed: int) -> bool:
    body = _bytes(9 * MIB, seed)
    response = server.client().upload_archive(vaultName="big", body=body)
    assert response["checksum"] == tree_hash(body)
    return _closes(response)


def test_large_archive_is_stored_exactly_and_its_connection_closes(server: ServerProcess) -> None:
    client = server.client()
    body = _bytes(12 * MIB + 12345, seed=1)
    uploaded = client.upload_archive(vaultName="big", body=body)
    assert uploaded["checksum"] == tree_hash(body)
    assert _closes(uploaded)
    # The client's next request opens a new connection; small bodies keep theirs.
    small = client.upload_archive(vaultName="big", body=b"small" * 100)
    assert not _closes(small)
    assert _retrieve(client, uploaded["archiveId"]) == body


def test_large_multipart_parts_are_stored_exactly(server: ServerProcess) -> None:
    client = server.client()
    part = 8 * MIB
    body = _bytes(2 * part + 5, seed=2)
    upload_id = client.initiate_multipart_upload(vaultName="big", partSize=str(part))["uploadId"]
    closes = []
    for start in range(0, len(body), part):
        piece = body[start:start + part]
        response = client.upload_multipart_part(
            vaultName="big", uploadId=upload_id, body=piece,
            range=f"bytes {start}-{start + len(piece) - 1}/*")
        assert response["checksum"] == tree_hash(piece)
        closes.append(_closes(response))
    assert closes == [True, True, False]  # the 5-byte part is read on the event loop
    done = client.complete_multipart_upload(
        vaultName="big", uploadId=upload_id, archiveSize=str(len(body)),
        checksum=tree_hash(body))
    assert _retrieve(client, done["archiveId"]) == body


def test_body_read_ahead_by_aiohttp_is_not_lost(server: ServerProcess) -> None:
    # The head and the first 3 MiB arrive together, before the handler runs: aiohttp has read
    # part of that, and its parser holds more; the rest comes in odd-sized pieces.
    body = _bytes(10 * MIB + 3, seed=3)
    headers = _signed_upload_head(server, body)
    with send_head(server, "POST", PATH, headers, body[:3 * MIB + 17],
                   content_length=len(body)) as sock:
        time.sleep(0.3)
        position = 3 * MIB + 17
        while position < len(body):
            sock.sendall(body[position:position + MIB - 1])
            position += MIB - 1
        response = read_response(sock, timeout=20)
        assert response.status == 201, response.body
        assert response.headers["x-amz-sha256-tree-hash"] == tree_hash(body)
        assert response.headers["connection"] == "close"
        assert _closed_within(sock, 5)
    assert _retrieve(server.client(), response.headers["x-amz-archive-id"]) == body


def test_tampered_large_body_is_refused(server: ServerProcess) -> None:
    body = _bytes(9 * MIB, seed=4)
    headers = _signed_upload_head(server, body, tree=tree_hash(body[:-1] + b"\0"))
    with send_head(server, "POST", PATH, headers, body) as sock:
        response = read_response(sock, timeout=20)
    body_json = assert_glacier_error(response, 400, "InvalidParameterValueException")
    assert "Checksum mismatch" in body_json["message"]
    assert response.headers["connection"] == "close"


def test_stalled_large_body_gets_408_and_frees_its_thread(server: ServerProcess) -> None:
    body = _bytes(12 * MIB, seed=5)
    headers = _signed_upload_head(server, body)
    started = time.monotonic()
    with send_head(server, "POST", PATH, headers, body[:2 * MIB],
                   content_length=len(body)) as sock:
        response = read_response(sock, timeout=15)
        assert_glacier_error(response, 408, "RequestTimeoutException")
        assert response.headers["connection"] == "close"
        assert _closed_within(sock, 5)
    assert time.monotonic() - started < 10  # --io-timeout 2s
    assert _pumped_upload_succeeds(server, seed=6)  # the one body thread is free again


def test_client_gone_mid_body_frees_its_thread(server: ServerProcess) -> None:
    body = _bytes(12 * MIB, seed=7)
    with send_head(server, "POST", PATH, _signed_upload_head(server, body), body[:3 * MIB],
                   content_length=len(body)):
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while not _pumped_upload_succeeds(server, seed=8):
        assert time.monotonic() < deadline, "the body thread was never freed"
        time.sleep(0.2)
    assert "Traceback" not in server.log()


def test_busy_body_threads_fall_back_to_the_event_loop(server: ServerProcess) -> None:
    slow_body = _bytes(9 * MIB, seed=9)
    sock = send_head(server, "POST", PATH, _signed_upload_head(server, slow_body),
                     slow_body[:MIB], content_length=len(slow_body))
    finish = threading.Event()

    def trickle() -> None:  # holds the only body thread, never stalling long enough for a 408
        position = MIB
        while not finish.wait(0.2):
            sock.sendall(slow_body[position:position + 64 * 1024])
            position += 64 * 1024
        sock.sendall(slow_body[position:])

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(0.5)
        body = _bytes(9 * MIB + 1, seed=10)
        uploaded = server.client().upload_archive(vaultName="big", body=body)
        assert uploaded["checksum"] == tree_hash(body)
        assert not _closes(uploaded)  # read on the event loop: the connection stays open
    finally:
        finish.set()
        sender.join()
    with sock:
        response = read_response(sock, timeout=20)
    assert response.status == 201, response.body
    assert response.headers["x-amz-sha256-tree-hash"] == tree_hash(slow_body)
    assert response.headers["connection"] == "close"
    assert _retrieve(server.client(), uploaded["archiveId"]) == body


def test_tls_bodies_never_take_the_socket_path(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls = ServerProcess(tmp_path / "data", auth="sigv4", extra_args=[
        "--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        client = tls.tls_client(cert)
        client.create_vault(vaultName="big")
        body = _bytes(9 * MIB, seed=11)
        uploaded = client.upload_archive(vaultName="big", body=body)
        assert uploaded["checksum"] == tree_hash(body)
        assert not _closes(uploaded)
        assert _retrieve(client, uploaded["archiveId"]) == body
        client.close()
    finally:
        tls.stop()


def test_body_threads_zero_reads_every_body_on_the_event_loop(tmp_path: Path) -> None:
    plain = ServerProcess(tmp_path / "data", extra_args=["--body-threads", "0"]).start()
    try:
        client = plain.client()
        client.create_vault(vaultName="big")
        body = _bytes(9 * MIB, seed=12)
        uploaded = client.upload_archive(vaultName="big", body=body)
        assert uploaded["checksum"] == tree_hash(body)
        assert not _closes(uploaded)
    finally:
        plain.stop()


def test_shutdown_wakes_a_waiting_body_thread(tmp_path: Path) -> None:
    waiting = ServerProcess(tmp_path / "data", extra_args=["--io-timeout", "60s"]).start()
    waiting.client().create_vault(vaultName="big")
    body = _bytes(9 * MIB, seed=13)
    sock = send_head(waiting, "POST", PATH, {"x-amz-glacier-version": "2012-06-01",
                                             "x-amz-sha256-tree-hash": tree_hash(body)},
                     body[:MIB], content_length=len(body))
    with sock:
        time.sleep(0.3)
        process = waiting.proc
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        # aiohttp waits up to 10 s for requests in flight, then cancels them; the body
        # thread, blocked in a 60 s read, must not hold the exit.
        assert time.monotonic() - started < 15
    waiting.stop()
    assert "Traceback" not in waiting.log()
