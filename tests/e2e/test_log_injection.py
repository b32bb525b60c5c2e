"""Text logs are one line per record: what a client sends (a path, a header, a name) cannot
start a line of its own."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

from tests.support import ServerProcess

FORGED = "2026-01-01 00:00:00,000 INFO icevault.access: forged-line"
LINE_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR) ")


def _send(server: ServerProcess, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=b"{}")
        return conn.getresponse().status
    finally:
        conn.close()


def test_control_characters_are_escaped_in_text_logs(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        forged = FORGED.replace(" ", "%20")
        for path in (f"/_icevault/admin/X%0A{forged}", f"/-/vaults/v%0D%0A{forged}",
                     f"/console/x%0A{forged}", f"/-/vaults/v%1B%5B31m{forged}",
                     f"/-/vaults/v%E2%80%A8{forged}"):
            assert 400 <= _send(server, "POST", path) < 500
        server.stop()
        text = server.log()
        lines = text.splitlines()
        assert lines
        for line in lines:
            assert LINE_START.match(line), f"a line that is not a record: {line!r}"
            assert not line.startswith("2026-01-01"), f"a forged record: {line!r}"
        assert "\x1b" not in text and "\u2028" not in text
        assert text.count("forged-line") >= 5  # there, escaped, inside real records
        assert "\\n2026-01-01" in text
    finally:
        server.stop()


def test_json_logs_keep_what_was_sent_as_one_field(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--log-format", "json"]).start()
    try:
        _send(server, "POST", f"/_icevault/admin/X%0A{FORGED.replace(' ', '%20')}")
        server.stop()
        for line in server.log().splitlines():
            json.loads(line)  # every line is one whole record
    finally:
        server.stop()


def test_json_times_are_iso_8601_utc_and_a_stop_is_logged(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--log-format", "json"]).start()
    server.client().list_vaults()
    server.stop()
    records = [json.loads(line) for line in server.log().splitlines()]
    stamp = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
    assert records and all(stamp.fullmatch(r["time"]) for r in records), records[0]["time"]
    events = [r.get("event") for r in records]
    assert events[-2:] == ["stopping", "stopped"], events[-4:]
    assert records[-2]["signal"] == "SIGTERM"
