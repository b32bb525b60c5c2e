"""Authentication and access control against a real server with --auth sigv4."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import boto3
import botocore.config
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from icevault.core.treehash import tree_hash
from tests.e2e.test_vaults import error_of
from tests.support import REGION, ServerProcess, raw_request, self_signed_certificate, wait_for_job


def admin(server: ServerProcess, *args: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "icevault", "admin", "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def client_for(server: ServerProcess, key: dict[str, str]) -> Any:
    return boto3.client(
        "glacier", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("access") / "data", auth="sigv4",
                           extra_args=["--cache-ttl", "200ms"]).start()
    yield server
    server.stop()


def new_user(server: ServerProcess, name: str) -> dict[str, str]:
    admin(server, "create-user", name)
    key: dict[str, str] = admin(server, "create-access-key", "--user", name)["AccessKey"]
    return key


def all_operations(vault: str, archive_id: str, job_id: str, upload_id: str) -> dict[str, Callable[[Any], Any]]:
    """One call per Glacier operation, with well-formed arguments (a refused caller is refused
    before they are checked)."""
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "glacier:ListJobs", "Resource": "*"}]})
    return {
        "AbortMultipartUpload": lambda c: c.abort_multipart_upload(vaultName=vault, uploadId=upload_id),
        "AbortVaultLock": lambda c: c.abort_vault_lock(vaultName=vault),
        "AddTagsToVault": lambda c: c.add_tags_to_vault(vaultName=vault, Tags={"k": "v"}),
        "CompleteMultipartUpload": lambda c: c.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize="3", checksum=tree_hash(b"abc")),
        "CompleteVaultLock": lambda c: c.complete_vault_lock(vaultName=vault, lockId="lock"),
        "CreateVault": lambda c: c.create_vault(vaultName=vault),
        "DeleteArchive": lambda c: c.delete_archive(vaultName=vault, archiveId=archive_id),
        "DeleteVault": lambda c: c.delete_vault(vaultName=vault),
        "DeleteVaultAccessPolicy": lambda c: c.delete_vault_access_policy(vaultName=vault),
        "DeleteVaultNotifications": lambda c: c.delete_vault_notifications(vaultName=vault),
        "DescribeJob": lambda c: c.describe_job(vaultName=vault, jobId=job_id),
        "DescribeVault": lambda c: c.describe_vault(vaultName=vault),
        "GetDataRetrievalPolicy": lambda c: c.get_data_retrieval_policy(),
        "GetJobOutput": lambda c: c.get_job_output(vaultName=vault, jobId=job_id),
        "GetVaultAccessPolicy": lambda c: c.get_vault_access_policy(vaultName=vault),
        "GetVaultLock": lambda c: c.get_vault_lock(vaultName=vault),
        "GetVaultNotifications": lambda c: c.get_vault_notifications(vaultName=vault),
        "InitiateJob": lambda c: c.initiate_job(vaultName=vault, jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id}),
        "InitiateMultipartUpload": lambda c: c.initiate_multipart_upload(
            vaultName=vault, partSize=str(1024 * 1024)),
        "InitiateVaultLock": lambda c: c.initiate_vault_lock(vaultName=vault, policy={"Policy": policy}),
        "ListJobs": lambda c: c.list_jobs(vaultName=vault),
        "ListMultipartUploads": lambda c: c.list_multipart_uploads(vaultName=vault),
        "ListParts": lambda c: c.list_parts(vaultName=vault, uploadId=upload_id),
        "ListProvisionedCapacity": lambda c: c.list_provisioned_capacity(),
        "ListTagsForVault": lambda c: c.list_tags_for_vault(vaultName=vault),
        "ListVaults": lambda c: c.list_vaults(),
        "PurchaseProvisionedCapacity": lambda c: c.purchase_provisioned_capacity(),
        "RemoveTagsFromVault": lambda c: c.remove_tags_from_vault(vaultName=vault, TagKeys=["k"]),
        "SetDataRetrievalPolicy": lambda c: c.set_data_retrieval_policy(
            Policy={"Rules": [{"Strategy": "FreeTier"}]}),
        "SetVaultAccessPolicy": lambda c: c.set_vault_access_policy(
            vaultName=vault, policy={"Policy": policy}),
        "SetVaultNotifications": lambda c: c.set_vault_notifications(
            vaultName=vault, vaultNotificationConfig={"SNSTopic": "arn:aws:sns:us-east-1:1:t",
                                                      "Events": ["ArchiveRetrievalCompleted"]}),
        "UploadArchive": lambda c: c.upload_archive(vaultName=vault, body=b"abc"),
        "UploadMultipartPart": lambda c: c.upload_multipart_part(
            vaultName=vault, uploadId=upload_id, range="bytes 0-2/*", body=b"abc"),
    }


def test_user_without_policy_is_refused_everything(secured: ServerProcess) -> None:
    root = secured.client()
    root.create_vault(vaultName="guarded")
    data = b"guarded bytes"
    archive_id = root.upload_archive(vaultName="guarded", body=data)["archiveId"]
    job_id = root.initiate_job(vaultName="guarded", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
    wait_for_job(root, "guarded", job_id)
    upload_id = root.initiate_multipart_upload(vaultName="guarded", partSize=str(1024 * 1024))["uploadId"]
    user = client_for(secured, new_user(secured, "nobody"))
    operations = all_operations("guarded", archive_id, job_id, upload_id)
    spec_ops = {op.value for op in __import__("icevault.server.routes", fromlist=["Op"]).Op}
    assert set(operations) == spec_ops
    for name, call in operations.items():
        with pytest.raises(ClientError) as exc:
            call(user)
        assert error_of(exc)[:2] == ("AccessDeniedException", 403), name
        assert f"glacier:{name}" in error_of(exc)[2]
    # Nothing changed.
    described = root.describe_vault(vaultName="guarded")
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (1, len(data))
    assert root.list_tags_for_vault(vaultName="guarded")["Tags"] == {}
    assert [u["MultipartUploadId"] for u in root.list_multipart_uploads(vaultName="guarded")["UploadsList"]] == [upload_id]
    # Granting exactly GetJobOutput on this vault allows exactly that.
    region_arn = described["VaultARN"]
    admin(secured, "put-user-policy", "--user", "nobody", "--policy-name", "read-output",
          "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [{
              "Effect": "Allow", "Action": "glacier:GetJobOutput", "Resource": region_arn}]}))
    time.sleep(0.3)  # identity policies are cached for --cache-ttl (200 ms here)
    assert user.get_job_output(vaultName="guarded", jobId=job_id)["body"].read() == data
    with pytest.raises(ClientError) as exc:
        user.describe_job(vaultName="guarded", jobId=job_id)
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    root.create_vault(vaultName="other")
    with pytest.raises(ClientError) as exc:
        user.describe_vault(vaultName="other")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)


def test_wildcards_and_explicit_deny(secured: ServerProcess) -> None:
    root = secured.client()
    for name in ("logs-a", "logs-b", "secret"):
        root.create_vault(vaultName=name)
    user = client_for(secured, new_user(secured, "reader"))
    admin(secured, "put-user-policy", "--user", "reader", "--policy-name", "p",
          "--policy-document", json.dumps({"Statement": [
              {"Effect": "Allow", "Action": ["glacier:Describe*", "glacier:List*"], "Resource": "*"},
              {"Effect": "Deny", "Action": "glacier:*", "Resource": "arn:aws:glacier:*:*:vaults/secret"},
          ]}))
    assert user.describe_vault(vaultName="logs-a")["VaultName"] == "logs-a"
    assert "logs-b" in [v["VaultName"] for v in user.list_vaults()["VaultList"]]
    with pytest.raises(ClientError) as exc:
        user.describe_vault(vaultName="secret")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as exc:
        user.create_vault(vaultName="logs-c")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)


def test_cross_account_only_through_vault_policy(secured: ServerProcess) -> None:
    root = secured.client()
    owner = root.create_vault(vaultName="shared")["location"].split("/")[1]
    archive_id = root.upload_archive(vaultName="shared", body=b"shared bytes")["archiveId"]
    other = admin(secured, "create-account")
    other_root = client_for(secured, other["AccessKey"])
    with pytest.raises(ClientError) as exc:
        other_root.describe_vault(accountId=owner, vaultName="shared")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    root.set_vault_access_policy(vaultName="shared", policy={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
                       "Principal": {"AWS": f"arn:aws:iam::{other['AccountId']}:root"},
                       "Action": ["glacier:DescribeVault", "glacier:InitiateJob",
                                  "glacier:DescribeJob", "glacier:GetJobOutput"],
                       "Resource": f"arn:aws:glacier:us-east-1:{owner}:vaults/shared"}]})})
    assert other_root.describe_vault(accountId=owner, vaultName="shared")["VaultName"] == "shared"
    job_id = other_root.initiate_job(accountId=owner, vaultName="shared", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
    deadline = time.monotonic() + 10
    while not other_root.describe_job(accountId=owner, vaultName="shared", jobId=job_id)["Completed"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = other_root.get_job_output(accountId=owner, vaultName="shared", jobId=job_id)
    assert out["body"].read() == b"shared bytes"
    with pytest.raises(ClientError) as exc:
        other_root.delete_archive(accountId=owner, vaultName="shared", archiveId=archive_id)
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    # '-' means the caller's own account, where no such vault exists.
    with pytest.raises(ClientError) as exc:
        other_root.describe_vault(vaultName="shared")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    doc = json.loads(root.get_vault_access_policy(vaultName="shared")["policy"]["Policy"])
    assert doc["Statement"][0]["Effect"] == "Allow"
    root.delete_vault_access_policy(vaultName="shared")
    root.delete_vault_access_policy(vaultName="shared")
    with pytest.raises(ClientError) as exc:
        root.get_vault_access_policy(vaultName="shared")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as exc:
        other_root.describe_vault(accountId=owner, vaultName="shared")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)


def test_vault_policy_naming_the_account_delegates_to_its_users_policies(
        secured: ServerProcess) -> None:
    """AWS: a resource policy naming an account delegates to that account; its users still
    need an identity Allow. Naming the user itself (or everyone) grants directly."""
    root = secured.client()
    owner = root.create_vault(vaultName="delegated")["location"].split("/")[1]
    carol = client_for(secured, new_user(secured, "carol"))

    def allow(principal: Any) -> None:
        root.set_vault_access_policy(vaultName="delegated", policy={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal,
                           "Action": "glacier:DescribeVault",
                           "Resource": f"arn:aws:glacier:us-east-1:{owner}:vaults/delegated"}]})})

    for principal in ({"AWS": f"arn:aws:iam::{owner}:root"}, {"AWS": owner}):
        allow(principal)
        with pytest.raises(ClientError) as exc:
            carol.describe_vault(vaultName="delegated")
        assert error_of(exc)[:2] == ("AccessDeniedException", 403), principal
    for allowed in ({"AWS": f"arn:aws:iam::{owner}:user/carol"}, "*"):
        allow(allowed)
        assert carol.describe_vault(vaultName="delegated")["VaultName"] == "delegated"
    # and a Deny naming the account still binds its users
    root.set_vault_access_policy(vaultName="delegated", policy={"Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "glacier:DescribeVault",
             "Resource": "*"},
            {"Effect": "Deny", "Principal": {"AWS": owner}, "Action": "glacier:DescribeVault",
             "Resource": "*"}]})})
    with pytest.raises(ClientError) as exc:
        carol.describe_vault(vaultName="delegated")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)


def test_vault_lock_binds_the_root(secured: ServerProcess) -> None:
    root = secured.client()
    arn = root.describe_vault(vaultName=root.create_vault(vaultName="locked")["location"].split("/")[-1])["VaultARN"]
    archive_id = root.upload_archive(vaultName="locked", body=b"compliance record")["archiveId"]
    lock_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "no-early-deletes", "Effect": "Deny", "Principal": "*",
        "Action": "glacier:DeleteArchive", "Resource": arn,
        "Condition": {"NumericLessThan": {"glacier:ArchiveAgeInDays": "365"}}}]})
    with pytest.raises(ClientError) as exc:
        root.get_vault_lock(vaultName="locked")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
    lock_id = root.initiate_vault_lock(vaultName="locked", policy={"Policy": lock_policy})["lockId"]
    state = root.get_vault_lock(vaultName="locked")
    assert state["State"] == "InProgress" and state["ExpirationDate"]
    with pytest.raises(ClientError) as exc:
        root.initiate_vault_lock(vaultName="locked", policy={"Policy": lock_policy})
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as exc:
        root.complete_vault_lock(vaultName="locked", lockId="wrong")
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    root.complete_vault_lock(vaultName="locked", lockId=lock_id)
    root.complete_vault_lock(vaultName="locked", lockId=lock_id)  # idempotent
    state = root.get_vault_lock(vaultName="locked")
    assert state["State"] == "Locked" and "ExpirationDate" not in state
    assert json.loads(state["Policy"]) == json.loads(lock_policy)
    with pytest.raises(ClientError) as exc:
        root.delete_archive(vaultName="locked", archiveId=archive_id)
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as exc:
        root.abort_vault_lock(vaultName="locked")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    with pytest.raises(ClientError) as exc:
        root.complete_vault_lock(vaultName="locked", lockId="wrong")
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    assert root.describe_vault(vaultName="locked")["NumberOfArchives"] == 1


def test_in_progress_lock_can_be_aborted(secured: ServerProcess) -> None:
    root = secured.client()
    root.create_vault(vaultName="trial-lock")
    root.abort_vault_lock(vaultName="trial-lock")  # nothing to abort: fine
    policy = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*",
                                        "Action": "glacier:AddTagsToVault", "Resource": "*"}]})
    root.initiate_vault_lock(vaultName="trial-lock", policy={"Policy": policy})
    with pytest.raises(ClientError) as exc:  # in force while in progress, for testing it
        root.add_tags_to_vault(vaultName="trial-lock", Tags={"a": "b"})
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)
    root.abort_vault_lock(vaultName="trial-lock")
    root.add_tags_to_vault(vaultName="trial-lock", Tags={"a": "b"})
    with pytest.raises(ClientError) as exc:
        root.initiate_vault_lock(vaultName="trial-lock", policy={"Policy": "{not json"})
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)


def signed_raw(server: ServerProcess, method: str, path: str, body: bytes = b"",
               headers: dict[str, str] | None = None, secret: str | None = None,
               key_id: str | None = None, when: str | None = None) -> AWSRequest:
    key, real_secret = server.root_credentials()
    request = AWSRequest(method=method, url=server.url + path, data=body,
                         headers={"x-amz-glacier-version": "2012-06-01", **(headers or {})})
    if when is not None:
        request.context["timestamp"] = when
        request.headers["X-Amz-Date"] = when

        class FixedTime(SigV4Auth):
            def _modify_request_before_signing(self, request: AWSRequest) -> None:
                super()._modify_request_before_signing(request)
                request.headers.replace_header("X-Amz-Date", when)
                request.context["timestamp"] = when

            def add_auth(self, request: AWSRequest) -> None:
                request.context["timestamp"] = when
                self._modify_request_before_signing(request)
                canonical = self.canonical_request(request)
                string_to_sign = self.string_to_sign(request, canonical)
                self._inject_signature_to_request(request, self.signature(string_to_sign, request))

        FixedTime(Credentials(key_id or key, secret or real_secret), "glacier", REGION).add_auth(request)
    else:
        SigV4Auth(Credentials(key_id or key, secret or real_secret), "glacier", REGION).add_auth(request)
    return request


def send(server: ServerProcess, request: AWSRequest, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Any:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    all_headers = {**dict(request.headers.items()), **(headers or {})}
    path = request.url.split(str(server.port), 1)[1]
    conn.request(request.method, path, body=request.body if body is None else body, headers=all_headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload) if payload else None


def test_signature_failures_change_nothing(secured: ServerProcess) -> None:
    root = secured.client()
    root.create_vault(vaultName="sig")
    body = b"tamper-proof"
    sha = hashlib.sha256(body).hexdigest()
    upload_headers = {"x-amz-sha256-tree-hash": tree_hash(body), "x-amz-content-sha256": sha}
    path = "/-/vaults/sig/archives"
    cases = [
        ("wrong secret", signed_raw(secured, "POST", path, body, upload_headers, secret="x" * 40),
         None, None, 403, "InvalidSignatureException"),
        ("unknown key", signed_raw(secured, "POST", path, body, upload_headers, key_id="AKIVUNKNOWN000000000"),
         None, None, 400, "UnrecognizedClientException"),
        ("tampered body", signed_raw(secured, "POST", path, body, upload_headers),
         b"tamper-prooF", None, 400, "InvalidParameterValueException"),
        ("tampered header", signed_raw(secured, "POST", path, body,
                                       {**upload_headers, "x-amz-archive-description": "a"}),
         None, {"x-amz-archive-description": "b"}, 403, "InvalidSignatureException"),
        ("replayed", signed_raw(secured, "POST", path, body, upload_headers,
                                when=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 1200))),
         None, None, 403, "InvalidSignatureException"),
    ]
    for name, request, body_override, header_override, status, code in cases:
        got_status, payload = send(secured, request, body_override, header_override)
        assert (got_status, payload["code"]) == (status, code), name
        if name == "replayed":
            assert payload["message"].startswith("Signature expired"), payload
    # The tree hash left out of the signature: then the signed SHA-256 is what binds the body,
    # and a body swapped together with an unsigned tree hash of its own is refused.
    tampered = b"tamper-prooF"
    unsigned_tree = signed_raw(secured, "POST", path, body, {"x-amz-content-sha256": sha})
    got_status, payload = send(secured, unsigned_tree, tampered,
                               {"x-amz-sha256-tree-hash": tree_hash(tampered)})
    assert (got_status, payload["code"]) == (400, "InvalidParameterValueException")
    assert "x-amz-content-sha256" in payload["message"]
    # A JSON body swapped under a signed x-amz-content-sha256 is refused too.
    job_body = json.dumps({"Type": "inventory-retrieval"}).encode()
    job_request = signed_raw(secured, "POST", "/-/vaults/sig/jobs", job_body,
                             {"x-amz-content-sha256": hashlib.sha256(job_body).hexdigest()})
    swapped = json.dumps({"Type": "inventory-retrieval", "Format": "CSV"}).encode()
    got_status, payload = send(secured, job_request, swapped)
    assert (got_status, payload["code"]) == (403, "InvalidSignatureException")
    assert "x-amz-content-sha256" in payload["message"]
    assert root.list_jobs(vaultName="sig")["JobList"] == []
    unsigned = raw_request(secured, "POST", path, body=body, headers=upload_headers, sign=False)
    assert (unsigned.status, unsigned.json()["code"]) == (400, "MissingAuthenticationTokenException")
    described = root.describe_vault(vaultName="sig")
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (0, 0)
    ok_status, _ = send(secured, signed_raw(secured, "POST", path, body, upload_headers))
    assert ok_status == 201


def test_disabled_key_stops_working(secured: ServerProcess) -> None:
    key = admin(secured, "create-access-key")["AccessKey"]
    client = client_for(secured, key)
    client.list_vaults()
    admin(secured, "disable-access-key", key["AccessKeyId"])
    time.sleep(0.3)  # keys are cached for --cache-ttl (200 ms here)
    with pytest.raises(ClientError) as exc:
        client.list_vaults()
    assert error_of(exc)[:2] == ("UnrecognizedClientException", 400)
    listed = admin(secured, "list-access-keys")["AccessKeys"]
    assert {"AccessKeyId": key["AccessKeyId"], "Status": "Inactive"}.items() <= next(
        k for k in listed if k["AccessKeyId"] == key["AccessKeyId"]).items()
    assert all("SecretAccessKey" not in k for k in listed)


def test_presigned_url(secured: ServerProcess) -> None:
    root = secured.client()
    root.create_vault(vaultName="presigned")
    url = root.generate_presigned_url("describe_vault", Params={"accountId": "-", "vaultName": "presigned"})
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        assert json.loads(response.read())["VaultName"] == "presigned"


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(
            (self.path, self.headers["x-icevault-topic"], json.loads(self.rfile.read(length))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_notifications_go_only_to_registered_topics(tmp_path: Any) -> None:
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{hook.server_port}"
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--notification-url", f"{base}/operator",
                                       "--webhook-allow-private"]).start()
    try:
        root = server.client()
        root.create_vault(vaultName="notify")
        with pytest.raises(ClientError) as exc:
            root.get_vault_notifications(vaultName="notify")
        assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
        account = root.describe_vault(vaultName="notify")["VaultARN"].split(":")[4]
        archive_id = root.upload_archive(vaultName="notify", body=b"ping")["archiveId"]
        # What is not a topic ARN is refused; a URL cannot stand for a topic.
        for topic in (f"{base}/attacker", "http://169.254.169.254/latest/meta-data",
                      "arn:aws:sns:us-east-1:12345:short", f"arn:aws:sns:us-east-1:{account}:x\n"):
            with pytest.raises(ClientError) as exc:
                root.set_vault_notifications(vaultName="notify", vaultNotificationConfig={
                    "SNSTopic": topic, "Events": ["ArchiveRetrievalCompleted"]})
            assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
            assert "Invalid SNSTopic" in error_of(exc)[2]
            with pytest.raises(ClientError) as exc:
                root.initiate_job(vaultName="notify", jobParameters={
                    "Type": "archive-retrieval", "ArchiveId": archive_id, "SNSTopic": topic})
            assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
        # Any well-formed ARN is accepted, as on AWS (SDKs' tests name made-up topics); with
        # no topic registered under it, its notification is recorded as undeliverable and
        # goes only to the operator's webhook.
        made_up = "arn:aws:sns:us-east-1:123456789012:sdk-test-topic"
        root.set_vault_notifications(vaultName="notify", vaultNotificationConfig={
            "SNSTopic": made_up, "Events": ["ArchiveRetrievalCompleted"]})
        job_id = root.initiate_job(vaultName="notify", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
        wait_for_job(root, "notify", job_id)
        deadline = time.monotonic() + 10
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(path, t) for path, t, _ in _Hook.received] == [("/operator", made_up)]
        log = admin(server, "list-notifications", "--vault", "notify")["Notifications"]
        assert sorted((n["Target"] or "", n["Status"]) for n in log) == [
            ("", "undeliverable"), (f"{base}/operator", "delivered")]
        _Hook.received.clear()
        root.delete_vault_notifications(vaultName="notify")
        created = admin(server, "create-topic", "archive-ready", "--url", f"{base}/ready")
        topic = created["TopicArn"]
        assert topic == f"arn:aws:sns:us-east-1:{account}:archive-ready"
        job_topic = admin(server, "create-topic", "mine", "--url", f"{base}/mine")["TopicArn"]
        assert [t["TopicArn"] for t in admin(server, "list-topics")["Topics"]] == [
            topic, job_topic]
        root.set_vault_notifications(vaultName="notify", vaultNotificationConfig={
            "SNSTopic": topic, "Events": ["ArchiveRetrievalCompleted"]})
        assert root.get_vault_notifications(vaultName="notify")["vaultNotificationConfig"] == {
            "SNSTopic": topic, "Events": ["ArchiveRetrievalCompleted"]}
        inventory_id = root.initiate_job(vaultName="notify", jobParameters={
            "Type": "inventory-retrieval"})["jobId"]
        wait_for_job(root, "notify", inventory_id)
        job_id = root.initiate_job(vaultName="notify", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id, "SNSTopic": job_topic})["jobId"]
        wait_for_job(root, "notify", job_id)
        # the job's own topic and the vault's, each to its URL and to the operator's hook
        expected = {("/mine", job_topic, job_id), ("/operator", job_topic, job_id),
                    ("/ready", topic, job_id), ("/operator", topic, job_id)}
        deadline = time.monotonic() + 10
        while len(_Hook.received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
        got = {(path, t, m["JobId"]) for path, t, m in _Hook.received}
        assert got == expected
        assert all(m["StatusCode"] == "Succeeded" for _, _, m in _Hook.received)
        assert len(_Hook.received) == 4  # the inventory job matched no configured event
        log = admin(server, "list-notifications", "--vault", "notify")["Notifications"]
        assert sorted((n["Target"], n["Status"]) for n in log if n["JobId"] == job_id) == sorted(
            (f"{base}{path}", "delivered") for path, _, _ in expected)
        root.delete_vault_notifications(vaultName="notify")
        with pytest.raises(ClientError) as exc:
            root.get_vault_notifications(vaultName="notify")
        assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)
        admin(server, "delete-topic", "mine")
        assert [t["TopicArn"] for t in admin(server, "list-topics")["Topics"]] == [topic]
    finally:
        server.stop()
        hook.shutdown()
        hook.server_close()


def test_data_retrieval_policy_and_capacity(tmp_path: Any) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        root = server.client()
        assert root.get_data_retrieval_policy()["Policy"] == {"Rules": [{"Strategy": "FreeTier"}]}
        with pytest.raises(ClientError) as exc:
            root.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "BytesPerHour"}]})
        assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
        with pytest.raises(ClientError) as exc:
            root.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "None", "BytesPerHour": 5}]})
        assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
        root.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "BytesPerHour", "BytesPerHour": 100}]})
        assert root.get_data_retrieval_policy()["Policy"] == {
            "Rules": [{"Strategy": "BytesPerHour", "BytesPerHour": 100}]}
        root.create_vault(vaultName="rate")
        small = root.upload_archive(vaultName="rate", body=b"x" * 60)["archiveId"]
        root.initiate_job(vaultName="rate", jobParameters={"Type": "archive-retrieval", "ArchiveId": small})
        with pytest.raises(ClientError) as exc:
            root.initiate_job(vaultName="rate", jobParameters={"Type": "archive-retrieval", "ArchiveId": small})
        assert error_of(exc)[:2] == ("PolicyEnforcedException", 400)
        root.set_data_retrieval_policy(Policy={"Rules": [{"Strategy": "None"}]})
        root.initiate_job(vaultName="rate", jobParameters={"Type": "archive-retrieval", "ArchiveId": small})
        assert root.list_provisioned_capacity()["ProvisionedCapacityList"] == []
        ids = [root.purchase_provisioned_capacity()["capacityId"] for _ in range(2)]
        with pytest.raises(ClientError) as exc:
            root.purchase_provisioned_capacity()
        assert error_of(exc)[:2] == ("LimitExceededException", 400)
        listed = root.list_provisioned_capacity()["ProvisionedCapacityList"]
        assert [u["CapacityId"] for u in listed] == ids
        assert all(u["ExpirationDate"] > u["StartDate"] for u in listed)
    finally:
        server.stop()


def test_credentials_file_contract(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    text = fresh_server.credentials_file.read_text()
    assert text.startswith("[icevault]\naws_access_key_id = AKIV")
    assert oct(fresh_server.credentials_file.stat().st_mode & 0o777) == "0o600"
    assert oct((fresh_server.data_dir / "metadata.sqlite3").stat().st_mode & 0o777) == "0o600"
    assert "AWS_SHARED_CREDENTIALS_FILE=" in fresh_server.log() and "AWS_PROFILE=icevault" in fresh_server.log()
    fresh_server.restart()  # not regenerated on a later start
    assert fresh_server.credentials_file.read_text() == text


def test_https_and_secure_transport_condition(tmp_path: Any) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]).start()
    try:
        client = server.tls_client(cert)
        client.create_vault(vaultName="tls")
        arn = client.describe_vault(vaultName="tls")["VaultARN"]
        # Deny everything not sent over TLS: requests through HTTPS still pass.
        client.set_vault_access_policy(vaultName="tls", policy={"Policy": json.dumps({
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "glacier:*", "Resource": arn,
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})})
        data = b"over tls" * 1000
        archive_id = client.upload_archive(vaultName="tls", body=data)["archiveId"]
        job_id = client.initiate_job(vaultName="tls", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
        wait_for_job(client, "tls", job_id)
        # No zero-copy over TLS: the output is streamed through the TLS layer instead.
        assert client.get_job_output(vaultName="tls", jobId=job_id)["body"].read() == data
        assert "https://" in server.log()
    finally:
        server.stop()


def test_admin_help_needs_no_data_directory(tmp_path: Any) -> None:
    """--help must work anywhere, before any server ever ran there."""
    for command in (["admin", "--help"], ["admin", "create-user", "--help"],
                    ["admin", "scrub", "--help"], ["admin", "create-topic", "--help"]):
        result = subprocess.run([sys.executable, "-m", "icevault", *command], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith("Usage: icevault admin")
    assert list(tmp_path.iterdir()) == []  # and it created nothing
    missing = subprocess.run([sys.executable, "-m", "icevault", "admin", "list-users"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "holds no icevault data" in missing.stderr
