"""Where notifications may go: only addresses the operator's policy allows, never by a
redirect, and what an account sees of a delivery is its outcome, not the connection's story
(a port-scan oracle otherwise)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.e2e.test_admin_api import AdminCli, _credentials
from tests.support import ServerProcess, wait_for_job


class _Receiver(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []
    redirect_to: ClassVar[str | None] = None

    def do_POST(self) -> None:
        self.hits.append(self.path)
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/moved" and self.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.redirect_to)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[int]:
    _Receiver.hits.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _notify(server: ServerProcess, topic_url: str, vault: str) -> str:
    operator = AdminCli(server, remote=False)
    made = operator("create-topic", vault, "--url", topic_url)
    assert made.returncode == 0, made.stderr
    arn = json.loads(made.stdout)["TopicArn"]
    client = server.client()
    client.create_vault(vaultName=vault)
    archive = client.upload_archive(vaultName=vault, body=b"notify me")["archiveId"]
    job = client.initiate_job(vaultName=vault, jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive, "SNSTopic": arn})["jobId"]
    wait_for_job(client, vault, job)
    return str(job)


def _outcomes(server: ServerProcess, vault: str, wanted: int) -> list[dict[str, Any]]:
    operator = AdminCli(server, remote=False)
    deadline = time.monotonic() + 15
    while True:
        rows = json.loads(operator("list-notifications", "--vault", vault).stdout)[
            "Notifications"]
        if len(rows) >= wanted or time.monotonic() > deadline:
            return list(rows)
        time.sleep(0.1)


def test_loopback_is_refused_unless_the_operator_allows_it(tmp_path: Path,
                                                           receiver: int) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        _notify(server, f"http://127.0.0.1:{receiver}/hook", "by-address")
        _notify(server, f"http://localhost:{receiver}/hook", "by-name")  # resolves to loopback
        for vault in ("by-address", "by-name"):
            assert [r["Status"] for r in _outcomes(server, vault, 1)] == ["refused"]
        assert _Receiver.hits == []
        # Anyone but the operator sees the outcome: not the target, not why.
        operator = AdminCli(server, remote=True)
        assert operator("create-user", "viewer").returncode == 0
        viewer = json.loads(operator("create-access-key", "--user", "viewer").stdout)
        assert operator("put-user-policy", "--user", "viewer", "--policy-name", "p",
                        "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "icevault:ListNotifications",
                             "Resource": "*"}]})).returncode == 0
        as_viewer = AdminCli(server, remote=True, profile="v", credentials=_credentials(
            tmp_path / "v", {"v": viewer["AccessKey"]}))
        deadline = time.monotonic() + 5
        while (shown := as_viewer("list-notifications", "--vault", "by-address")).returncode:
            assert time.monotonic() < deadline, shown.stderr
            time.sleep(0.1)
        rows = json.loads(shown.stdout)["Notifications"]
        assert [(n["Status"], "Target" in n) for n in rows] == [("refused", False)]
        assert str(receiver) not in shown.stdout
    finally:
        server.stop()
    allowed = ServerProcess(tmp_path / "lan", auth="sigv4",
                            extra_args=["--webhook-allow-private"]).start()
    try:
        _notify(allowed, f"http://127.0.0.1:{receiver}/hook", "lan")
        assert [r["Status"] for r in _outcomes(allowed, "lan", 1)] == ["delivered"]
        assert _Receiver.hits == ["/hook"]
    finally:
        allowed.stop()


def test_redirects_are_not_followed(tmp_path: Path, receiver: int) -> None:
    _Receiver.redirect_to = f"http://127.0.0.1:{receiver}/stolen"
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--webhook-allow-private"]).start()
    try:
        _notify(server, f"http://127.0.0.1:{receiver}/moved", "moved")
        rows = _outcomes(server, "moved", 1)
        assert rows[0]["Status"] == "failed"
        assert "/stolen" not in _Receiver.hits
        assert "/moved" in _Receiver.hits
    finally:
        _Receiver.redirect_to = None
        server.stop()


def test_accounts_see_outcomes_without_connection_detail(tmp_path: Path) -> None:
    """A closed port and an open one looked different to an account (a port scan through
    the notification log): both are 'failed' now, and the detail is in the operator's log."""
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--webhook-allow-private"]).start()
    try:
        operator = AdminCli(server, remote=False)
        assert operator("create-account", "--account-id", "222233334444").returncode == 0
        _notify(server, "http://127.0.0.1:9/closed", "scan")
        rows = _outcomes(server, "scan", 1)
        assert rows[0]["Status"] == "failed"
        text = json.dumps(rows)
        for detail in ("Errno", "refused", "Connection", "ECONNREFUSED"):
            assert detail not in text
        assert "notification failed" in server.log()
    finally:
        server.stop()
