"""UploadArchive, DeleteArchive and multipart uploads through boto3, the AWS CLI and raw HTTP."""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.utils import calculate_tree_hash

from icevault.core.treehash import MIB, tree_hash
from tests.e2e.test_vaults import error_of
from tests.support import ServerProcess, pattern, raw_request, wait_for_job


def retrieve(glacier: Any, vault: str, archive_id: str) -> bytes:
    job = glacier.initiate_job(
        vaultName=vault, jobParameters={"Type": "archive-retrieval", "ArchiveId": archive_id}
    )
    wait_for_job(glacier, vault, job["jobId"])
    data: bytes = glacier.get_job_output(vaultName=vault, jobId=job["jobId"])["body"].read()
    return data


@pytest.mark.parametrize("size", [1, 1000, MIB, MIB + 1, 3 * MIB + 12345])
def test_upload_round_trip(glacier: Any, vault: str, size: int) -> None:
    data = pattern(size, seed=size % 7)
    response = glacier.upload_archive(vaultName=vault, body=data, archiveDescription="photos 2019")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    archive_id = response["archiveId"]
    assert not archive_id.startswith("-")
    assert len(archive_id) >= 100
    assert set(archive_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert response["checksum"] == tree_hash(data)
    assert response["location"].endswith(f"/vaults/{vault}/archives/{archive_id}")
    described = glacier.describe_vault(vaultName=vault)
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (1, size)
    assert retrieve(glacier, vault, archive_id) == data


def test_checksum_mismatch_stores_nothing(glacier: Any, vault: str) -> None:
    with pytest.raises(ClientError) as exc:
        glacier.upload_archive(vaultName=vault, body=b"payload", checksum="0" * 64)
    code, status, message = error_of(exc)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert message == f"Checksum mismatch: expected {'0' * 64}, computed {tree_hash(b'payload')}"
    described = glacier.describe_vault(vaultName=vault)
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (0, 0)


def test_raw_upload_header_errors(server: ServerProcess, vault: str) -> None:
    body = b"some bytes"
    path = f"/-/vaults/{vault}/archives"
    sha = hashlib.sha256(body).hexdigest()
    missing = raw_request(server, "POST", path, body=body, headers={"x-amz-content-sha256": sha})
    assert missing.status == 400
    assert missing.json()["code"] == "MissingParameterValueException"
    # The body matches its (signed, or unauthenticated) tree hash, which binds it; the linear
    # SHA-256 is not computed again (the rule is in the README's Guarantees). The bytes stored
    # are exactly the body's.
    wrong_sha = raw_request(
        server, "POST", path, body=body,
        headers={"x-amz-sha256-tree-hash": tree_hash(body), "x-amz-content-sha256": "1" * 64},
    )
    assert wrong_sha.status == 201
    assert wrong_sha.headers["x-amz-sha256-tree-hash"] == tree_hash(body)
    tampered = raw_request(
        server, "POST", path, body=body + b"!",
        headers={"x-amz-sha256-tree-hash": tree_hash(body), "x-amz-content-sha256": sha},
    )
    assert tampered.status == 400 and tampered.json()["code"] == "InvalidParameterValueException"
    long_desc = raw_request(
        server, "POST", path, body=body,
        headers={"x-amz-sha256-tree-hash": tree_hash(body), "x-amz-content-sha256": sha,
                 "x-amz-archive-description": "x" * 1025},
    )
    assert long_desc.status == 400 and long_desc.json()["code"] == "InvalidParameterValueException"
    empty = raw_request(
        server, "POST", path, body=b"",
        headers={"x-amz-sha256-tree-hash": tree_hash(b""),
                 "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()},
    )
    assert empty.status == 400 and empty.json()["code"] == "InvalidParameterValueException"
    ok = raw_request(
        server, "POST", path, body=body,
        headers={"x-amz-sha256-tree-hash": tree_hash(body), "x-amz-content-sha256": sha},
    )
    assert ok.status == 201
    assert ok.headers["x-amz-sha256-tree-hash"] == tree_hash(body)
    described = server.client().describe_vault(vaultName=vault)
    # the two accepted uploads, and nothing of the refused ones
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (2, 2 * len(body))


def test_delete_archive_is_idempotent(glacier: Any, vault: str) -> None:
    archive = glacier.upload_archive(vaultName=vault, body=b"short-lived")
    first = glacier.delete_archive(vaultName=vault, archiveId=archive["archiveId"])
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 204
    again = glacier.delete_archive(vaultName=vault, archiveId=archive["archiveId"])
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204
    described = glacier.describe_vault(vaultName=vault)
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (0, 0)
    with pytest.raises(ClientError) as exc:
        glacier.delete_archive(vaultName=vault + "-gone", archiveId=archive["archiveId"])
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)


def test_upload_to_missing_vault(glacier: Any, vault_name: str) -> None:
    with pytest.raises(ClientError) as exc:
        glacier.upload_archive(vaultName=vault_name, body=b"x")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)


