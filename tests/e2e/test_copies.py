"""Copies of every archive in further stores (--copy-url): made in the background and
verified, listed for the operator, used to repair bad hot bytes before they are served,
and the archive marked corrupt only when no good copy is left."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from icevault.core.treehash import MIB, tree_hash
from tests.e2e.test_integrity import admin, blob_key, flip_local, retrieve
from tests.support import ServerProcess, pattern


def copy_keys(data_dir: Path, archive_id: str) -> dict[str, str]:
    with sqlite3.connect(data_dir / "metadata.sqlite3") as db:
        rows = db.execute("SELECT store, blob_key FROM archive_copies WHERE archive_id = ?"
                          " AND state = 'verified'", (archive_id,)).fetchall()
    return dict(rows)


def copies(server: ServerProcess, vault: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(
        admin(server, "copies", "--vault", vault).stdout)["Archives"]
    return listed


def wait_verified(server: ServerProcess, vault: str, count: int, stores: int = 1,
                  timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        listed = copies(server, vault)
        states = [c["State"] for a in listed for c in a["Copies"]]
        if len(listed) == count and states == ["verified"] * (count * stores):
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.1)


def metric(server: ServerProcess, name: str, store: str | None = None) -> float:
    with urllib.request.urlopen(server.metrics_request(), timeout=10) as response:
        lines = response.read().decode().splitlines()
    sample = name if store is None else f'{name}{{store="{store}"}}'
    [value] = [line.rpartition(" ")[2] for line in lines if line.startswith(f"{sample} ")]
    return float(value)


def stored_bytes(root: Path, key: str) -> bytes:
    return (root / "blobs" / key[:2] / key).read_bytes()


def copying_server(tmp_path: Path, *extra: str, auth: str = "sigv4") -> ServerProcess:
    """A started server keeping a copy of everything in ``tmp_path/second-disk`` (its
    store: ``file://`` and that path)."""
    second = tmp_path / "second-disk"
    proc = ServerProcess(tmp_path / "data", auth=auth,
                         extra_args=["--copy-url", f"file://{second}", *extra]).start()
    proc.second = second  # type: ignore[attr-defined]
    return proc


@pytest.fixture()
def copied(tmp_path: Path) -> Any:
    """A server keeping a copy of everything in a second directory."""
    proc = copying_server(tmp_path)
    yield proc
    proc.stop()


def test_a_copy_store_on_the_data_directorys_file_system_is_warned_of(tmp_path: Path) -> None:
    # A copy beside the original does not outlive their disk: allowed (tests, a disk that
    # is itself redundant), and said at start. A store on another file system is not named.
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        proc = ServerProcess(tmp_path / "data", extra_args=[
            "--copy-url", f"file://{tmp_path / 'beside'}", "--copy-url", f"file://{other}"]).start()
        try:
            log = proc.log()
        finally:
            proc.stop()
    finally:
        shutil.rmtree(other)
    beside = f"file://{(tmp_path / 'beside').resolve()}"
    assert (f"the copy store {beside} is on the same file system as the data directory: a "
            "failure of that disk loses both") in log
    assert f"file://{other.resolve()} is on the same" not in log


def test_every_archive_gets_a_verified_copy(copied: ServerProcess) -> None:
    client = copied.client()
    client.create_vault(vaultName="kept")
    datas = {client.upload_archive(vaultName="kept", body=data)["archiveId"]: data
             for data in (b"x", pattern(3 * MIB + 17, seed=1), pattern(MIB, seed=2))}
    listed = wait_verified(copied, "kept", 3)
    store = f"file://{copied.second.resolve()}"  # type: ignore[attr-defined]
    assert {a["ArchiveId"] for a in listed} == set(datas)
    for archive in listed:
        assert archive["Hot"] == "stored"
        assert [(c["Store"], c["Attempts"], c["Error"]) for c in archive["Copies"]] == [
            (store, 1, None)]
    for archive_id, data in datas.items():
        key = copy_keys(copied.data_dir, archive_id)[store]
        assert stored_bytes(copied.second, key) == data  # type: ignore[attr-defined]
    owed = json.loads(admin(copied, "replication").stdout)["Stores"]
    assert owed == [{"Store": store, "OwedArchives": 0, "OwedBytes": 0,
                     "OldestOwedSince": None, "OldestOwedAgeSeconds": None}]
    assert metric(copied, "icevault_copies_owed_archives", store) == 0
    with urllib.request.urlopen(f"{copied.url}/health/ready", timeout=10) as ready:
        assert json.loads(ready.read()) == {"status": "ready"}


def test_bad_hot_bytes_are_repaired_from_the_copy_and_served_exact(
        copied: ServerProcess) -> None:
    client = copied.client()
    client.create_vault(vaultName="rot")
    data = pattern(5 * MIB + 333, seed=3)
    archive_id = client.upload_archive(vaultName="rot", body=data)["archiveId"]
    wait_verified(copied, "rot", 1)
    old_key = blob_key(copied.data_dir, archive_id)
    flip_local(copied.data_dir, archive_id, 2 * MIB + 5)
    job = retrieve(client, "rot", archive_id)
    assert (job["StatusCode"], job["Completed"]) == ("Succeeded", True), job
    output = client.get_job_output(vaultName="rot", jobId=job["JobId"])
    assert output["checksum"] == tree_hash(data)
    assert output["body"].read() == data
    new_key = blob_key(copied.data_dir, archive_id)
    assert new_key != old_key
    assert stored_bytes(copied.data_dir, new_key) == data
    assert json.loads(admin(copied, "list-corrupt").stdout) == {"Corrupt": []}
    assert "REPAIRED ARCHIVE" in copied.log()
    assert metric(copied, "icevault_archives_repaired_total") == 1
    # A scrub now finds every byte good.
    scrub = json.loads(admin(copied, "scrub").stdout)
    assert (scrub["Corrupt"], scrub["Repaired"]) == ([], [])


def test_a_scrub_repairs_and_only_no_good_copy_marks_corrupt(copied: ServerProcess) -> None:
    client = copied.client()
    client.create_vault(vaultName="both")
    saved = pattern(2 * MIB + 1, seed=5)
    lost = pattern(3 * MIB, seed=6)
    saved_id = client.upload_archive(vaultName="both", body=saved)["archiveId"]
    lost_id = client.upload_archive(vaultName="both", body=lost)["archiveId"]
    wait_verified(copied, "both", 2)
    flip_local(copied.data_dir, saved_id, 10)
    flip_local(copied.data_dir, lost_id, 10)
    second: Path = copied.second  # type: ignore[attr-defined]
    [lost_copy] = copy_keys(copied.data_dir, lost_id).values()
    with open(second / "blobs" / lost_copy[:2] / lost_copy, "r+b") as file:
        file.seek(MIB + 3)
        file.write(b"\x00\xff\x00")
    store = f"file://{second}"
    scrub = admin(copied, "--copy-url", store, "scrub", check_code=3)
    report = json.loads(scrub.stdout)
    assert [r["ArchiveId"] for r in report["Repaired"]] == [saved_id]
    assert [c["ArchiveId"] for c in report["Corrupt"]] == [lost_id]
    assert stored_bytes(copied.data_dir, blob_key(copied.data_dir, saved_id)) == saved
    # The bad copy is no longer counted: the store owes the archive a copy again, and the
    # archive is never served.
    [lost_listed] = [a for a in copies(copied, "both") if a["ArchiveId"] == lost_id]
    assert lost_listed["Hot"] == "corrupt"
    assert [c["State"] for c in lost_listed["Copies"]] == ["bad"]
    job = retrieve(client, "both", lost_id)
    assert job["StatusCode"] == "Failed"
    assert "failed verification" in job["StatusMessage"]


def test_an_unreachable_copy_store_never_fails_an_upload(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "copies")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "copies")
    store = "s3://nowhere/copies?endpoint=http://127.0.0.1:9&region=us-east-1"
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--copy-url", store]).start()
    try:
        client = server.client()
        client.create_vault(vaultName="v")
        data = pattern(MIB + 1, seed=9)
        archive_id = client.upload_archive(vaultName="v", body=data)["archiveId"]
        assert client.describe_vault(vaultName="v")["VaultName"] == "v"
        deadline = time.monotonic() + 30
        while True:
            [listed] = copies(server, "v")
            states = [c["State"] for c in listed["Copies"]]
            if states == ["failed"]:
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        assert listed["Copies"][0]["RetryAt"] is not None
        owed = json.loads(admin(server, "replication").stdout)["Stores"]
        assert [(s["Store"], s["OwedArchives"], s["OwedBytes"]) for s in owed] == [
            ("s3://nowhere/copies", 1, len(data))]
        assert metric(server, "icevault_copies_owed_archives", "s3://nowhere/copies") == 1
        assert metric(server, "icevault_copies_owed_bytes", "s3://nowhere/copies") == len(data)
        # The server stays ready: its own stores answer; the copies wait, and it says so
        # (without naming the store: a readiness answer needs no credentials).
        with urllib.request.urlopen(f"{server.url}/health/ready", timeout=10) as ready:
            assert ready.status == 200
            assert json.loads(ready.read()) == {
                "status": "ready", "copies": "1 of 1 copy stores do not answer "
                "(EndpointConnectionError); the copies they are owed wait"}
        job = retrieve(client, "v", archive_id)
        assert client.get_job_output(vaultName="v", jobId=job["JobId"])["body"].read() == data
    finally:
        server.stop()


