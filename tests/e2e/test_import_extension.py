"""icevault's import extension: an archive arrives under the ID and creation date it had in
another Glacier store (what ``icevault migrate`` uses), for callers allowed
``icevault:ImportArchive`` only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from icevault.client.imports import enable_imports, importing
from icevault.core.treehash import MIB, tree_hash
from tests.e2e.test_access import admin, client_for, new_user
from tests.support import ServerProcess, pattern, wait_for_job

# An ID as AWS hands them out: 138 URL-safe characters, not one of ours.
AWS_ID = ("NkbByEejwEggmBz2fTHgJrg0XBoDfjP4q6iu87-TjhqG6eGoOY9Z8i1_AUyUsuhPAdTqLHy8pTl5nfCFJmDl2y"
          "EZONi5L26Omw12vcs01MNGntHEQL8MBfGlqrEXAMPLEArchiveId")
CREATED = "2016-03-04T05:06:07.089Z"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = ServerProcess(tmp_path_factory.mktemp("imports") / "data", auth="sigv4",
                            extra_args=["--cache-ttl", "100ms"]).start()
    yield started
    started.stop()


@pytest.fixture()
def root(server: ServerProcess) -> Any:
    return enable_imports(server.client())


def _code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _inventory(client: Any, vault: str) -> list[dict[str, Any]]:
    job = client.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})
    wait_for_job(client, vault, job["jobId"])
    body = client.get_job_output(vaultName=vault, jobId=job["jobId"])["body"].read()
    return list(json.loads(body)["ArchiveList"])


def test_single_upload_keeps_id_and_date_and_works_everywhere(root: Any) -> None:
    root.create_vault(vaultName="single")
    data = pattern(3 * MIB + 1, seed=1)
    with importing(AWS_ID, CREATED):
        response = root.upload_archive(vaultName="single", body=data, archiveDescription="a,\"b\"")
    assert response["archiveId"] == AWS_ID
    assert response["checksum"] == tree_hash(data)
    [listed] = _inventory(root, "single")
    assert (listed["ArchiveId"], listed["CreationDate"], listed["Size"]) == (
        AWS_ID, CREATED, len(data))
    assert listed["ArchiveDescription"] == 'a,"b"'
    job = root.initiate_job(vaultName="single", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": AWS_ID, "RetrievalByteRange": f"0-{MIB - 1}"})
    wait_for_job(root, "single", job["jobId"])
    output = root.get_job_output(vaultName="single", jobId=job["jobId"])
    assert output["body"].read() == data[:MIB]
    # The same import again is the same archive, not a second one.
    with importing(AWS_ID, CREATED):
        again = root.upload_archive(vaultName="single", body=data)
    assert again["archiveId"] == AWS_ID
    assert root.describe_vault(vaultName="single")["NumberOfArchives"] == 1
    # Other bytes under that ID are refused, and the archive is untouched.
    with importing(AWS_ID, CREATED), pytest.raises(ClientError) as exc:
        root.upload_archive(vaultName="single", body=b"other bytes")
    assert _code(exc) == ("InvalidParameterValueException", 400)
    assert tree_hash(data) in exc.value.response["Error"]["Message"]
    root.delete_archive(vaultName="single", archiveId=AWS_ID)
    assert root.describe_vault(vaultName="single")["NumberOfArchives"] == 0


def test_multipart_import_and_its_repeat(root: Any) -> None:
    root.create_vault(vaultName="multi")
    data = pattern(5 * MIB + 7, seed=2)
    archive_id = "imported_" + "x" * 120

    def import_once(payload: bytes) -> dict[str, Any]:
        with importing(archive_id, "2019-12-31T23:59:59Z"):
            upload = root.initiate_multipart_upload(vaultName="multi", partSize=str(2 * MIB))
        upload_id = upload["uploadId"]
        for start in range(0, len(payload), 2 * MIB):
            piece = payload[start:start + 2 * MIB]
            root.upload_multipart_part(vaultName="multi", uploadId=upload_id, body=piece,
                                       range=f"bytes {start}-{start + len(piece) - 1}/*")
        result: dict[str, Any] = root.complete_multipart_upload(
            vaultName="multi", uploadId=upload_id, archiveSize=str(len(payload)),
            checksum=tree_hash(payload))
        return result

    first = import_once(data)
    assert (first["archiveId"], first["checksum"]) == (archive_id, tree_hash(data))
    assert import_once(data)["archiveId"] == archive_id  # repeated: the same archive
    assert root.list_multipart_uploads(vaultName="multi")["UploadsList"] == []
    with pytest.raises(ClientError) as exc:
        import_once(pattern(5 * MIB + 7, seed=3))
    assert _code(exc) == ("InvalidParameterValueException", 400)
    [listed] = _inventory(root, "multi")
    assert (listed["ArchiveId"], listed["CreationDate"], listed["SHA256TreeHash"]) == (
        archive_id, "2019-12-31T23:59:59.000Z", tree_hash(data))


def test_malformed_import_headers_are_refused(root: Any) -> None:
    root.create_vault(vaultName="bad")
    for archive_id, date, code in (("has space", CREATED, "InvalidParameterValueException"),
                                   ("-leading-dash", CREATED, "InvalidParameterValueException"),
                                   ("ok", "not a date", "InvalidParameterValueException")):
        with importing(archive_id, date), pytest.raises(ClientError) as exc:
            root.upload_archive(vaultName="bad", body=b"x")
        assert _code(exc) == (code, 400)
    assert root.describe_vault(vaultName="bad")["NumberOfArchives"] == 0


def test_import_needs_its_own_permission(server: ServerProcess, tmp_path: Path) -> None:
    root = server.client()
    root.create_vault(vaultName="perm")
    key = new_user(server, "uploader")
    everything_glacier = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "glacier:*", "Resource": "*"}]})
    admin(server, "put-user-policy", "--user", "uploader", "--policy-name", "glacier",
          "--policy-document", everything_glacier)
    user = enable_imports(client_for(server, key))
    assert user.upload_archive(vaultName="perm", body=b"plain upload")["archiveId"]
    calls: tuple[Callable[[], object], ...] = (
        lambda: user.upload_archive(vaultName="perm", body=b"x"),
        lambda: user.initiate_multipart_upload(vaultName="perm", partSize=str(MIB)))
    for call in calls:
        with importing("user_import_1", CREATED), pytest.raises(ClientError) as exc:
            call()
        assert _code(exc) == ("AccessDeniedException", 403)
        assert "icevault:ImportArchive" in exc.value.response["Error"]["Message"]
    assert root.describe_vault(vaultName="perm")["NumberOfArchives"] == 1
    allow_import = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "icevault:ImportArchive",
         "Resource": "arn:aws:glacier:*:*:vaults/perm"}]})
    admin(server, "put-user-policy", "--user", "uploader", "--policy-name", "import",
          "--policy-document", allow_import)
    import time

    deadline = time.monotonic() + 5  # identity policies are cached for --cache-ttl
    while True:
        try:
            with importing("user_import_1", CREATED):
                assert user.upload_archive(vaultName="perm", body=b"x")["archiveId"] == (
                    "user_import_1")
            break
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_conflict_says_nothing_of_another_accounts_archive(server: ServerProcess,
                                                             root: Any) -> None:
    """The answer to an import under an ID another account holds once named that account's
    vault, tree hash, size and deleted state: an existence oracle across accounts."""
    root.create_vault(vaultName="mine-only")
    secret_id = "cross_account_" + "q" * 100
    with importing(secret_id, CREATED):
        root.upload_archive(vaultName="mine-only", body=b"the other account's bytes",
                            archiveDescription="salary-2025.xlsx")
    other_key = admin(server, "create-account", "--account-id", "777788889999")["AccessKey"]
    other = enable_imports(client_for(server, other_key))
    other.create_vault(vaultName="theirs")
    with importing(secret_id, CREATED), pytest.raises(ClientError) as exc:
        other.upload_archive(vaultName="theirs", body=b"probe")
    assert _code(exc) == ("InvalidParameterValueException", 400)
    message = exc.value.response["Error"]["Message"]
    for leaked in ("mine-only", tree_hash(b"the other account's bytes"), "25", "deleted",
                   "salary"):
        assert leaked not in message, message
    assert root.describe_vault(vaultName="mine-only")["NumberOfArchives"] == 1


def test_a_backdated_import_is_held_by_a_vault_lock_from_its_arrival(root: Any) -> None:
    """An import keeps its source's creation date; a lock that denies deleting archives
    younger than 365 days counts from the later of that date and the import."""
    root.create_vault(vaultName="locked")
    account = root.describe_vault(vaultName="locked")["VaultARN"].split(":")[4]
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "keep-a-year", "Principal": "*", "Effect": "Deny", "Action": "glacier:DeleteArchive",
        "Resource": f"arn:aws:glacier:us-east-1:{account}:vaults/locked",
        "Condition": {"NumericLessThan": {"glacier:ArchiveAgeInDays": "365"}}}]})
    lock = root.initiate_vault_lock(vaultName="locked", policy={"Policy": policy})
    root.complete_vault_lock(vaultName="locked", lockId=lock["lockId"])
    old_id = "backdated_" + "b" * 100
    with importing(old_id, "2015-01-01T00:00:00Z"):
        root.upload_archive(vaultName="locked", body=b"kept for a year from now")
    with pytest.raises(ClientError) as exc:
        root.delete_archive(vaultName="locked", archiveId=old_id)
    assert _code(exc) == ("AccessDeniedException", 403)
    [listed] = _inventory(root, "locked")
    assert listed["CreationDate"] == "2015-01-01T00:00:00.000Z"  # still the source's date
