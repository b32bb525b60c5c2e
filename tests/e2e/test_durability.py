"""Crash safety and flat memory, against a real server process."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from icevault.core.treehash import MIB, TreeHasher, tree_hash
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore, sqlite_url
from tests.support import ServerProcess, pattern, wait_for_job


class Workload:
    """Uploads (single and multipart) and deletes from several threads, remembering what the
    server acknowledged."""

    def __init__(self, server: ServerProcess, vault: str, seed: int) -> None:
        self.server = server
        self.vault = vault
        self.rng = random.Random(seed)
        self.acked: dict[str, str] = {}  # archive id -> tree hash of the bytes sent
        self.deleted: set[str] = set()  # acknowledged deletes
        self.deleting: set[str] = set()  # deletes sent (a crash may cut off their answer)
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self, worker: int) -> None:
        client = self.server.client(connect_timeout=2, read_timeout=10)
        rng = random.Random(worker * 7919 + self.rng.random())
        while not self.stop.is_set():
            try:
                choice = rng.random()
                if choice < 0.2 and self.acked:
                    with self.lock:
                        victim = rng.choice(sorted(set(self.acked) - self.deleting) or [""])
                        if victim:
                            self.deleting.add(victim)
                    if victim:
                        client.delete_archive(vaultName=self.vault, archiveId=victim)
                        with self.lock:
                            self.deleted.add(victim)
                elif choice < 0.45:
                    self._multipart(client, rng)
                else:
                    data = pattern(rng.randint(1, 3 * MIB), seed=rng.randint(0, 200))
                    response = client.upload_archive(vaultName=self.vault, body=data)
                    with self.lock:
                        self.acked[response["archiveId"]] = tree_hash(data)
            except (ClientError, BotoCoreError, OSError):
                if self.stop.is_set():
                    return
                time.sleep(0.05)

    def _multipart(self, client: Any, rng: random.Random) -> None:
        data = pattern(rng.randint(MIB + 1, 4 * MIB), seed=rng.randint(0, 200))
        upload_id = client.initiate_multipart_upload(vaultName=self.vault, partSize=str(MIB))["uploadId"]
        for start in range(0, len(data), MIB):
            chunk = data[start : start + MIB]
            client.upload_multipart_part(
                vaultName=self.vault, uploadId=upload_id,
                range=f"bytes {start}-{start + len(chunk) - 1}/*", body=chunk,
            )
        response = client.complete_multipart_upload(
            vaultName=self.vault, uploadId=upload_id, archiveSize=str(len(data)),
            checksum=tree_hash(data),
        )
        with self.lock:
            self.acked[response["archiveId"]] = tree_hash(data)


def inventory(client: Any, vault: str) -> dict[str, dict[str, Any]]:
    job_id = client.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})["jobId"]
    wait_for_job(client, vault, job_id, timeout=60)
    body = json.loads(client.get_job_output(vaultName=vault, jobId=job_id)["body"].read())
    return {a["ArchiveId"]: a for a in body["ArchiveList"]}


def test_sigkill_loses_no_acknowledged_archive(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    client = fresh_server.client()
    client.create_vault(vaultName="crash")
    workload = Workload(fresh_server, "crash", seed=42)
    rng = random.Random(7)
    for _round in range(3):
        workload.stop.clear()
        threads = [threading.Thread(target=workload.run, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(1.0, 2.5))
        fresh_server.kill()
        workload.stop.set()
        for thread in threads:
            thread.join(timeout=30)
        fresh_server.start()
    client = fresh_server.client()
    listed = inventory(client, "crash")
    live = set(workload.acked) - workload.deleting
    assert live, "the workload acknowledged nothing; the test proves nothing"
    assert live <= set(listed), "an acknowledged archive is missing after the crash"
    assert not (workload.deleted & set(listed)), "an acknowledged delete was undone"
    # Every visible archive, acknowledged or caught in flight, is whole and byte-exact.
    for archive_id, item in listed.items():
        if archive_id in workload.acked:
            assert item["SHA256TreeHash"] == workload.acked[archive_id]
        job_id = client.initiate_job(
            vaultName="crash", jobParameters={"Type": "archive-retrieval", "ArchiveId": archive_id}
        )["jobId"]
        wait_for_job(client, "crash", job_id)
        body = client.get_job_output(vaultName="crash", jobId=job_id)["body"].read()
        assert len(body) == item["Size"]
        assert tree_hash(body) == item["SHA256TreeHash"]
    described = client.describe_vault(vaultName="crash")
    assert described["NumberOfArchives"] == len(listed)
    assert described["SizeInBytes"] == sum(a["Size"] for a in listed.values())
    # Uploads caught mid-way may stay open (a client may resume them); abort them so that
    # what remains on disk is exactly what the metadata refers to.
    for upload in client.list_multipart_uploads(vaultName="crash")["UploadsList"]:
        client.abort_multipart_upload(vaultName="crash", uploadId=upload["MultipartUploadId"])
    fresh_server.stop()
    fresh_server.start()  # the start-up pass collects garbage and sweeps orphans
    fresh_server.stop()
    data_dir = fresh_server.data_dir
    meta = SqlMetadataStore(sqlite_url(data_dir / "metadata.sqlite3"))
    blobs = LocalBlobStore(data_dir)
    on_disk = set(blobs.iter_keys())
    assert meta.blob_keys_in_use(sorted(on_disk)) == on_disk, "orphaned bytes remain"
    assert set(blobs.iter_staging_keys()) == set()
    assert list((data_dir / "tmp").iterdir()) == []
    meta.close()


class PeakRss:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss())
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def generated(size: int, block: int = 8 * MIB) -> Any:
    unit = pattern(block, seed=11)
    sent = 0
    while sent < size:
        piece = unit[: min(block, size - sent)]
        sent += len(piece)
        yield piece


def test_two_gib_through_the_server_keeps_memory_flat(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="off").start()
    try:
        size = 2 * 1024**3
        hasher = TreeHasher()
        for piece in generated(size):
            hasher.update(piece)
        expected = hasher.hexdigest()
        server.client().create_vault(vaultName="big")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        with PeakRss(server) as upload_rss:
            conn.request(
                "POST", "/-/vaults/big/archives", body=generated(size),
                headers={"Content-Length": str(size), "x-amz-sha256-tree-hash": expected,
                         "x-amz-glacier-version": "2012-06-01"},
            )
            response = conn.getresponse()
            response.read()
        assert response.status == 201, response.headers
        archive_id = response.getheader("x-amz-archive-id")
        assert response.getheader("x-amz-sha256-tree-hash") == expected
        client = server.client()
        job_id = client.initiate_job(
            vaultName="big", jobParameters={"Type": "archive-retrieval", "ArchiveId": archive_id}
        )["jobId"]
        wait_for_job(client, "big", job_id)
        with PeakRss(server) as download_rss:
            conn.request("GET", f"/-/vaults/big/jobs/{job_id}/output")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("x-amz-sha256-tree-hash") == expected
            check = TreeHasher()
            buffer = bytearray(4 * MIB)
            view = memoryview(buffer)
            received = 0
            while n := response.readinto(buffer):
                check.update(view[:n])
                received += n
        conn.close()
        assert received == size
        assert check.hexdigest() == expected
        limit = 150 * 1024 * 1024
        assert upload_rss.peak < limit, f"upload peak RSS {upload_rss.peak / MIB:.0f} MiB"
        assert download_rss.peak < limit, f"download peak RSS {download_rss.peak / MIB:.0f} MiB"
        print(f"peak RSS: upload {upload_rss.peak / MIB:.0f} MiB, download {download_rss.peak / MIB:.0f} MiB")
    finally:
        server.stop()
