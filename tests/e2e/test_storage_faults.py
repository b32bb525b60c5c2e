"""Storage that fails under the server: a full disk, a file system's size limit."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from icevault.core.treehash import tree_hash
from tests.support import ServerProcess, pattern, raw_request, wait_for_job


def test_full_disk_is_a_clear_503_that_leaks_nothing(tmp_path: Path,
                                                      tmpfs: Callable[..., Path]) -> None:
    data = tmpfs(tmp_path / "small", "40m") / "data"
    server = ServerProcess(data, auth="sigv4").start()
    try:
        client = server.client()
        client.create_vault(vaultName="full")
        stored: dict[str, bytes] = {}
        refusal = None
        for index in range(40):
            body = pattern(3 << 20, seed=index)
            try:
                archive = client.upload_archive(vaultName="full", body=body)
            except ClientError as exc:
                refusal = exc
                break
            stored[archive["archiveId"]] = body
        assert refusal is not None, "the 40 MiB disk never filled"
        assert stored, "nothing fitted before the disk was full"
        assert refusal.response["Error"]["Code"] == "ServiceUnavailableException"
        assert refusal.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert "space" in refusal.response["Error"]["Message"]
        assert list((data / "tmp").iterdir()) == []
        assert "Traceback" not in server.log()
        # acknowledged archives are intact, and reads go on while the disk is full
        for archive_id, body in list(stored.items())[-3:]:
            job = client.initiate_job(vaultName="full", jobParameters={
                "Type": "archive-retrieval", "ArchiveId": archive_id})
            wait_for_job(client, "full", job["jobId"])
            output = client.get_job_output(vaultName="full", jobId=job["jobId"])
            assert output["body"].read() == body
            assert output["checksum"] == tree_hash(body)
        assert client.describe_vault(vaultName="full")["NumberOfArchives"] == len(stored)
    finally:
        server.stop()


def _fs_type(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_part_beyond_the_file_systems_limit_is_refused_clearly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        client = server.client()
        client.create_vault(vaultName="huge")
        part_size = 4 << 30
        upload_id = client.initiate_multipart_upload(
            vaultName="huge", partSize=str(part_size))["uploadId"]
        offset = 9_999 * part_size  # the last of 10,000 parts of 4 GiB: legal for Glacier
        body = pattern(1 << 20)
        response = raw_request(
            server, "PUT", f"/-/vaults/huge/multipart-uploads/{upload_id}", body=body,
            headers={"Content-Range": f"bytes {offset}-{offset + len(body) - 1}/*",
                     "x-amz-sha256-tree-hash": tree_hash(body),
                     "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
                     "Content-Type": "application/octet-stream"},
        )
        if _fs_type(tmp_path).startswith("ext"):
            assert response.status == 400, response.body
            payload = response.json()
            assert payload["code"] == "InvalidParameterValueException"
            assert "16 TiB" in payload["message"]
        else:  # file systems with larger files take the part
            assert response.status == 204, response.body
        assert "Traceback" not in server.log()
        assert client.list_vaults()["VaultList"]
    finally:
        server.stop()