@pytest.mark.parametrize("url, says", [
    ("file://relative/path", "a file URL names an absolute path"),
    ("ftp://host/x", "expected file:///PATH or s3://"),
    ("s3://bucket/p?storage-klass=GLACIER", "unknown option 'storage-klass'"),
    ("s3://bucket/p?storage-class=COLDEST", "unknown storage class 'COLDEST'"),
    ("s3://bucket/p?restore-days=0", "restore-days is a whole number of days from 1 to 365"),
])
def test_a_bad_copy_url_stops_the_server_in_one_line(tmp_path: Path, url: str,
                                                     says: str) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "data"), "--copy-url", url],
        capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], started.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("copy_url, says", [
    ("file://{data}", "--copy-url file://{data} is the same place as the data directory"),
    ("file://{data}/copies", "--copy-url file://{data}/copies is inside the data directory"),
    ("file://{root}", "--copy-url file://{root} is around the data directory"),
])
def test_a_copy_store_in_the_data_directorys_place_stops_the_server(
        tmp_path: Path, copy_url: str, says: str) -> None:
    # Every store sweeps the objects its metadata does not name: a copy store in the data
    # directory would delete the server's own archives, and the server its copies.
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    try:
        client = server.client()
        client.create_vault(vaultName="kept")
        archive_id = client.upload_archive(vaultName="kept", body=b"precious")["archiveId"]
    finally:
        server.stop()
    key = blob_key(data, archive_id)
    places = {"data": data.resolve(), "root": tmp_path.resolve()}
    started = subprocess.run(
        [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir", str(data),
         "--copy-url", copy_url.format(**places)], capture_output=True, text=True, timeout=60)
    assert started.returncode == 2, started.stderr
    assert started.stderr.strip() == (
        f"icevault serve: {says.format(**places)}: a copy store needs a place of its own, "
        "or the stores would delete each other's objects")
    assert stored_bytes(data, key) == b"precious"


