"""The server with archive bytes in an S3-compatible object store (SeaweedFS), end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from icevault.core.treehash import MIB, tree_hash
from tests.seaweed import SeaweedServer
from tests.support import ServerProcess, pattern, wait_for_job


def multipart(glacier: Any, vault: str, data: bytes, part_size: int) -> str:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(part_size))["uploadId"]
    starts = list(range(0, len(data), part_size))
    for start in reversed(starts):  # any order
        glacier.upload_multipart_part(
            vaultName=vault, uploadId=upload_id,
            range=f"bytes {start}-{min(start + part_size, len(data)) - 1}/*",
            body=data[start:start + part_size])
    done = glacier.complete_multipart_upload(
        vaultName=vault, uploadId=upload_id, archiveSize=str(len(data)), checksum=tree_hash(data))
    assert done["checksum"] == tree_hash(data)
    return str(done["archiveId"])


def test_workflow_with_blobs_in_s3(seaweed: SeaweedServer,
                                   s3_backed: tuple[ServerProcess, str]) -> None:
    server, store_url = s3_backed
    try:
        glacier = server.client()
        glacier.create_vault(vaultName="s3-vault")
        small = pattern(3 * MIB + 5, seed=11)
        single = glacier.upload_archive(vaultName="s3-vault", body=small)["archiveId"]
        # 1 MiB parts are under S3's 5 MiB part minimum: assembled by streaming;
        # 8 MiB parts are assembled by server-side copies.
        big = pattern(17 * MIB + 3, seed=12)
        streamed = multipart(glacier, "s3-vault", small, MIB)
        copied = multipart(glacier, "s3-vault", big, 8 * MIB)
        for archive_id, data in ((single, small), (streamed, small), (copied, big)):
            job_id = glacier.initiate_job(vaultName="s3-vault", jobParameters={
                "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
            wait_for_job(glacier, "s3-vault", job_id)
            whole = glacier.get_job_output(vaultName="s3-vault", jobId=job_id)
            assert whole["body"].read() == data and whole["checksum"] == tree_hash(data)
            part = glacier.get_job_output(vaultName="s3-vault", jobId=job_id,
                                          range=f"bytes={MIB}-{2 * MIB - 1}")
            assert part["status"] == 206 and part["body"].read() == data[MIB:2 * MIB]
            assert part["checksum"] == tree_hash(data[MIB:2 * MIB])
        # Bytes live in the object store, not in the data directory.
        assert not any(server.data_dir.rglob("blobs/*/*"))
        s3 = seaweed.client()
        bucket, _, rest = store_url.removeprefix("s3://").partition("/")
        prefix = rest.split("?")[0]
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/blobs/")
        assert len(listed.get("Contents", [])) == 3
        server.restart()  # housekeeping runs at start: completed uploads' staging goes
        described = server.client().describe_vault(vaultName="s3-vault")
        assert (described["NumberOfArchives"], described["SizeInBytes"]) == (
            3, 2 * len(small) + len(big))
        staging = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/staging/")
        assert staging.get("Contents", []) == []
        assert s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []) == []
        # A deleted archive's object goes once no finished job still serves it; here the
        # archive is gone from the listing as soon as the metadata says so.
        glacier = server.client()
        glacier.delete_archive(vaultName="s3-vault", archiveId=single)
        assert glacier.describe_vault(vaultName="s3-vault")["NumberOfArchives"] == 2
    finally:
        server.stop()


def test_a_second_server_on_the_same_bucket_leaves_the_firsts_data_alone(
        seaweed: SeaweedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "icevault")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "icevault")
    store = seaweed.new_store_url()
    first = ServerProcess(tmp_path / "first", auth="off", extra_args=["--blob-url", store]).start()
    second = None
    try:
        client = first.client()
        client.create_vault(vaultName="v")
        data = pattern(2 * MIB + 3, seed=7)
        archive_id = client.upload_archive(vaultName="v", body=data)["archiveId"]
        upload_id = client.initiate_multipart_upload(vaultName="v", partSize=str(MIB))[
            "uploadId"]
        client.upload_multipart_part(vaultName="v", uploadId=upload_id, body=data[:MIB],
                                     range=f"bytes 0-{MIB - 1}/*")
        # A server on another database: its metadata knows none of the first one's bytes,
        # and its sweeps would take them for a crash's leftovers. The bucket prefix carries
        # the first installation's mark, so the second stops at start and touches nothing.
        with pytest.raises(RuntimeError) as refused:
            second = ServerProcess(tmp_path / "second", auth="off",
                                   extra_args=["--blob-url", store]).start()
        assert str(refused.value).splitlines()[-1].startswith(
            "icevault serve: the server's own store holds the objects of another icevault "
            "installation (")
        for start in range(MIB, len(data), MIB):
            end = min(start + MIB, len(data)) - 1
            client.upload_multipart_part(vaultName="v", uploadId=upload_id,
                                         body=data[start:end + 1], range=f"bytes {start}-{end}/*")
        done = client.complete_multipart_upload(vaultName="v", uploadId=upload_id,
                                                archiveSize=str(len(data)),
                                                checksum=tree_hash(data))
        for archive in (archive_id, done["archiveId"]):
            job = client.initiate_job(vaultName="v", jobParameters={
                "Type": "archive-retrieval", "ArchiveId": archive})
            wait_for_job(client, "v", job["jobId"])
            assert client.get_job_output(vaultName="v", jobId=job["jobId"])[
                "body"].read() == data
    finally:
        if second is not None:
            second.stop()
        first.stop()
