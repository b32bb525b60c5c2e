"""Flat memory under large transfers, against a real server process. (Crash safety is
`python -m bench crash`, whose slice runs in test_harnesses.py.)"""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

from icevault.core.treehash import MIB, TreeHasher
from tests.support import ServerProcess, pattern, wait_for_job


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