def test_a_copy_store_of_another_installation_stops_the_server(tmp_path: Path) -> None:
    # Two servers on two databases given one copy store would each sweep the other's copies
    # as a crash's leftovers. The store keeps the mark of the first; the second stops.
    shared = tmp_path / "offsite"
    first = ServerProcess(tmp_path / "first", extra_args=["--copy-url", f"file://{shared}"])
    first.start()
    try:
        client = first.client()
        client.create_vault(vaultName="kept")
        archive_id = client.upload_archive(vaultName="kept", body=b"first's")["archiveId"]
        wait_verified(first, "kept", 1)
    finally:
        first.stop()
    [key] = copy_keys(first.data_dir, archive_id).values()
    owner = (shared / "icevault-owner").read_text()
    started = subprocess.run(
        [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "second"), "--copy-url", f"file://{shared}"],
        capture_output=True, text=True, timeout=60)
    assert started.returncode == 2, started.stderr
    assert started.stderr.strip().splitlines()[-1] == (
        f"icevault serve: the copy store file://{shared.resolve()} holds the objects of "
        f"another icevault installation ({owner}, not this database's): give this server a "
        "store of its own")
    assert stored_bytes(shared, key) == b"first's"


def test_copies_before_ack_means_the_copy_exists_at_the_answer(tmp_path: Path) -> None:
    second = tmp_path / "second-disk"
    server = copying_server(tmp_path, "--copies-before-ack", "1")
    try:
        client = server.client()
        client.create_vault(vaultName="sure")
        data = pattern(2 * MIB + 9, seed=11)
        archive_id = client.upload_archive(vaultName="sure", body=data)["archiveId"]
        # No waiting: the copy was made and verified before the answer.
        [key] = copy_keys(server.data_dir, archive_id).values()
        assert stored_bytes(second, key) == data
        upload = client.initiate_multipart_upload(vaultName="sure", partSize=str(MIB))
        for n in range(2):
            client.upload_multipart_part(
                vaultName="sure", uploadId=upload["uploadId"],
                range=f"bytes {n * MIB}-{(n + 1) * MIB - 1}/*", body=data[n * MIB:(n + 1) * MIB])
        done = client.complete_multipart_upload(
            vaultName="sure", uploadId=upload["uploadId"], archiveSize=str(2 * MIB),
            checksum=tree_hash(data[:2 * MIB]))
        [key] = copy_keys(server.data_dir, done["archiveId"]).values()
        assert stored_bytes(second, key) == data[:2 * MIB]
        [listed] = [a for a in copies(server, "sure") if a["ArchiveId"] == archive_id]
        assert [(c["State"], c["Attempts"]) for c in listed["Copies"]] == [("verified", 1)]
    finally:
        server.stop()


