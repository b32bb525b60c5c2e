"""Corrupted bytes at rest are never served as good: jobs verify before they succeed, a
scrub finds and marks corruption, and the downloader reports it as a verification failure."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from icevault.core.treehash import MIB
from tests.seaweed import SeaweedServer
from tests.support import ServerProcess, pattern, wait_for_job


def blob_key(data_dir: Path, archive_id: str) -> str:
    with sqlite3.connect(data_dir / "metadata.sqlite3") as db:
        row = db.execute("SELECT blob_key FROM archives WHERE id = ?", (archive_id,)).fetchone()
    return str(row[0])


def flip_local(data_dir: Path, archive_id: str, offset: int) -> None:
    key = blob_key(data_dir, archive_id)
    path = data_dir / "blobs" / key[:2] / key
    with open(path, "r+b") as file:
        for at in (offset, offset + 1, offset + 7):
            file.seek(at)
            byte = file.read(1)
            file.seek(at)
            file.write(bytes([byte[0] ^ 0x5A]))


def retrieve(client: Any, vault: str, archive_id: str, **extra: str) -> dict[str, Any]:
    job = client.initiate_job(vaultName=vault, jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, **extra})
    return wait_for_job(client, vault, job["jobId"])


def admin(server: ServerProcess, *args: str, env: dict[str, str] | None = None,
          check_code: int | None = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "icevault", "admin", "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )
    if check_code is not None:
        assert result.returncode == check_code, result.stderr
    return result


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icevault", *args, "--endpoint-url", server.url],
        env=server.cli_env(), capture_output=True, text=True, timeout=300,
    )


@pytest.fixture()
def server(tmp_path: Path) -> Any:
    proc = ServerProcess(tmp_path / "data", auth="sigv4").start()
    yield proc
    proc.stop()


def test_corruption_fails_the_job_and_a_scrub_marks_it(server: ServerProcess,
                                                       tmp_path: Path) -> None:
    client = server.client()
    client.create_vault(vaultName="rot")
    data = pattern(5 * MIB + 333, seed=3)
    good = pattern(2 * MIB + 1, seed=4)
    archive_id = client.upload_archive(vaultName="rot", body=data)["archiveId"]
    good_id = client.upload_archive(vaultName="rot", body=good)["archiveId"]
    earlier = retrieve(client, "rot", archive_id)  # succeeded while the bytes were good
    assert earlier["StatusCode"] == "Succeeded"

    flip_local(server.data_dir, archive_id, 3 * MIB + 100)

    # before any scrub: the downloader sees the served bytes miss their checksum, and says so
    out = tmp_path / "out.bin"
    result = cli(server, "download", "--vault", "rot", "--job-id", earlier["JobId"], "-o",
                 str(out), "--chunk-size", "1MiB")
    assert result.returncode == 3, result.stderr
    assert not out.exists()

    # a new job reads what it would serve first: it fails, and the archive is marked
    failed = retrieve(client, "rot", archive_id)
    assert failed["StatusCode"] == "Failed"
    assert "failed verification" in failed["StatusMessage"]
    assert f"byte {3 * MIB}" in failed["StatusMessage"]
    assert "CORRUPT ARCHIVE " + archive_id in server.log()
    # a range away from the damage is still checked as part of the same archive: refused
    assert retrieve(client, "rot", archive_id,
                    RetrievalByteRange=f"0-{MIB - 1}")["StatusCode"] == "Failed"
    # and the earlier job's output is no longer served at all, whole or ranged
    for extra in ({}, {"range": "bytes=0-1048575"}):
        with pytest.raises(ClientError) as exc:
            client.get_job_output(vaultName="rot", jobId=earlier["JobId"], **extra)
        assert exc.value.response["Error"]["Code"] == "ServiceUnavailableException"
        assert "failed verification" in exc.value.response["Error"]["Message"]

    # the scrub reports the marked archive, checks the good one, and exits 3
    scrub = admin(server, "scrub", check_code=3)
    report = json.loads(scrub.stdout)
    assert report["Checked"] == 2
    assert [c["ArchiveId"] for c in report["Corrupt"]] == [archive_id]
    assert archive_id in scrub.stderr
    marked = json.loads(admin(server, "list-corrupt").stdout)["Corrupt"]
    assert [(m["ArchiveId"], m["Size"]) for m in marked] == [(archive_id, len(data))]
    assert "does not match" in marked[0]["Reason"] and marked[0]["MarkedAt"]
    # the good archive stays retrievable
    ok = retrieve(client, "rot", good_id)
    assert ok["StatusCode"] == "Succeeded"
    body = client.get_job_output(vaultName="rot", jobId=ok["JobId"])["body"].read()
    assert body == good


def test_scrub_finds_corruption_no_job_has_seen(server: ServerProcess) -> None:
    client = server.client()
    client.create_vault(vaultName="quiet")
    ids = [client.upload_archive(vaultName="quiet", body=pattern(MIB + i, seed=i))["archiveId"]
           for i in range(4)]
    assert json.loads(admin(server, "scrub").stdout)["Corrupt"] == []
    flip_local(server.data_dir, ids[2], 10)
    report = json.loads(admin(server, "scrub", "--vault", "quiet", check_code=3).stdout)
    assert report["Checked"] == 4
    assert report["Corrupt"][0]["ArchiveId"] == ids[2]
    assert "does not match" in report["Corrupt"][0]["Reason"]
    assert retrieve(client, "quiet", ids[2])["StatusCode"] == "Failed"
    assert retrieve(client, "quiet", ids[1])["StatusCode"] == "Succeeded"


def test_scrub_is_paced_and_resumes_where_it_stopped(server: ServerProcess) -> None:
    client = server.client()
    client.create_vault(vaultName="slow")
    for i in range(8):
        client.upload_archive(vaultName="slow", body=pattern(MIB, seed=i))
    proc = subprocess.Popen(
        [sys.executable, "-m", "icevault", "admin", "--data-dir", str(server.data_dir),
         "scrub", "--rate", "2MiB"],  # about 4 s for all eight
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Interrupted once it has checked an archive (it records where it is), not after a
    # fixed time that a loaded machine's slow start could overrun.
    import sqlite3

    deadline = time.monotonic() + 30
    while True:
        with sqlite3.connect(server.data_dir / "metadata.sqlite3") as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'scrub:all'").fetchone()
        if row is not None and row[0] is not None and int(row[0]) > 0:
            break
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    rest = json.loads(admin(server, "scrub").stdout)
    assert rest["ResumedAfterPosition"] > 0
    assert 0 < rest["Checked"] < 8
    # the pass finished: the next one starts from the beginning
    assert json.loads(admin(server, "scrub").stdout)["Checked"] == 8


def test_corruption_in_the_s3_store(seaweed: SeaweedServer,
                                    s3_backed: tuple[ServerProcess, str]) -> None:
    server, store_url = s3_backed
    try:
        client = server.client()
        client.create_vault(vaultName="s3rot")
        data = pattern(3 * MIB + 7, seed=9)
        archive_id = client.upload_archive(vaultName="s3rot", body=data)["archiveId"]
        assert retrieve(client, "s3rot", archive_id)["StatusCode"] == "Succeeded"
        parts = urlsplit(store_url)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        key = f"{prefix}/blobs/{blob_key(server.data_dir, archive_id)}".lstrip("/")
        s3 = seaweed.client()
        stored = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert bytes(stored) == data
        stored[2 * MIB + 5] ^= 0xFF
        s3.put_object(Bucket=bucket, Key=key, Body=bytes(stored))
        failed = retrieve(client, "s3rot", archive_id)
        assert failed["StatusCode"] == "Failed"
        assert "failed verification" in failed["StatusMessage"]
        env = {**server.cli_env(), "AWS_ACCESS_KEY_ID": "icevault",
               "AWS_SECRET_ACCESS_KEY": "icevault"}
        report = json.loads(admin(server, "--blob-url", store_url, "scrub", env=env,
                                  check_code=3).stdout)
        assert [c["ArchiveId"] for c in report["Corrupt"]] == [archive_id]
    finally:
        server.stop()


def test_the_server_scrubs_in_the_background(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--scrub-interval", "1s", "--scrub-rate", "50MiB"]).start()
    try:
        client = server.client()
        client.create_vault(vaultName="bg")
        archive_id = client.upload_archive(vaultName="bg", body=pattern(2 * MIB, seed=1))[
            "archiveId"]
        flip_local(server.data_dir, archive_id, 5)
        deadline = time.monotonic() + 20
        while f"CORRUPT ARCHIVE {archive_id}" not in server.log():
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.2)
        assert "scrub pass" in server.log()
        failed = retrieve(client, "bg", archive_id)
        assert failed["StatusCode"] == "Failed"
    finally:
        server.stop()
