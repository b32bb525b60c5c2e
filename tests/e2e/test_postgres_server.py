"""The server with its metadata in PostgreSQL: the same workflow, end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from icevault.core.treehash import MIB, tree_hash
from tests.postgres import PostgresServer
from tests.support import ServerProcess, pattern, wait_for_job


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.stop()


def test_workflow_on_postgres(pg: PostgresServer, tmp_path: Path) -> None:
    url = pg.new_database()
    server = ServerProcess(tmp_path / "data", auth="sigv4", extra_args=["--metadata-url", url]).start()
    try:
        glacier = server.client()
        glacier.create_vault(vaultName="pg-vault")
        data = pattern(3 * MIB + 5, seed=7)
        archive = glacier.upload_archive(vaultName="pg-vault", body=data, archiveDescription="on pg")
        upload_id = glacier.initiate_multipart_upload(vaultName="pg-vault", partSize=str(MIB))["uploadId"]
        for start in range(0, len(data), MIB):
            glacier.upload_multipart_part(vaultName="pg-vault", uploadId=upload_id,
                                          range=f"bytes {start}-{min(start + MIB, len(data)) - 1}/*",
                                          body=data[start : start + MIB])
        multi = glacier.complete_multipart_upload(vaultName="pg-vault", uploadId=upload_id,
                                                  archiveSize=str(len(data)), checksum=tree_hash(data))
        job_id = glacier.initiate_job(vaultName="pg-vault", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": multi["archiveId"]})["jobId"]
        wait_for_job(glacier, "pg-vault", job_id)
        out = glacier.get_job_output(vaultName="pg-vault", jobId=job_id, range=f"bytes={MIB}-{2 * MIB - 1}")
        assert out["body"].read() == data[MIB : 2 * MIB] and out["checksum"] == tree_hash(data[MIB : 2 * MIB])
        inventory_id = glacier.initiate_job(vaultName="pg-vault", jobParameters={"Type": "inventory-retrieval"})["jobId"]
        wait_for_job(glacier, "pg-vault", inventory_id)
        listed = json.loads(glacier.get_job_output(vaultName="pg-vault", jobId=inventory_id)["body"].read())
        assert sorted(a["ArchiveId"] for a in listed["ArchiveList"]) == sorted(
            [archive["archiveId"], multi["archiveId"]])
        described = glacier.describe_vault(vaultName="pg-vault")
        assert (described["NumberOfArchives"], described["SizeInBytes"]) == (2, 2 * len(data))
        server.restart()
        assert server.client().describe_vault(vaultName="pg-vault")["NumberOfArchives"] == 2
        assert not (tmp_path / "data" / "metadata.sqlite3").exists()
    finally:
        server.stop()