def test_copies_before_ack_refuses_an_upload_no_store_can_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "copies")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "copies")
    store = "s3://nowhere/copies?endpoint=http://127.0.0.1:9&region=us-east-1"
    server = ServerProcess(tmp_path / "data", auth="sigv4", extra_args=[
        "--copy-url", store, "--copies-before-ack", "1"]).start()
    try:
        client = server.client()  # one attempt: what a client sees, unretried
        client.create_vault(vaultName="v")
        with pytest.raises(ClientError) as refused:
            client.upload_archive(vaultName="v", body=b"not yet")
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
            "ServiceUnavailableException", 503)
        assert error["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "5"
        assert client.describe_vault(vaultName="v")["NumberOfArchives"] == 0
        assert list((server.data_dir / "blobs").rglob("*")) == [
            p for p in (server.data_dir / "blobs").rglob("*") if p.is_dir()]
    finally:
        server.stop()


def test_more_copies_before_ack_than_stores_stops_the_server(tmp_path: Path) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "data"), "--copy-url", f"file://{tmp_path}/c", "--copies-before-ack",
         "2"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip() == (
        "icevault serve: --copies-before-ack 2 needs as many --copy-url stores; 1 given")


@pytest.fixture()
def moto_s3() -> Any:
    from bench.peers import start_moto

    server = start_moto()
    assert server is not None, "moto_server is installed with the test extra"
    yield server
    server.stop()


def test_a_copy_in_deep_archive_is_checked_by_the_stores_checksums(
        tmp_path: Path, moto_s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold class cannot be read back without a restore: the copy is written in it with
    each part's Content-MD5 and the object's ETag checked, and counts as verified."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "copies")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "copies")
    endpoint = f"http://127.0.0.1:{moto_s3.port}"
    store = (f"s3://cold-archive/icevault?endpoint={endpoint}&region=us-east-1"
             "&storage-class=DEEP_ARCHIVE")
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--copy-url", store]).start()
    try:
        client = server.client()
        client.create_vault(vaultName="deep")
        data = pattern(9 * MIB + 5, seed=12)  # two 8 MiB parts in the store
        archive_id = client.upload_archive(vaultName="deep", body=data)["archiveId"]
        [listed] = wait_verified(server, "deep", 1)
        assert listed["Copies"][0]["Store"] == "s3://cold-archive/icevault"
        [key] = copy_keys(server.data_dir, archive_id).values()
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        head = s3.head_object(Bucket="cold-archive", Key=f"icevault/blobs/{key}")
        assert head["StorageClass"] == "DEEP_ARCHIVE"
        assert head["ContentLength"] == len(data)
        with pytest.raises(ClientError) as refused:
            s3.get_object(Bucket="cold-archive", Key=f"icevault/blobs/{key}")
        assert refused.value.response["Error"]["Code"] == "InvalidObjectState"
    finally:
        server.stop()


def test_a_cold_class_is_refused_for_the_servers_own_store(tmp_path: Path) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "data"), "--blob-url",
         "s3://b/p?endpoint=http://127.0.0.1:9&storage-class=GLACIER"],
        capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert "cannot be in GLACIER" in started.stderr and len(started.stderr.splitlines()) == 1


