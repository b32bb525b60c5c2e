"""What an operator sees: Prometheus metrics that count what really happened, and health
endpoints that say whether a server can serve."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from icevault.core.treehash import MIB
from tests.e2e.test_access import admin
from tests.e2e.test_integrity import flip_local
from tests.seaweed import SeaweedServer
from tests.support import ServerProcess, pattern, wait_for_job


def scrape(server: ServerProcess) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]],
                                                    float]]:
    with urllib.request.urlopen(server.metrics_request(), timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture()
def hook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_metrics_count_what_happened(tmp_path: Path, hook: str) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--webhook-allow-private"]).start()
    try:
        client = server.client()
        client.create_vault(vaultName="counted")
        account = client.describe_vault(vaultName="counted")["VaultARN"].split(":")[4]
        sizes = [3 * MIB + 1, 1000]
        archives = [client.upload_archive(vaultName="counted", body=pattern(n, seed=n))[
            "archiveId"] for n in sizes]
        with pytest.raises(ClientError):  # bytes that do not match the tree hash sent
            client.upload_archive(vaultName="counted", body=b"abc", checksum="00" * 32)
        client.initiate_multipart_upload(vaultName="counted", partSize=str(MIB))
        with pytest.raises(ClientError):
            client.describe_vault(vaultName="missing")
        topic = admin(server, "create-topic", "ready", "--url", f"{hook}/ready")["TopicArn"]
        dead = admin(server, "create-topic", "dead", "--url", "http://127.0.0.1:9/")["TopicArn"]
        assert topic.split(":")[4] == account
        job = client.initiate_job(vaultName="counted", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archives[0], "SNSTopic": topic})
        wait_for_job(client, "counted", job["jobId"])
        other = client.initiate_job(vaultName="counted", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archives[1], "SNSTopic": dead})
        wait_for_job(client, "counted", other["jobId"])
        # A topic at the server's own address, and an ARN nobody registered.
        itself = admin(server, "create-topic", "itself", "--url",
                       f"{server.url}/_icevault/admin/CreateAccount")["TopicArn"]
        for sns in (itself, f"arn:aws:sns:us-east-1:{account}:nobody-registered-it"):
            wait_for_job(client, "counted", client.initiate_job(
                vaultName="counted", jobParameters={
                    "Type": "archive-retrieval", "ArchiveId": archives[1], "SNSTopic": sns,
                })["jobId"])
        output = client.get_job_output(vaultName="counted", jobId=job["jobId"])
        assert len(output["body"].read()) == sizes[0]
        text, samples = scrape(server)
        assert value(samples, "icevault_requests_total", operation="UploadArchive",
                     status="201") == 2
        assert value(samples, "icevault_requests_total", operation="UploadArchive",
                     status="400") == 1
        assert value(samples, "icevault_requests_total", operation="DescribeVault",
                     status="404") == 1
        assert value(samples, "icevault_request_duration_seconds_count",
                     operation="GetJobOutput") == 1
        assert value(samples, "icevault_upload_checksum_mismatches_total") == 1
        assert value(samples, "icevault_archives") == 2
        assert value(samples, "icevault_archive_bytes") == sum(sizes)
        assert value(samples, "icevault_multipart_uploads_open") == 1
        assert value(samples, "icevault_jobs", state="Succeeded") == 4
        assert value(samples, "icevault_jobs", state="InProgress") == 0
        assert value(samples, "icevault_job_completion_delay_seconds_count") == 4
        assert value(samples, "icevault_received_bytes_total") >= sum(sizes) + 3
        assert value(samples, "icevault_sent_bytes_total") >= sizes[0]
        assert value(samples, "icevault_corrupt_archives") == 0
        assert value(samples, "process_resident_memory_bytes") > 0
        # Deliveries are made off the job loop: wait for both outcomes to be counted.
        for _ in range(100):
            _, samples = scrape(server)
            if value(samples, "icevault_notifications_total", outcome="failed") >= 1 and value(
                    samples, "icevault_notifications_total", outcome="refused") == 1:
                break
            time.sleep(0.05)
        assert value(samples, "icevault_notifications_total", outcome="delivered") == 1
        # Each attempt at the dead topic counts: on a loaded machine its first retries may
        # have come by now.
        assert value(samples, "icevault_notifications_total", outcome="failed") >= 1
        assert value(samples, "icevault_notifications_total", outcome="refused") == 1
        assert value(samples, "icevault_notifications_total", outcome="undeliverable") == 1
        assert len(_Hook.received) == 1
        # No secrets, and no label with unbounded values.
        key, secret = server.root_credentials()
        for private in (key, secret, account, "counted", job["jobId"], *archives):
            assert private not in text
        # Corruption found at rest shows (and should be zero).
        flip_local(server.data_dir, archives[0], 5)
        scrub = subprocess.run([sys.executable, "-m", "icevault", "admin", "--data-dir",
                                str(server.data_dir), "scrub"], capture_output=True, text=True,
                               timeout=120)
        assert scrub.returncode == 3, scrub.stderr  # the scrub's "corruption found"
        _, samples = scrape(server)
        assert value(samples, "icevault_corrupt_archives") == 1
        # The scrub from the command line was a whole pass: it counts as the last one.
        assert value(samples, "icevault_scrub_last_finished_timestamp_seconds") > 1.7e9
    finally:
        server.stop()


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="off", extra_args=["--metrics", "off"]).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{server.url}/metrics", timeout=10)
        with exc.value:
            assert exc.value.code == 404
            assert json.loads(exc.value.read())["code"] == "ResourceNotFoundException"
    finally:
        server.stop()


def _health(url: str) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_health_needs_no_credentials_and_says_when_a_store_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "icevault")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "icevault")
    objects = SeaweedServer().start()
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--blob-url", objects.new_store_url()]).start()
    try:
        assert _health(f"{server.url}/health/live") == (200, {"status": "live"})
        assert _health(f"{server.url}/health/ready") == (200, {"status": "ready"})
        objects.stop()
        status, body = _health(f"{server.url}/health/ready")
        assert status == 503
        assert body["status"] == "unready"
        assert body["reason"].startswith("the blob store does not answer")
        assert "127.0.0.1" not in body["reason"]  # details go to the log only
        assert _health(f"{server.url}/health/live") == (200, {"status": "live"})
        assert "not ready: the blob store does not answer" in server.log()
    finally:
        server.stop()
        objects.stop()


def test_json_log_has_a_line_per_request_and_event_and_no_secret(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--log-format", "json"]).start()
    try:
        client = server.client()
        created = client.create_vault(vaultName="logged")
        data = pattern(MIB + 5, seed=4)
        uploaded = client.upload_archive(vaultName="logged", body=data)
        with pytest.raises(ClientError):
            client.describe_vault(vaultName="absent")
        job = client.initiate_job(vaultName="logged", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": uploaded["archiveId"]})
        wait_for_job(client, "logged", job["jobId"])
        lines = [json.loads(line) for line in server.log().splitlines()
                 if line.startswith("{")]
        requests = [r for r in lines if r.get("event") == "request"]
        by_id = {r["request_id"]: r for r in requests}
        upload = by_id[uploaded["ResponseMetadata"]["RequestId"]]
        _key, secret = server.root_credentials()
        account = created["location"].split("/")[1]
        assert upload["operation"] == "UploadArchive" and upload["vault"] == "logged"
        assert (upload["status"], upload["error_code"], upload["bytes_in"]) == (201, None,
                                                                                 len(data))
        assert upload["account"] == account
        assert upload["principal"] == f"arn:aws:iam::{account}:root"
        assert upload["duration_ms"] >= 0 and upload["level"] == "INFO"
        assert {"time", "logger", "message"} <= set(upload)
        refused = [r for r in requests if r["operation"] == "DescribeVault"
                   and r["status"] == 404]
        assert refused and refused[0]["error_code"] == "ResourceNotFoundException"
        completed = [r for r in lines if r.get("event") == "job_completed"]
        assert completed and completed[0]["job_id"] == job["jobId"]
        assert completed[0]["status"] == "Succeeded"
        text = server.log()
        assert secret not in text and "Signature=" not in text
        assert all(line.startswith("{") for line in text.splitlines()[1:] if line.strip()), \
            [line for line in text.splitlines() if not line.startswith("{")][:5]
    finally:
        server.stop()


def _series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_no_request_adds_a_metric_series(tmp_path: Path) -> None:
    """5,000 requests with names of the caller's choosing (admin actions, console and
    Glacier paths) once made 105,107 series and 35 MB of exposition: labels take only
    values from the server's own sets now."""
    import http.client

    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        scrape(server)  # every fixed series exists once the first scrape is done
        before, _ = scrape(server)
        before_rss = server.rss()
        for i in range(1500):
            name = f"Act{i}" + "x" * 2000
            for method, path in (("POST", f"/_icevault/admin/{name}"),
                                 ("GET", f"/-/vaults/v{i}/{name}"),
                                 ("POST", f"/console/{name}")):
                # A connection each: a refused body closes its connection (by design), and
                # reusing one would race that close.
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                try:
                    conn.request(method, path, body=b"{}")
                    conn.getresponse().read()
                finally:
                    conn.close()
        after, samples = scrape(server)
        from icevault.server.ops.metrics import OPERATIONS

        labels = {dict(key[1]).get("operation") for key in samples} - {None}
        assert labels <= OPERATIONS | {"unknown"}, labels - OPERATIONS
        # A few fixed label sets came in (unknown, console:not_found, their histograms);
        # 4,500 names did not.
        assert len(_series(after)) <= len(_series(before)) + 100, len(_series(after))
        assert "Act1" not in after
        assert value(samples, "icevault_requests_total", operation="unknown",
                     status="400") >= 1500  # unsigned admin calls
        assert value(samples, "icevault_requests_total", operation="unknown",
                     status="404") >= 1500  # Glacier paths that name no operation
        assert value(samples, "icevault_requests_total", operation="console:not_found",
                     status="404") >= 1500  # the console's own "no such page"
        assert server.rss() - before_rss < 16 * 1024 * 1024
    finally:
        server.stop()


def test_metrics_need_the_operators_token(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        token_file = server.data_dir / "metrics-token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Basic " + token_file.read_text().strip()}):
            request = urllib.request.Request(f"{server.url}/metrics", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as exc:
                urllib.request.urlopen(request, timeout=10)
            with exc.value:
                assert exc.value.code == 403
                assert json.loads(exc.value.read())["code"] == "AccessDeniedException"
        text, _ = scrape(server)
        assert "icevault_archives " in text
    finally:
        server.stop()
    # --metrics open: anyone who reaches the listener scrapes.
    opened = ServerProcess(tmp_path / "open", auth="sigv4", extra_args=["--metrics", "open"])
    opened.start()
    try:
        with urllib.request.urlopen(f"{opened.url}/metrics", timeout=10) as response:
            assert b"icevault_archives " in response.read()
    finally:
        opened.stop()
