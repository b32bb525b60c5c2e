"""Ctrl-C during ``icevault upload``: it stops within a second, names the upload and the
command that resumes it, and that same command sends only what the server lacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from icevault.core.treehash import MIB
from tests.support import ServerProcess

SIZE = 768 * MIB


def _parts_on_server(server: ServerProcess, vault: str) -> tuple[str | None, int]:
    client = server.client()
    uploads = client.list_multipart_uploads(vaultName=vault)["UploadsList"]
    if not uploads:
        return None, 0
    upload_id = uploads[0]["MultipartUploadId"]
    return upload_id, len(client.list_parts(vaultName=vault, uploadId=upload_id)["Parts"])


def test_ctrl_c_stops_at_once_and_the_same_command_resumes(
        sigv4_server: ServerProcess, tmp_path: Path) -> None:
    server = sigv4_server
    server.client().create_vault(vaultName="interrupted")
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:  # a sparse file: quick to make, read like any other
        file.truncate(SIZE)
    env = {**server.cli_env(), "XDG_STATE_HOME": str(tmp_path / "state")}
    command = [sys.executable, "-m", "icevault", "upload", str(big), "--vault", "interrupted",
               "--workers", "1", "--part-size", "1MiB", "--endpoint-url", server.url]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _parts_on_server(server, "interrupted")[1] < 20:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    _, err = process.communicate(timeout=30)
    stopped_in = time.monotonic() - signalled
    assert process.returncode == 130, err
    assert stopped_in < 1.5, f"took {stopped_in:.1f} s to stop"
    upload_id, sent = _parts_on_server(server, "interrupted")
    assert upload_id is not None and 20 <= sent < SIZE // MIB
    assert f"upload ID {upload_id}" in err
    assert "Run the same command to resume:" in err
    assert f"icevault upload {big} --vault interrupted" in err
    time.sleep(0.5)
    assert _parts_on_server(server, "interrupted")[1] == sent  # nothing more arrived
    # The same command resumes the same upload and sends only the rest.
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["uploadId"] == upload_id and result["resumedParts"] >= sent
    assert f"resuming upload {upload_id}" in resumed.stderr
    client = server.client()
    assert client.list_multipart_uploads(vaultName="interrupted")["UploadsList"] == []
    from icevault.client.files import tree_hash_file

    assert result["checksum"] == tree_hash_file(big) and result["size"] == SIZE
    # A finished upload is forgotten: the next run of the command is a new archive.
    state = json.loads((tmp_path / "state" / "icevault" / "uploads.json").read_text())
    assert state == []
    os.remove(big)


def test_ctrl_c_on_standard_input_aborts_unless_kept(sigv4_server: ServerProcess,
                                                     tmp_path: Path) -> None:
    server = sigv4_server
    server.client().create_vault(vaultName="piped")
    env = {**server.cli_env(), "XDG_STATE_HOME": str(tmp_path / "state")}
    for keep in (False, True):
        command = [sys.executable, "-m", "icevault", "upload", "-", "--vault", "piped",
                   "--part-size", "1MiB", "--endpoint-url", server.url,
                   *(["--keep-upload"] if keep else [])]
        process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdin is not None
        process.stdin.write(b"x" * (3 * MIB))  # more than a part: a multipart upload
        process.stdin.flush()
        deadline = time.monotonic() + 30
        while _parts_on_server(server, "piped")[1] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        text = err.decode()
        upload_id, _ = _parts_on_server(server, "piped")
        if keep:
            assert upload_id is not None and f"upload {upload_id} kept" in text
        else:
            assert upload_id is None and "aborted" in text
        assert "upload ID: " in text  # said at the start, before anything could go wrong