def test_hot_days_0_keeps_only_the_cold_copy_and_a_job_restores_it(
        tmp_path: Path, moto_s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """--hot-days 0: the hot bytes go once the DEEP_ARCHIVE copy is verified. A retrieval
    job then restores the copy (RestoreObject, moto restores at once), checks the restored
    bytes, and GetJobOutput streams them from the restored object exactly, whole and ranged,
    with the tree-hash headers; the server's own store stays without them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "copies")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "copies")
    endpoint = f"http://127.0.0.1:{moto_s3.port}"
    store = (f"s3://cold-tier/icevault?endpoint={endpoint}&region=us-east-1"
             "&storage-class=DEEP_ARCHIVE")
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--copy-url", store, "--hot-days", "0"]).start()
    try:
        client = server.client()
        client.create_vault(vaultName="cold")
        data = pattern(5 * MIB + 77, seed=13)
        archive_id = client.upload_archive(vaultName="cold", body=data)["archiveId"]
        hot_key = blob_key(server.data_dir, archive_id)
        deadline = time.monotonic() + 30
        while True:
            [listed] = copies(server, "cold")
            if listed["Hot"] == "removed":
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        assert [c["State"] for c in listed["Copies"]] == ["verified"]
        assert not (server.data_dir / "blobs" / hot_key[:2] / hot_key).exists() or (
            _collected_later(server, hot_key))
        job = retrieve(client, "cold", archive_id, Tier="Bulk")
        assert (job["StatusCode"], job["Completed"]) == ("Succeeded", True), job
        whole = client.get_job_output(vaultName="cold", jobId=job["JobId"])
        assert whole["checksum"] == tree_hash(data)
        assert whole["body"].read() == data
        ranged = client.get_job_output(vaultName="cold", jobId=job["JobId"],
                                       range=f"bytes={2 * MIB}-{4 * MIB - 1}")
        assert ranged["checksum"] == tree_hash(data[2 * MIB:4 * MIB])  # tree-hash aligned
        assert ranged["contentRange"] == f"bytes {2 * MIB}-{4 * MIB - 1}/{len(data)}"
        assert ranged["body"].read() == data[2 * MIB:4 * MIB]
        log = server.log()
        assert "restore requested" in log and "tier=Bulk" in log
        assert "archive brought back" not in log
        [listed] = copies(server, "cold")
        assert listed["Hot"] == "removed"  # served from the restored copy, not copied back
    finally:
        server.stop()


def _collected_later(server: ServerProcess, key: str) -> bool:
    """The removed hot bytes are on the garbage list (collected within a minute)."""
    with sqlite3.connect(server.data_dir / "metadata.sqlite3") as db:
        row = db.execute("SELECT 1 FROM garbage WHERE key = ?", (key,)).fetchone()
    return row is not None


def test_a_scrub_finds_a_bad_copy_and_it_is_made_again(copied: ServerProcess) -> None:
    client = copied.client()
    client.create_vault(vaultName="recopy")
    data = pattern(2 * MIB + 3, seed=14)
    archive_id = client.upload_archive(vaultName="recopy", body=data)["archiveId"]
    wait_verified(copied, "recopy", 1)
    second: Path = copied.second  # type: ignore[attr-defined]
    store = f"file://{second}"
    [bad_key] = copy_keys(copied.data_dir, archive_id).values()
    with open(second / "blobs" / bad_key[:2] / bad_key, "r+b") as file:
        file.seek(MIB)
        file.write(b"rot")
    report = json.loads(admin(copied, "--copy-url", store, "scrub").stdout)
    assert report["Corrupt"] == [] and report["Repaired"] == []
    assert [(c["ArchiveId"], c["Store"]) for c in report["BadCopies"]] == [
        (archive_id, f"file://{second.resolve()}")]
    # The copy worker makes it again from the good hot bytes (its retry is due at once).
    deadline = time.monotonic() + 30
    while True:
        [listed] = copies(copied, "recopy")
        if [(c["State"], c["Attempts"]) for c in listed["Copies"]] == [("verified", 2)]:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.2)
    [new_key] = copy_keys(copied.data_dir, archive_id).values()
    assert new_key != bad_key and stored_bytes(second, new_key) == data


def test_a_store_added_later_is_backfilled_paced(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        client = server.client()
        client.create_vault(vaultName="old")
        datas = {client.upload_archive(vaultName="old", body=pattern(MIB + n, seed=n))[
            "archiveId"]: pattern(MIB + n, seed=n) for n in range(3)}
        later = tmp_path / "added-later"
        store = f"file://{later}"
        refused = admin(server, "--copy-url", store, "backfill", "--store", "file:///elsewhere",
                        check_code=2)
        assert "Not a copy store of this server: file:///elsewhere" in refused.stderr
        started = time.monotonic()
        report = json.loads(admin(server, "--copy-url", store, "backfill", "--store",
                                  f"file://{later.resolve()}", "--rate", "1MiB").stdout)
        took = time.monotonic() - started
        assert report == {"Store": f"file://{later.resolve()}", "Copied": 3, "Failed": 0}
        assert took >= 2  # 3 MiB at 1 MiB/s (a quarter-second burst allowed)
        for archive_id, data in datas.items():
            [key] = copy_keys(server.data_dir, archive_id).values()
            assert stored_bytes(later, key) == data
        again = json.loads(admin(server, "--copy-url", store, "backfill", "--store",
                                 f"file://{later.resolve()}").stdout)
        assert (again["Copied"], again["Failed"]) == (0, 0)  # nothing owed any more
    finally:
        server.stop()


def test_copy_rate_paces_the_workers(tmp_path: Path) -> None:
    server = copying_server(tmp_path, "--copy-rate", "1MiB")
    try:
        client = server.client()
        client.create_vault(vaultName="slow")
        for n in range(3):
            client.upload_archive(vaultName="slow", body=pattern(MIB, seed=n))
        started = time.monotonic()
        wait_verified(server, "slow", 3)
        # 3 MiB at 1 MiB/s, a quarter-second burst allowed; unpaced it takes milliseconds.
        assert time.monotonic() - started >= 2.0
    finally:
        server.stop()


def _request_held_open(server: ServerProcess, vault: str) -> socket.socket:
    """An UploadArchive whose body never all comes: a request in flight until closed."""
    body = pattern(MIB)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"POST /-/vaults/{vault}/archives HTTP/1.1\r\nHost: icevault\r\n"
                  "x-amz-glacier-version: 2012-06-01\r\n"
                  f"x-amz-sha256-tree-hash: {tree_hash(body)}\r\n"
                  f"x-amz-content-sha256: {hashlib.sha256(body).hexdigest()}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:1000])
    return sock


def test_copies_give_way_while_a_request_is_in_flight(tmp_path: Path) -> None:
    """--background-share 0: a copy moves one block a half second while any request is
    being served (here one whose body trickles), and all at once when none is."""
    store = f"file://{tmp_path / 'second-disk'}"
    server = copying_server(tmp_path, "--background-share", "0", auth="off")
    try:
        client = server.client()
        client.create_vault(vaultName="busy")
        held = _request_held_open(server, "busy")
        try:
            time.sleep(0.2)
            assert metric(server, "icevault_requests_in_flight") == 2  # and this scrape
            client.upload_archive(vaultName="busy", body=pattern(32 * MIB))
            time.sleep(2.0)  # unyielding, the copy takes well under a second
            assert metric(server, "icevault_copies_owed_archives", store) == 1
        finally:
            held.close()
        # 64 blocks (read and read back) at 2 a second would take 32 s.
        wait_verified(server, "busy", 1, timeout=8.0)
        assert metric(server, "icevault_requests_in_flight") == 1
    finally:
        server.stop()