def _part_tree_hashes(data: bytes, part_size: int) -> list[tuple[int, bytes]]:
    return [(start, data[start : start + part_size]) for start in range(0, len(data), part_size)]


def test_multipart_parallel_out_of_order(glacier: Any, vault: str) -> None:
    part_size = MIB
    data = pattern(5 * MIB + 777, seed=3)
    upload = glacier.initiate_multipart_upload(
        vaultName=vault, partSize=str(part_size), archiveDescription="multi"
    )
    upload_id = upload["uploadId"]
    assert upload["location"].endswith(f"/multipart-uploads/{upload_id}")
    parts = _part_tree_hashes(data, part_size)[::-1]

    def send(item: tuple[int, bytes]) -> str:
        start, chunk = item
        response = glacier.upload_multipart_part(
            vaultName=vault, uploadId=upload_id,
            range=f"bytes {start}-{start + len(chunk) - 1}/*", body=chunk,
        )
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
        return str(response["checksum"])

    with ThreadPoolExecutor(4) as pool:
        hashes = list(pool.map(send, parts))
    assert hashes == [tree_hash(chunk) for _, chunk in parts]
    # Re-uploading a range replaces it.
    send(parts[0])
    listed = glacier.list_parts(vaultName=vault, uploadId=upload_id)
    assert [p["RangeInBytes"] for p in listed["Parts"]] == [
        f"{s}-{s + len(c) - 1}" for s, c in sorted(parts)
    ]
    assert listed["PartSizeInBytes"] == part_size
    assert listed["ArchiveDescription"] == "multi"
    uploads = glacier.list_multipart_uploads(vaultName=vault)["UploadsList"]
    assert [u["MultipartUploadId"] for u in uploads] == [upload_id]
    checksum = calculate_tree_hash(io.BytesIO(data))
    done = glacier.complete_multipart_upload(
        vaultName=vault, uploadId=upload_id, archiveSize=str(len(data)), checksum=checksum
    )
    assert done["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert done["checksum"] == checksum
    again = glacier.complete_multipart_upload(
        vaultName=vault, uploadId=upload_id, archiveSize=str(len(data)), checksum=checksum
    )
    assert again["archiveId"] == done["archiveId"]
    assert glacier.list_multipart_uploads(vaultName=vault)["UploadsList"] == []
    with pytest.raises(ClientError) as exc:
        glacier.list_parts(vaultName=vault, uploadId=upload_id)
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    assert glacier.describe_vault(vaultName=vault)["SizeInBytes"] == len(data)
    assert retrieve(glacier, vault, done["archiveId"]) == data


def test_multipart_complete_errors_leave_upload_open(glacier: Any, vault: str) -> None:
    part_size = MIB
    data = pattern(3 * MIB, seed=9)
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(part_size))["uploadId"]
    for start in (0, 2 * MIB):  # a gap at 1 MiB
        glacier.upload_multipart_part(
            vaultName=vault, uploadId=upload_id, range=f"bytes {start}-{start + MIB - 1}/*",
            body=data[start : start + MIB],
        )
    checksum = tree_hash(data)
    with pytest.raises(ClientError) as exc:
        glacier.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize=str(len(data)), checksum=checksum
        )
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    glacier.upload_multipart_part(
        vaultName=vault, uploadId=upload_id, range=f"bytes {MIB}-{2 * MIB - 1}/*",
        body=data[MIB : 2 * MIB],
    )
    with pytest.raises(ClientError) as exc:  # wrong size
        glacier.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize=str(len(data) + 1), checksum=checksum
        )
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as exc:  # wrong hash
        glacier.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize=str(len(data)), checksum="ab" * 32
        )
    code, _, message = error_of(exc)
    assert code == "InvalidParameterValueException"
    assert message.startswith(f"Invalid x-amz-sha256-tree-hash: {'ab' * 32}")
    done = glacier.complete_multipart_upload(
        vaultName=vault, uploadId=upload_id, archiveSize=str(len(data)), checksum=checksum
    )
    assert retrieve(glacier, vault, done["archiveId"]) == data


