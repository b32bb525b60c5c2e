"""A job waiting on a restore that is still running, against moto's S3 (which restores at
once) behind a proxy that reports the restore as ongoing until the test lets it finish.
The server's clock is the testing kit's, so the minute between polls passes at once."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.copies import hot_bytes_removed
from icevault.core.treehash import MIB, tree_hash
from icevault.testing import IcevaultServer
from tests.support import pattern


class SlowRestores:
    """Forwards every request to moto; while ``restoring`` is set, HeadObject says a restore
    is still under way whatever moto says."""

    def __init__(self, upstream_port: int) -> None:
        self.restoring = True
        self.heads = 0
        self.restores = 0
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                conn.request(self.command, self.path, body=body,
                             headers=dict(self.headers.items()))
                upstream = conn.getresponse()
                data = upstream.read()
                headers = dict(upstream.getheaders())
                if self.command == "HEAD":
                    proxy.heads += 1
                    if proxy.restoring and "x-amz-restore" in {k.lower() for k in headers}:
                        headers = {k: v for k, v in headers.items()
                                   if k.lower() != "x-amz-restore"}
                        headers["x-amz-restore"] = 'ongoing-request="true"'
                if self.command == "POST" and "restore" in self.path:
                    proxy.restores += 1
                self.send_response(upstream.status)
                for name, value in headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "server",
                                            "date"):
                        self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            # http.server's names for the handlers of each method.
            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.port = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def slow_restores() -> Iterator[SlowRestores]:
    from bench.peers import start_moto

    moto = start_moto()
    assert moto is not None, "moto_server is installed with the test extra"
    proxy = SlowRestores(moto.port)
    yield proxy
    proxy.close()
    moto.stop()


def _copy_states(data_dir: Path, archive_id: str) -> list[str]:
    """The copies' states, as ``icevault admin copies`` says them."""
    listed = subprocess.run(
        [sys.executable, "-m", "icevault", "admin", "--data-dir", str(data_dir), "copies",
         "--vault", "v", "--archive-id", archive_id],
        capture_output=True, text=True, timeout=120, check=True)
    [archive] = json.loads(listed.stdout)["Archives"]
    return [copy["State"] for copy in archive["Copies"]]


def test_a_job_waits_while_the_restore_runs_then_serves_exact_bytes(
        slow_restores: SlowRestores, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "copies")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "copies")
    store = (f"s3://slow-cold/icevault?endpoint=http://127.0.0.1:{slow_restores.port}"
             "&region=us-east-1&storage-class=DEEP_ARCHIVE")
    # Forked from the kit's warm launcher (started earlier by another test, perhaps): the
    # server still gets these AWS credentials, the test's environment as it is now.
    with IcevaultServer(extra_args=["--copy-url", store, "--hot-days", "0"]) as server:
        client = server.client()
        client.create_vault(vaultName="v")
        data = pattern(3 * MIB + 11, seed=31)
        archive_id = client.upload_archive(vaultName="v", body=data)["archiveId"]
        deadline = time.monotonic() + 30
        while not hot_bytes_removed(server.data_dir, archive_id):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        job_id = client.initiate_job(vaultName="v", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Expedited"})["jobId"]
        server.advance_clock(seconds=1)
        job = client.describe_job(vaultName="v", jobId=job_id)
        assert (job["StatusCode"], job["Completed"]) == ("InProgress", False)
        assert "to be restored, Standard tier (Expedited is not offered there" in (
            job["StatusMessage"])
        assert slow_restores.restores == 1
        assert _copy_states(server.data_dir, archive_id) == ["restoring"]
        heads = slow_restores.heads
        server.advance_clock(seconds=30)  # not a minute yet: nobody asks
        assert slow_restores.heads == heads
        server.advance_clock(seconds=31)  # asked again, still running: no second restore
        assert slow_restores.heads == heads + 1 and slow_restores.restores == 1
        assert client.describe_job(vaultName="v", jobId=job_id)["StatusCode"] == "InProgress"
        slow_restores.restoring = False
        server.advance_clock(seconds=61)
        job = client.describe_job(vaultName="v", jobId=job_id)
        assert job["StatusCode"] == "Succeeded", job
        output = client.get_job_output(vaultName="v", jobId=job_id)
        assert output["checksum"] == tree_hash(data)
        assert output["body"].read() == data
        # Restored until the expiry moto set: the restore's time and the days asked (the
        # job output's day, and one more).
        [state] = _copy_states(server.data_dir, archive_id)
        assert state.startswith("restored until "), state
        until = datetime.fromisoformat(state.removeprefix("restored until "))
        assert timedelta(days=2, minutes=-2) < until - datetime.now(UTC) <= timedelta(days=2)
        # The wait is measured on the server's clock: the restore was asked at +1 s and
        # the job completed at +123 s.
        token = (server.data_dir / "metrics-token").read_text().strip()
        request = urllib.request.Request(f"{server.endpoint_url}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            lines = response.read().decode().splitlines()
        assert "icevault_restore_wait_seconds_count 1.0" in lines
        assert 'icevault_restore_wait_seconds_bucket{le="60.0"} 0.0' in lines
        assert 'icevault_restore_wait_seconds_bucket{le="300.0"} 1.0' in lines
