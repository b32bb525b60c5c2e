"""``icevault migrate`` from a source that lies: what it claims cannot grow the migrator's
memory, what it lists is validated before anything moves, what it says cannot reach the
terminal raw, and bytes that fail the source's own checksum end with exit code 3."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from icevault.core.treehash import MIB, tree_hash
from icevault.testing import Fault, IcevaultServer
from tests.e2e.test_migrate import VAULT, Migration
from tests.support import pattern, peak_rss_until_exit

JOB_ID = "J" * 92


class _LyingSource(BaseHTTPRequestHandler):
    """A Glacier endpoint whose one inventory job claims a petabyte of output."""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _job(self) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {"JobId": JOB_ID, "Action": "InventoryRetrieval", "StatusCode": "Succeeded",
                "Completed": True, "CreationDate": now, "CompletionDate": now,
                "InventorySizeInBytes": 2**50, "VaultARN": "arn:aws:glacier:us-east-1:1:vaults/p",
                "InventoryRetrievalParameters": {"Format": "JSON"}}

    def do_GET(self) -> None:
        if self.path.endswith("/jobs") or "/jobs?" in self.path:
            self._reply(200, {"JobList": [self._job()], "Marker": None})
        elif self.path.endswith(f"/jobs/{JOB_ID}"):
            self._reply(200, self._job())
        else:  # the output itself: never to be asked for
            self._reply(500, {"code": "ServiceUnavailableException", "message": "no",
                              "type": "Server"})

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture()
def liar() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LyingSource)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def target() -> Iterator[IcevaultServer]:
    with IcevaultServer() as running:
        yield running


def _migration(source_url: str, target: IcevaultServer, work: Path) -> Migration:
    stand_in = IcevaultServer.__new__(IcevaultServer)  # only its URL and keys are read
    stand_in.endpoint_url = source_url
    stand_in.access_key_id, stand_in.secret_access_key = "AKIVSOURCE0000000000", "secret"
    return Migration(stand_in, target.client(), target.endpoint_url,
                     (target.access_key_id, target.secret_access_key), work)


def test_a_claimed_petabyte_inventory_does_not_grow_memory(liar: str, target: IcevaultServer,
                                                           tmp_path: Path) -> None:
    """Before, RSS reached 1.5 GB in 22 s before one byte arrived (a chunk planned per
    8 MiB of the claim)."""
    migration = _migration(liar, target, tmp_path)
    process = migration.start()
    peak = peak_rss_until_exit(process)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert "bytes free" in err and str(2**50) in err
    assert peak < 250 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MiB"


def _inventory_file(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"VaultARN": "x", "InventoryDate": "y", "ArchiveList": entries}))
    return path


def _entry(archive_id: str, size: Any = 5, tree: str = "a" * 64) -> dict[str, Any]:
    return {"ArchiveId": archive_id, "ArchiveDescription": "", "Size": size,
            "CreationDate": "2020-01-01T00:00:00Z", "SHA256TreeHash": tree}


@pytest.mark.parametrize(("entries", "said"), [
    ([_entry("a" * 100), _entry("b" * 100), _entry("a" * 100)], "more than once"),
    ([_entry("a" * 100, size=1e300)], "Size"),
    ([_entry("a" * 100, size=True)], "Size"),
    ([_entry("a" * 100, size=-5)], "Size"),
    ([_entry("a" * 100, size=2.5)], "Size"),
    ([_entry("a" * 100, size=None)], "Size"),
    ([_entry("evil\x1b[2J\x1b[31mred\nline")], "not a Glacier archive ID"),
])
def test_a_bad_inventory_is_refused_whole_and_said_safely(
        liar: str, target: IcevaultServer, tmp_path: Path, entries: list[dict[str, Any]],
        said: str) -> None:
    migration = _migration(liar, target, tmp_path)
    inventory = _inventory_file(tmp_path / "inventory.json", entries)
    result = migration.run("--inventory", str(inventory), timeout=120)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert said in result.stderr
    assert "Traceback" not in result.stderr
    for output in (result.stdout, result.stderr):
        assert "\x1b" not in output
        assert output.count("\n") <= 2  # one error line (and perhaps a blank one)
    assert VAULT not in [v["VaultName"] for v in target.client().list_vaults()["VaultList"]]


def test_bytes_failing_the_sources_own_checksum_exit_3(tmp_path: Path) -> None:
    with IcevaultServer() as source, IcevaultServer() as target:
        client = source.client()
        client.create_vault(vaultName=VAULT)
        data = pattern(2 * MIB + 3, seed=4)
        archive = client.upload_archive(vaultName=VAULT, body=data)["archiveId"]
        entry = {**_entry(archive, size=len(data), tree=tree_hash(data))}
        inventory = _inventory_file(tmp_path / "inventory.json", [entry])
        source.inject(Fault.corrupt_body("GetJobOutput", times=1000))
        migration = Migration(source, target.client(), target.endpoint_url,
                              (target.access_key_id, target.secret_access_key), tmp_path)
        result = migration.run("--inventory", str(inventory), timeout=300)
        assert result.returncode == 3, (result.stdout, result.stderr)
        assert f"failed: {archive}" in result.stderr
        assert os.path.exists(migration.state)
        listed = target.client().list_vaults()["VaultList"]
        assert all(v["NumberOfArchives"] == 0 for v in listed)
