"""Retrieval jobs and GetJobOutput: the seed's workflow, end to end."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from icevault.core.treehash import MIB, combine_hex, tree_hash
from tests.e2e.test_vaults import error_of
from tests.support import ServerProcess, pattern, raw_request, wait_for_job


def start_retrieval(glacier: Any, vault: str, archive_id: str, **params: str) -> str:
    job = glacier.initiate_job(
        vaultName=vault,
        jobParameters={"Type": "archive-retrieval", "ArchiveId": archive_id, **params},
    )
    assert job["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert job["location"].endswith(f"/vaults/{vault}/jobs/{job['jobId']}")
    return str(job["jobId"])


def test_seed_procedure_chunked_download(glacier: Any, vault: str) -> None:
    """Download in aligned chunks, verify each chunk's checksum and size, combine the
    checksums and compare with DescribeJob, as the GetJobOutput documentation says."""
    data = pattern(int(6.5 * MIB), seed=1)
    archive = glacier.upload_archive(vaultName=vault, body=data, archiveDescription="seed")
    job_id = start_retrieval(glacier, vault, archive["archiveId"], Description="seed job")
    job = wait_for_job(glacier, vault, job_id)
    assert job["StatusCode"] == "Succeeded"
    assert job["ArchiveSizeInBytes"] == len(data)
    chunk = 2 * MIB
    hashes, received = [], bytearray()
    for start in range(0, len(data), chunk):
        end = min(start + chunk, len(data)) - 1
        out = glacier.get_job_output(vaultName=vault, jobId=job_id, range=f"bytes={start}-{end}")
        body = out["body"].read()
        assert out["status"] == 206
        assert len(body) == end - start + 1
        assert out["contentRange"] == f"bytes {start}-{end}/{len(data)}"
        assert out["acceptRanges"] == "bytes"
        assert out["contentType"] == "application/octet-stream"
        assert out["archiveDescription"] == "seed"
        assert out["checksum"] == tree_hash(body)
        hashes.append(out["checksum"])
        received += body
    assert len(received) == job["ArchiveSizeInBytes"]
    assert combine_hex(hashes) == job["ArchiveSHA256TreeHash"] == archive["checksum"]
    assert job["SHA256TreeHash"] == archive["checksum"]
    assert bytes(received) == data


def test_whole_output_and_header_rules(glacier: Any, vault: str) -> None:
    data = pattern(5 * MIB + 100, seed=2)
    archive = glacier.upload_archive(vaultName=vault, body=data)
    job_id = start_retrieval(glacier, vault, archive["archiveId"])
    wait_for_job(glacier, vault, job_id)
    whole = glacier.get_job_output(vaultName=vault, jobId=job_id)
    assert whole["status"] == 200
    assert "contentRange" not in whole
    assert whole["checksum"] == archive["checksum"]
    assert whole["body"].read() == data
    # Aligned ranges that are tree nodes carry a checksum; others do not.
    node = glacier.get_job_output(vaultName=vault, jobId=job_id, range=f"bytes={4 * MIB}-")
    assert node["checksum"] == tree_hash(data[4 * MIB :])
    assert node["contentRange"] == f"bytes {4 * MIB}-{len(data) - 1}/{len(data)}"
    assert node["body"].read() == data[4 * MIB :]
    not_node = glacier.get_job_output(vaultName=vault, jobId=job_id, range=f"bytes={MIB}-{3 * MIB - 1}")
    assert "checksum" not in not_node
    assert not_node["body"].read() == data[MIB : 3 * MIB]
    odd = glacier.get_job_output(vaultName=vault, jobId=job_id, range="bytes=10-19")
    assert "checksum" not in odd and odd["body"].read() == data[10:20]
    clamped = glacier.get_job_output(vaultName=vault, jobId=job_id, range=f"bytes=5-{10 * MIB}")
    assert clamped["contentRange"] == f"bytes 5-{len(data) - 1}/{len(data)}"
    assert clamped["body"].read() == data[5:]
    for bad in ["bytes=abc", f"bytes={len(data)}-", "bytes=9-2"]:
        with pytest.raises(ClientError) as exc:
            glacier.get_job_output(vaultName=vault, jobId=job_id, range=bad)
        assert error_of(exc)[:2] == ("InvalidParameterValueException", 400), bad


def test_ranged_retrieval_job(glacier: Any, vault: str) -> None:
    data = pattern(int(6.5 * MIB), seed=4)
    archive = glacier.upload_archive(vaultName=vault, body=data)
    node_job = start_retrieval(glacier, vault, archive["archiveId"],
                               RetrievalByteRange=f"{2 * MIB}-{4 * MIB - 1}")
    flat_job = start_retrieval(glacier, vault, archive["archiveId"],
                               RetrievalByteRange=f"{MIB}-{3 * MIB - 1}")
    node = wait_for_job(glacier, vault, node_job)
    flat = wait_for_job(glacier, vault, flat_job)
    assert node["RetrievalByteRange"] == f"{2 * MIB}-{4 * MIB - 1}"
    assert node["SHA256TreeHash"] == tree_hash(data[2 * MIB : 4 * MIB])
    assert node["ArchiveSHA256TreeHash"] == archive["checksum"]
    assert "SHA256TreeHash" not in flat
    out = glacier.get_job_output(vaultName=vault, jobId=node_job)
    assert out["body"].read() == data[2 * MIB : 4 * MIB]
    assert out["checksum"] == node["SHA256TreeHash"]
    # Offsets are relative to the retrieved range: bytes 0..1MiB-1 of this output are the
    # archive's 2 MiB..3 MiB-1, which is a node of the archive's tree.
    part = glacier.get_job_output(vaultName=vault, jobId=node_job, range=f"bytes=0-{MIB - 1}")
    assert part["contentRange"] == f"bytes 0-{MIB - 1}/{2 * MIB}"
    assert part["checksum"] == tree_hash(data[2 * MIB : 3 * MIB])
    assert part["body"].read() == data[2 * MIB : 3 * MIB]
    flat_out = glacier.get_job_output(vaultName=vault, jobId=flat_job, range=f"bytes={MIB}-")
    assert flat_out["body"].read() == data[2 * MIB : 3 * MIB]
    # Absolute 2..3 MiB is a node, so the checksum is there even in a non-node retrieval.
    assert flat_out["checksum"] == tree_hash(data[2 * MIB : 3 * MIB])
    for bad in [f"1-{MIB}", f"0-{7 * MIB - 1}", "abc"]:
        with pytest.raises(ClientError) as exc:
            start_retrieval(glacier, vault, archive["archiveId"], RetrievalByteRange=bad)
        assert error_of(exc)[:2] == ("InvalidParameterValueException", 400), bad


def test_aws_cli_get_job_output_range(server: ServerProcess, vault: str, tmp_path: Path) -> None:
    glacier = server.client()
    data = pattern(3 * MIB + 5, seed=8)
    archive = glacier.upload_archive(vaultName=vault, body=data)
    job_id = start_retrieval(glacier, vault, archive["archiveId"])
    wait_for_job(glacier, vault, job_id)
    out = tmp_path / "chunk.bin"
    result = json.loads(server.aws(
        "glacier", "get-job-output", "--account-id", "-", "--vault-name", vault,
        "--job-id", job_id, "--range", f"bytes={MIB}-{2 * MIB - 1}", str(out),
    ).stdout)
    assert out.read_bytes() == data[MIB : 2 * MIB]
    assert result["status"] == 206
    assert result["checksum"] == tree_hash(data[MIB : 2 * MIB])
    assert result["contentRange"] == f"bytes {MIB}-{2 * MIB - 1}/{len(data)}"


def test_boto3_resource_layer(server: ServerProcess, vault: str) -> None:
    resource = server.resource()
    vault_res = resource.Vault("-", vault)
    archive = vault_res.upload_archive(body=b"resource bytes", archiveDescription="res")
    job = archive.initiate_archive_retrieval()
    wait_for_job(server.client(), vault, job.id)
    job.load()
    assert job.status_code == "Succeeded"
    output = job.get_output()
    assert output["body"].read() == b"resource bytes"
    assert output["checksum"] == tree_hash(b"resource bytes")
    assert job.id in [j.id for j in vault_res.succeeded_jobs.all()]
    assert job.id in [j.id for j in vault_res.completed_jobs.all()]
    assert job.id not in [j.id for j in vault_res.jobs_in_progress.all()]


def test_inventory_json_and_csv(glacier: Any, vault: str) -> None:
    archives = []
    for i, desc in enumerate(["plain", 'with "quotes", and commas', ""]):
        body = pattern(100 + i, seed=i)
        archive = glacier.upload_archive(vaultName=vault, body=body, archiveDescription=desc)
        archives.append((archive["archiveId"], desc, len(body), archive["checksum"]))
    json_job = glacier.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})["jobId"]
    csv_job = glacier.initiate_job(
        vaultName=vault, jobParameters={"Type": "inventory-retrieval", "Format": "CSV"}
    )["jobId"]
    described = wait_for_job(glacier, vault, json_job)
    assert described["Action"] == "InventoryRetrieval"
    assert "SHA256TreeHash" not in described and "Tier" not in described
    out = glacier.get_job_output(vaultName=vault, jobId=json_job)
    assert out["contentType"] == "application/json"
    assert "checksum" not in out
    inventory = json.loads(out["body"].read())
    assert described["InventorySizeInBytes"] > 0
    assert inventory["VaultARN"].endswith(f":vaults/{vault}")
    assert [
        (a["ArchiveId"], a["ArchiveDescription"], a["Size"], a["SHA256TreeHash"])
        for a in inventory["ArchiveList"]
    ] == archives
    wait_for_job(glacier, vault, csv_job)
    csv_out = glacier.get_job_output(vaultName=vault, jobId=csv_job)
    assert csv_out["contentType"] == "text/csv"
    text = csv_out["body"].read().decode()
    lines = text.splitlines()
    assert lines[0] == "ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash"
    assert '"with \\"quotes\\", and commas"' in lines[2]
    rows = list(csv.reader(io.StringIO(text), escapechar="\\"))
    assert [(r[0], r[1], int(r[3]), r[4]) for r in rows[1:]] == archives
    assert glacier.describe_vault(vaultName=vault)["LastInventoryDate"]


def test_inventory_limit_and_marker(glacier: Any, vault: str) -> None:
    ids = [glacier.upload_archive(vaultName=vault, body=bytes([i]))["archiveId"] for i in range(5)]
    seen: list[str] = []
    marker = None
    while True:
        params: dict[str, Any] = {"Limit": "2"}
        if marker:
            params["Marker"] = marker
        job_id = glacier.initiate_job(
            vaultName=vault,
            jobParameters={"Type": "inventory-retrieval", "InventoryRetrievalParameters": params},
        )["jobId"]
        job = wait_for_job(glacier, vault, job_id)
        body = json.loads(glacier.get_job_output(vaultName=vault, jobId=job_id)["body"].read())
        seen += [a["ArchiveId"] for a in body["ArchiveList"]]
        marker = job["InventoryRetrievalParameters"].get("Marker")
        assert job["InventoryRetrievalParameters"]["Limit"] == "2"
        if not marker:
            break
    assert seen == ids


def test_inventory_date_filter(glacier: Any, vault: str) -> None:
    glacier.upload_archive(vaultName=vault, body=b"old")
    time.sleep(0.05)
    cut = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
    time.sleep(0.05)
    newer = glacier.upload_archive(vaultName=vault, body=b"new")["archiveId"]
    job_id = glacier.initiate_job(
        vaultName=vault,
        jobParameters={"Type": "inventory-retrieval",
                       "InventoryRetrievalParameters": {"StartDate": cut}},
    )["jobId"]
    wait_for_job(glacier, vault, job_id)
    body = json.loads(glacier.get_job_output(vaultName=vault, jobId=job_id)["body"].read())
    assert [a["ArchiveId"] for a in body["ArchiveList"]] == [newer]


def test_empty_vault_inventory(glacier: Any, vault: str) -> None:
    job_id = glacier.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})["jobId"]
    wait_for_job(glacier, vault, job_id)
    body = json.loads(glacier.get_job_output(vaultName=vault, jobId=job_id)["body"].read())
    assert body["ArchiveList"] == []


def test_initiate_job_errors(glacier: Any, vault: str, server: ServerProcess) -> None:
    archive_id = glacier.upload_archive(vaultName=vault, body=b"x")["archiveId"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Type": "nonsense"}, "InvalidParameterValueException"),
        ({"Type": "select", "ArchiveId": archive_id}, "InvalidParameterValueException"),
        ({"Type": "archive-retrieval"}, "MissingParameterValueException"),
        ({"Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Fast"}, "InvalidParameterValueException"),
        ({"Type": "archive-retrieval", "ArchiveId": archive_id, "Format": "CSV"}, "InvalidParameterValueException"),
        ({"Type": "inventory-retrieval", "ArchiveId": archive_id}, "InvalidParameterValueException"),
        ({"Type": "inventory-retrieval", "Format": "XML"}, "InvalidParameterValueException"),
        ({"Type": "inventory-retrieval", "InventoryRetrievalParameters": {"Limit": "0"}},
         "InvalidParameterValueException"),
        ({"Type": "inventory-retrieval", "InventoryRetrievalParameters": {"Marker": "bogus"}},
         "InvalidParameterValueException"),
        ({"Type": "archive-retrieval", "ArchiveId": archive_id, "Description": "\x01bad"},
         "InvalidParameterValueException"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as exc:
            glacier.initiate_job(vaultName=vault, jobParameters=params)
        assert error_of(exc)[:2] == (code, 400), params
    with pytest.raises(ClientError) as exc:
        glacier.initiate_job(vaultName=vault, jobParameters={"Type": "archive-retrieval",
                                                             "ArchiveId": "unknown-archive"})
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    missing_type = raw_request(server, "POST", f"/-/vaults/{vault}/jobs", body=b"{}")
    assert missing_type.status == 400
    assert missing_type.json()["code"] == "MissingParameterValueException"


def test_unknown_job(glacier: Any, vault: str) -> None:
    for call in (glacier.describe_job, glacier.get_job_output):
        with pytest.raises(ClientError) as exc:
            call(vaultName=vault, jobId="no-such-job")
        code, status, message = error_of(exc)
        assert (code, status, message) == (
            "ResourceNotFoundException", 404, "The job ID was not found: no-such-job")


def test_list_jobs_filters_and_pagination(glacier: Any, vault: str) -> None:
    archive_id = glacier.upload_archive(vaultName=vault, body=b"listed")["archiveId"]
    ids = [start_retrieval(glacier, vault, archive_id) for _ in range(4)]
    for job_id in ids:
        wait_for_job(glacier, vault, job_id)
    glacier.delete_archive(vaultName=vault, archiveId=archive_id)
    failed = start_retrieval(glacier, vault, archive_id)
    assert wait_for_job(glacier, vault, failed)["StatusCode"] == "Failed"
    paged = [
        j["JobId"]
        for page in glacier.get_paginator("list_jobs").paginate(
            vaultName=vault, PaginationConfig={"PageSize": 2})
        for j in page["JobList"]
    ]
    assert paged == ids + [failed]
    succeeded = glacier.list_jobs(vaultName=vault, statuscode="Succeeded")["JobList"]
    assert [j["JobId"] for j in succeeded] == ids
    assert [j["JobId"] for j in glacier.list_jobs(vaultName=vault, statuscode="Failed")["JobList"]] == [failed]
    assert glacier.list_jobs(vaultName=vault, completed="false")["JobList"] == []
    assert len(glacier.list_jobs(vaultName=vault, completed="true")["JobList"]) == 5
    with pytest.raises(ClientError) as exc:
        glacier.list_jobs(vaultName=vault, statuscode="Done")
    assert error_of(exc) == ("InvalidParameterValueException", 400, "The job status code is not valid: Done")
    # Jobs that succeeded before the delete still serve the bytes.
    assert glacier.get_job_output(vaultName=vault, jobId=ids[0])["body"].read() == b"listed"
    with pytest.raises(ClientError) as exc:
        glacier.get_job_output(vaultName=vault, jobId=failed)
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)


def test_unfinished_job_and_restart(fresh_server: ServerProcess) -> None:
    # Bulk (an hour) is certainly in progress whenever it is looked at; Standard (8 s) is
    # due soon, and must complete only after the restart that comes right after it starts.
    fresh_server.extra_args = ["--tier-delays", "expedited=0,standard=8,bulk=3600"]
    fresh_server.start()
    glacier = fresh_server.client()
    glacier.create_vault(vaultName="slow")
    data = pattern(MIB + 3)
    archive_id = glacier.upload_archive(vaultName="slow", body=data)["archiveId"]
    bulk = start_retrieval(glacier, "slow", archive_id, Tier="Bulk")
    expedited = start_retrieval(glacier, "slow", archive_id, Tier="Expedited")
    assert wait_for_job(glacier, "slow", expedited)["Tier"] == "Expedited"
    pending = glacier.describe_job(vaultName="slow", jobId=bulk)
    assert (pending["StatusCode"], pending["Completed"], pending["Tier"]) == ("InProgress", False, "Bulk")
    assert "CompletionDate" not in pending and "SHA256TreeHash" not in pending
    with pytest.raises(ClientError) as exc:
        glacier.get_job_output(vaultName="slow", jobId=bulk)
    assert error_of(exc) == ("InvalidParameterValueException", 400,
                             f"The job is not currently available for download: {bulk}")
    standard = start_retrieval(glacier, "slow", archive_id)
    fresh_server.stop()
    stopped_at = datetime.now(UTC)
    fresh_server.start()  # jobs in progress survive the restart and finish afterwards
    glacier = fresh_server.client()
    done = wait_for_job(glacier, "slow", standard, timeout=30)
    assert done["StatusCode"] == "Succeeded"
    completed = datetime.fromisoformat(done["CompletionDate"].replace("Z", "+00:00"))
    assert completed > stopped_at, "the Standard job completed before the restart"
    assert glacier.get_job_output(vaultName="slow", jobId=standard)["body"].read() == data
    assert glacier.describe_job(vaultName="slow", jobId=bulk)["StatusCode"] == "InProgress"
    assert [j["JobId"] for j in glacier.list_jobs(vaultName="slow", completed="false")["JobList"]] == [bulk]
