"""The testing kit (icevault.testing and ``serve --test-controls``) as its users meet it:
faults seen through boto3 with their exact wire form, clock control, seeded vaults, the
pytest plugin, and a server without test controls."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from icevault.client import download_job_output
from icevault.client.exceptions import JobNotReadyError
from icevault.core.errors import InvalidParameterValueError
from icevault.core.treehash import MIB, TreeHasher, tree_hash
from icevault.testing import Fault, IcevaultServer
from tests.support import ServerProcess, pattern


@pytest.fixture(scope="module")
def server() -> Iterator[IcevaultServer]:
    with IcevaultServer(tier_delays={"standard": "4h", "bulk": "12h"}) as started:
        yield started


@pytest.fixture()
def kit(server: IcevaultServer) -> Iterator[IcevaultServer]:
    server.reset()
    yield server


def _no_retries(server: IcevaultServer) -> Any:
    return server.client(retries={"total_max_attempts": 1})


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = exc.value.response
    return (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"],
            response["Error"]["Message"])


def _retrieval(client: Any, vault: str, archive_id: str, tier: str = "Expedited") -> str:
    return str(client.initiate_job(vaultName=vault, jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": tier})["jobId"])


def _wait(client: Any, vault: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.describe_job(vaultName=vault, jobId=job_id)
        if job["Completed"]:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not complete")


# -- faults, as boto3 sees them ------------------------------------------------------------

def test_throttle_is_glacier_throttling_and_sdk_retries_absorb_it(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="t")
    kit.inject(Fault.throttle("DescribeVault", times=2))
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            client.describe_vault(vaultName="t")
        assert _error(exc) == ("ThrottlingException", 400, "Rate exceeded")
        assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
            "ThrottlingException")
    assert client.describe_vault(vaultName="t")["VaultName"] == "t"  # times=2 is spent
    kit.inject(Fault.throttle("DescribeVault", times=2))
    # botocore's default retries treat ThrottlingException as retryable: code under test
    # that uses them never sees these two.
    assert kit.client().describe_vault(vaultName="t")["VaultName"] == "t"
    seen = kit.faults_seen()
    assert [(f["kind"], f["operation"], f["vault"], f["code"], f["status"]) for f in seen] == [
        ("error", "DescribeVault", "t", "ThrottlingException", 400)] * 4


def test_error_fault_with_probability_is_seeded_and_changes_nothing(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="p")

    def outcomes() -> list[str]:
        result = []
        for n in range(12):
            try:
                client.upload_archive(vaultName="p", body=b"x" * (n + 1))
                result.append("ok")
            except ClientError as exc:
                error = exc.response
                assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
                    "ServiceUnavailableException", 503)
                result.append("503")
        return result

    kit.inject(Fault.error("UploadArchive", "ServiceUnavailableException", status=503,
                           probability=0.5, seed=7))
    first = outcomes()
    kit.clear_faults()
    kit.inject(Fault.error("UploadArchive", "ServiceUnavailableException", status=503,
                           probability=0.5, seed=7))
    assert outcomes() == first  # the same seed, the same choices
    assert "ok" in first and "503" in first
    # A refused upload stored nothing: the vault counts only the accepted ones.
    assert client.describe_vault(vaultName="p")["NumberOfArchives"] == 2 * first.count("ok")


def test_faults_apply_after_authentication(kit: IcevaultServer) -> None:
    kit.client().create_vault(vaultName="j")
    kit.inject(Fault.error("DescribeVault", "ServiceUnavailableException", 503, times=1,
                           message="try later"))
    # An unsigned request is refused as it would be anyway, and takes no fault.
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{kit.endpoint_url}/-/vaults/j", timeout=10)
    with exc.value:
        assert json.loads(exc.value.read())["code"] == "MissingAuthenticationTokenException"
    assert kit.faults_seen() == []
    with pytest.raises(ClientError) as refused:
        _no_retries(kit).describe_vault(vaultName="j")
    assert _error(refused) == ("ServiceUnavailableException", 503, "try later")
    assert len(kit.faults_seen()) == 1


def test_corrupt_body_serves_wrong_bytes_under_the_right_checksum(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="c")
    data = pattern(3 * MIB + 5, seed=3)
    archive_id = client.upload_archive(vaultName="c", body=data)["archiveId"]
    job_id = _retrieval(client, "c", archive_id)
    _wait(client, "c", job_id)
    kit.inject(Fault.corrupt_body("GetJobOutput", times=1))
    bad = client.get_job_output(vaultName="c", jobId=job_id)
    body = bad["body"].read()
    assert bad["checksum"] == tree_hash(data)  # the header of the right bytes
    assert len(body) == len(data) and body != data
    assert sum(a != b for a, b in zip(body, data, strict=True)) == 1
    good = client.get_job_output(vaultName="c", jobId=job_id)
    assert good["body"].read() == data


def test_drop_connection_cuts_after_exactly_the_bytes_asked(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="d")
    data = pattern(3 * MIB, seed=4)
    archive_id = client.upload_archive(vaultName="d", body=data)["archiveId"]
    job_id = _retrieval(client, "d", archive_id)
    _wait(client, "d", job_id)
    kit.inject(Fault.drop_connection("GetJobOutput", after_bytes=MIB + 17, times=1))
    response = client.get_job_output(vaultName="d", jobId=job_id)
    stream = response["body"]
    received = b""
    with pytest.raises(Exception) as exc:
        while chunk := stream.read(256 * 1024):
            received += chunk
    stream.close()
    assert "IncompleteRead" in repr(exc.value) or "Connection" in type(exc.value).__name__
    assert received == data[: MIB + 17] or data.startswith(received)
    assert len(received) <= MIB + 17
    assert kit.faults_seen()[0]["after_bytes"] == MIB + 17
    assert client.get_job_output(vaultName="d", jobId=job_id)["body"].read() == data


def test_fail_job_fails_the_next_job_of_that_vault_only(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    for vault in ("photos", "other"):
        client.create_vault(vaultName=vault)
    ids = {v: client.upload_archive(vaultName=v, body=b"abc")["archiveId"]
           for v in ("photos", "other")}
    kit.inject(Fault.fail_job(vault="photos"))
    other = _wait(client, "other", _retrieval(client, "other", ids["other"]))
    assert other["StatusCode"] == "Succeeded"
    failed = _wait(client, "photos", _retrieval(client, "photos", ids["photos"]))
    assert (failed["StatusCode"], failed["Completed"]) == ("Failed", True)
    assert "injected" in failed["StatusMessage"]
    with pytest.raises(ClientError):
        client.get_job_output(vaultName="photos", jobId=failed["JobId"])
    again = _wait(client, "photos", _retrieval(client, "photos", ids["photos"]))
    assert again["StatusCode"] == "Succeeded"  # times=1


def test_downloader_reports_a_failed_job(kit: IcevaultServer, tmp_path: Path) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="f")
    archive_id = client.upload_archive(vaultName="f", body=pattern(MIB))["archiveId"]
    kit.inject(Fault.fail_job())
    job = _wait(client, "f", _retrieval(client, "f", archive_id))
    with pytest.raises(JobNotReadyError, match="Failed"):
        download_job_output("f", job["JobId"], tmp_path / "out", client=client)
    assert not (tmp_path / "out").exists()


def test_bad_rules_are_refused_with_the_reason(kit: IcevaultServer) -> None:
    with pytest.raises(InvalidParameterValueError, match="applies to GetJobOutput"):
        Fault.corrupt_body("DescribeVault")
    for record in ({"kind": "nonsense", "operation": "X"},
                   {"kind": "error", "operation": "DescribeVault", "code": "X", "status": 200},
                   {"kind": "error", "operation": "DescribeVault", "code": "X", "status": 400,
                    "colour": "red"}):
        request = urllib.request.Request(f"{kit.endpoint_url}/_icevault/test/faults",
                                         data=json.dumps(record).encode(), method="POST")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=10)
        with exc.value:
            assert exc.value.code == 400
            assert json.loads(exc.value.read())["code"] == "InvalidParameterValueException"


# -- the clock -----------------------------------------------------------------------------

def test_standard_job_completes_after_its_delay_and_expires_a_day_later(
        kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="clock")
    archive_id = client.upload_archive(vaultName="clock", body=b"cold bytes")["archiveId"]
    job_id = _retrieval(client, "clock", archive_id, tier="Standard")
    before = client.describe_job(vaultName="clock", jobId=job_id)
    assert before["StatusCode"] == "InProgress"
    kit.advance_clock(hours=3, minutes=59)
    assert client.describe_job(vaultName="clock", jobId=job_id)["StatusCode"] == "InProgress"
    kit.advance_clock(minutes=1)
    done = client.describe_job(vaultName="clock", jobId=job_id)
    assert done["StatusCode"] == "Succeeded"
    created, completed = (done["CreationDate"], done["CompletionDate"])
    from icevault.core.models import parse_iso8601

    assert parse_iso8601(completed) - parse_iso8601(created) >= 4 * 3600 * 1000
    assert client.get_job_output(vaultName="clock", jobId=job_id)["body"].read() == b"cold bytes"
    kit.advance_clock(hours=24, seconds=1)
    with pytest.raises(ClientError) as exc:
        client.get_job_output(vaultName="clock", jobId=job_id)
    assert _error(exc)[:2] == ("ResourceNotFoundException", 404)


def test_multipart_upload_expires_with_the_clock(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    client.create_vault(vaultName="mp")
    upload_id = client.initiate_multipart_upload(vaultName="mp", partSize=str(MIB))["uploadId"]
    client.upload_multipart_part(vaultName="mp", uploadId=upload_id,
                                 range=f"bytes 0-{MIB - 1}/*", body=pattern(MIB))
    kit.advance_clock(hours=23)
    assert [u["MultipartUploadId"] for u in
            client.list_multipart_uploads(vaultName="mp")["UploadsList"]] == [upload_id]
    kit.advance_clock(hours=1, seconds=1)
    assert client.list_multipart_uploads(vaultName="mp")["UploadsList"] == []
    with pytest.raises(ClientError) as exc:
        client.list_parts(vaultName="mp", uploadId=upload_id)
    assert _error(exc)[:2] == ("ResourceNotFoundException", 404)


def test_clock_only_moves_forward(kit: IcevaultServer) -> None:
    now = kit.now()
    with pytest.raises(ValueError, match="advance_seconds"):
        kit.advance_clock(hours=-1)
    assert kit.now() - now < timedelta(minutes=1)


# -- seeded vaults -------------------------------------------------------------------------

def _inventory(client: Any, vault: str, **params: Any) -> dict[str, Any]:
    job_id = client.initiate_job(vaultName=vault, jobParameters={
        "Type": "inventory-retrieval", "Format": "JSON", **params})["jobId"]
    _wait(client, vault, job_id)
    return dict(json.loads(client.get_job_output(vaultName=vault, jobId=job_id)["body"].read()))


def test_seeded_vault_is_exact_glacier_bookkeeping(kit: IcevaultServer) -> None:
    report = kit.seed_vault("photos", archives=2000, sizes=(1, 8 * MIB), seed=5)
    client = _no_retries(kit)
    vault = client.describe_vault(vaultName="photos")
    assert (vault["NumberOfArchives"], vault["SizeInBytes"]) == (2000, report["bytes"])
    archives = _inventory(client, "photos")["ArchiveList"]
    assert len(archives) == 2000 and len({a["ArchiveId"] for a in archives}) == 2000
    assert all(len(a["ArchiveId"]) == 138 for a in archives)
    sizes = [a["Size"] for a in archives]
    assert min(sizes) >= 1 and max(sizes) <= 8 * MIB and sum(sizes) == report["bytes"]
    years = {a["CreationDate"][:4] for a in archives}
    assert len(years) >= 4  # spread over years, so date filters have something to filter
    descriptions = [a["ArchiveDescription"] for a in archives]
    mt2 = [d for d in descriptions if d.startswith("mt2 ")]
    assert mt2 and "" in descriptions and len(set(descriptions)) < len(descriptions)
    assert any(d.startswith("<m><v>4</v><p>") for d in descriptions)
    record = json.loads(base64.urlsafe_b64decode(mt2[0][4:] + "=" * (-len(mt2[0][4:]) % 4)))
    assert set(record) == {"filename", "mtime"}
    assert any(('"' in d or "," in d) and not d.startswith(("mt2", "<m>")) for d in descriptions)
    # Tree hashes are the real tree hashes of the archives' bytes (zeros).
    for archive in sorted(archives, key=lambda a: a["Size"])[:: 400]:
        hasher = TreeHasher()
        hasher.update(bytes(archive["Size"]))
        assert archive["SHA256TreeHash"] == hasher.hexdigest()
    small = min(archives, key=lambda a: a["Size"] if a["Size"] > MIB else 1 << 60)
    job = _wait(client, "photos", _retrieval(client, "photos", small["ArchiveId"]))
    output = client.get_job_output(vaultName="photos", jobId=job["JobId"])
    assert output["body"].read() == bytes(small["Size"])
    assert output["checksum"] == small["SHA256TreeHash"]
    # Date filters select by creation date.
    cut = sorted(a["CreationDate"] for a in archives)[1000]
    later = _inventory(client, "photos", InventoryRetrievalParameters={"StartDate": cut})
    assert len(later["ArchiveList"]) == sum(a["CreationDate"] >= cut for a in archives)


def test_seeding_is_repeatable_by_seed(kit: IcevaultServer) -> None:
    client = _no_retries(kit)
    kit.seed_vault("a", archives=50, sizes=(1, 1000), descriptions="mt2", seed=11)
    kit.seed_vault("b", archives=50, sizes=(1, 1000), descriptions="mt2", seed=11)
    first, second = (_inventory(client, v)["ArchiveList"] for v in ("a", "b"))

    def facts(archive: dict[str, Any]) -> tuple[int, str, str]:
        text = archive["ArchiveDescription"][4:]
        record = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        # The mtime follows the creation date, which is relative to the time of seeding.
        return archive["Size"], archive["SHA256TreeHash"], record["filename"]

    assert [facts(a) for a in first] == [facts(a) for a in second]
    assert len({a["ArchiveId"] for a in first + second}) == 100


def test_reset_removes_vaults_and_rules(kit: IcevaultServer) -> None:
    kit.seed_vault("gone", archives=10)
    kit.inject(Fault.throttle("ListVaults"))
    kit.reset()
    assert _no_retries(kit).list_vaults()["VaultList"] == []
    assert kit.faults_seen() == []


# -- start-up rules, and a server without test controls ---------------------------------------

def test_faults_file_is_in_force_from_the_start() -> None:
    with IcevaultServer(auth="off", faults=[Fault.throttle("ListVaults", times=1)]) as server:
        # The wire form, as any SDK reads it: Glacier's JSON error body and error-type header.
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(f"{server.endpoint_url}/-/vaults", timeout=10)
        with exc.value:
            assert exc.value.code == 400
            assert exc.value.headers["x-amzn-ErrorType"] == "ThrottlingException"
            assert exc.value.headers["x-amzn-RequestId"]
            assert json.loads(exc.value.read()) == {
                "code": "ThrottlingException", "message": "Rate exceeded", "type": "Client"}
        assert _no_retries(server).list_vaults()["VaultList"] == []
        assert "injected fault 0: error on ListVaults" in server.log()


def test_without_test_controls_the_endpoint_does_not_exist(tmp_path: Path) -> None:
    plain = ServerProcess(tmp_path / "data", auth="off").start()
    try:
        started = plain.log()  # the server prints nothing about test controls
        assert "test controls" not in started.lower() and "_icevault" not in started
        for method, path, body in (("POST", "/_icevault/test/faults",
                                    {"kind": "error", "operation": "ListVaults",
                                     "code": "ThrottlingException", "status": 400}),
                                   ("POST", "/_icevault/test/clock", {"advance_seconds": 9e5}),
                                   ("GET", "/_icevault/test/faults/seen", None),
                                   ("POST", "/_icevault/test/reset", None)):
            conn = http.client.HTTPConnection("127.0.0.1", plain.port, timeout=10)
            conn.request(method, path, body=None if body is None else json.dumps(body))
            response = conn.getresponse()
            payload = json.loads(response.read())
            conn.close()
            assert response.status == 404, path
            assert payload["code"] == "ResourceNotFoundException"
        client = plain.client()
        assert client.list_vaults()["VaultList"] == []  # no rule was taken
    finally:
        plain.stop()


def test_faults_file_needs_test_controls(tmp_path: Path) -> None:
    rules = tmp_path / "faults.json"
    rules.write_text(json.dumps([Fault.throttle("ListVaults").to_json()]))
    result = subprocess.run(
        [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "d"), "--faults", str(rules)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--faults needs --test-controls" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("warm", [False, True], ids=["new-interpreter", "forked"])
def test_a_kit_server_ignores_the_settings_a_shell_exports(
        warm: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell may export a real server's settings (ICEVAULT_METADATA_URL for
    production): a test server is configured by its arguments alone."""
    monkeypatch.setenv("ICEVAULT_METADATA_URL", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    monkeypatch.setenv("ICEVAULT_AUTH", "off")
    monkeypatch.setenv("ICEVAULT_JOB_EXPIRY", "1s")
    with IcevaultServer(warm_start=warm) as server:
        glacier = server.client()
        glacier.create_vault(vaultName="kit")
        assert [v["VaultName"] for v in glacier.list_vaults()["VaultList"]] == ["kit"]
        stranger = boto3.client(
            "glacier", endpoint_url=server.endpoint_url, region_name=server.region,
            aws_access_key_id="AKIANOBODY", aws_secret_access_key="x" * 40,
            config=botocore.config.Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as refused:
            stranger.list_vaults()
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