def test_short_part_that_is_not_last(glacier: Any, vault: str) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    data = pattern(MIB + 10)
    glacier.upload_multipart_part(vaultName=vault, uploadId=upload_id, range="bytes 0-9/*", body=data[:10])
    glacier.upload_multipart_part(
        vaultName=vault, uploadId=upload_id, range=f"bytes {MIB}-{MIB + 9}/*", body=data[MIB:]
    )
    with pytest.raises(ClientError) as exc:
        glacier.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize=str(MIB + 10), checksum=tree_hash(data)
        )
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)


@pytest.mark.parametrize("part_size", ["0", "1000", str(3 * MIB), str(8 * 1024**3), "abc"])
def test_bad_part_sizes(glacier: Any, vault: str, part_size: str) -> None:
    with pytest.raises(ClientError) as exc:
        glacier.initiate_multipart_upload(vaultName=vault, partSize=part_size)
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)


def test_bad_part_ranges(glacier: Any, vault: str) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    chunk = pattern(MIB)
    for bad_range, body in [
        (f"bytes 1-{MIB}/*", chunk),  # not at a part boundary
        (f"bytes 0-{2 * MIB - 1}/*", chunk + chunk),  # larger than the part size
        ("bytes 0-9/5", chunk[:10]),  # past the archive size it names
    ]:
        with pytest.raises(ClientError) as exc:
            glacier.upload_multipart_part(vaultName=vault, uploadId=upload_id, range=bad_range, body=body)
        assert error_of(exc)[:2] == ("InvalidParameterValueException", 400), bad_range
    with pytest.raises(ClientError) as exc:
        glacier.upload_multipart_part(
            vaultName=vault, uploadId=upload_id, range=f"bytes 0-{MIB - 1}/*", body=chunk,
            checksum="0" * 64,
        )
    assert error_of(exc)[2].startswith("Checksum mismatch")
    assert glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"] == []


def test_abort_is_idempotent(glacier: Any, vault: str) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    glacier.upload_multipart_part(vaultName=vault, uploadId=upload_id, range="bytes 0-2/*", body=b"abc")
    assert glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id)["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id)
    with pytest.raises(ClientError) as exc:
        glacier.upload_multipart_part(vaultName=vault, uploadId=upload_id, range="bytes 0-2/*", body=b"abc")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        glacier.abort_multipart_upload(vaultName=vault, uploadId="no-such-upload")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)


def test_list_pagination_for_uploads_and_parts(glacier: Any, vault: str) -> None:
    ids = {glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
           for _ in range(5)}
    seen = [
        u["MultipartUploadId"]
        for page in glacier.get_paginator("list_multipart_uploads").paginate(
            vaultName=vault, PaginationConfig={"PageSize": 2})
        for u in page["UploadsList"]
    ]
    assert sorted(seen) == sorted(ids)
    upload_id = sorted(ids)[0]
    for i in range(5):
        glacier.upload_multipart_part(
            vaultName=vault, uploadId=upload_id, range=f"bytes {i * MIB}-{(i + 1) * MIB - 1}/*",
            body=pattern(MIB, seed=i),
        )
    ranges = [
        p["RangeInBytes"]
        for page in glacier.get_paginator("list_parts").paginate(
            vaultName=vault, uploadId=upload_id, PaginationConfig={"PageSize": 2})
        for p in page["Parts"]
    ]
    assert ranges == [f"{i * MIB}-{(i + 1) * MIB - 1}" for i in range(5)]
    for upload in ids:
        glacier.abort_multipart_upload(vaultName=vault, uploadId=upload)


def test_aws_cli_upload_and_multipart(server: ServerProcess, vault: str, tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(pattern(300_000, seed=5))
    uploaded = json.loads(server.aws(
        "glacier", "upload-archive", "--account-id", "-", "--vault-name", vault,
        "--archive-description", "from the cli", "--body", str(small),
    ).stdout)
    assert uploaded["checksum"] == tree_hash(small.read_bytes())
    data = pattern(2 * MIB + 5, seed=6)
    initiated = json.loads(server.aws(
        "glacier", "initiate-multipart-upload", "--account-id", "-", "--vault-name", vault,
        "--part-size", str(MIB),
    ).stdout)
    upload_id = initiated["uploadId"]
    for start in range(0, len(data), MIB):
        part = tmp_path / f"part{start}"
        part.write_bytes(data[start : start + MIB])
        server.aws(
            "glacier", "upload-multipart-part", "--account-id", "-", "--vault-name", vault,
            "--upload-id", upload_id, "--range",
            f"bytes {start}-{start + len(part.read_bytes()) - 1}/*", "--body", str(part),
        )
    completed = json.loads(server.aws(
        "glacier", "complete-multipart-upload", "--account-id", "-", "--vault-name", vault,
        "--upload-id", upload_id, "--archive-size", str(len(data)), "--checksum", tree_hash(data),
    ).stdout)
    assert completed["checksum"] == tree_hash(data)
    glacier = server.client()
    assert retrieve(glacier, vault, completed["archiveId"]) == data
    assert retrieve(glacier, vault, uploaded["archiveId"]) == small.read_bytes()


def test_content_range_with_a_numeric_total(server: ServerProcess, vault: str) -> None:
    """RFC 2616's form, which tools such as glacier-upload send on every part."""
    from icevault.core.treehash import MIB

    client = server.client()
    data = pattern(2 * MIB + 100, seed=5)
    total = len(data)
    upload_id = client.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    for start in range(0, total, MIB):
        piece = data[start:start + MIB]
        client.upload_multipart_part(vaultName=vault, uploadId=upload_id, body=piece,
                                     range=f"bytes {start}-{start + len(piece) - 1}/{total}")
    # a part that disagrees about the total, or runs past it, is refused
    for bad in (f"bytes 0-{MIB - 1}/{total + 1}", f"bytes 0-{MIB - 1}/{MIB - 1}"):
        with pytest.raises(ClientError) as exc:
            client.upload_multipart_part(vaultName=vault, uploadId=upload_id, body=data[:MIB],
                                         range=bad)
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        client.complete_multipart_upload(vaultName=vault, uploadId=upload_id,
                                         archiveSize=str(total - 1), checksum=tree_hash(data))
    assert "declared the archive size" in exc.value.response["Error"]["Message"]
    done = client.complete_multipart_upload(vaultName=vault, uploadId=upload_id,
                                            archiveSize=str(total), checksum=tree_hash(data))
    assert done["checksum"] == tree_hash(data)
