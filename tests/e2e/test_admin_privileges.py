"""Privilege through the admin API: what a user allowed one key action can reach.

A user allowed only ``icevault:CreateAccessKey`` once got an account-root key by leaving
out ``user`` (the root can delete archives and write policies). Every case here checks the
privilege that comes out, with a real client, not only a status code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_admin_api import AdminCli, _credentials
from tests.support import REGION, ServerProcess


def _client(server: ServerProcess, key: dict[str, str]) -> Any:
    return boto3.client("glacier", endpoint_url=server.url, region_name=REGION,
                        aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"],
                        config=botocore.config.Config(retries={"total_max_attempts": 1}))


def _allow(operator: AdminCli, user: str, *actions: str) -> None:
    result = operator("put-user-policy", "--user", user, "--policy-name", "p",
                      "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                          {"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}))
    assert result.returncode == 0, result.stderr


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[tuple[ServerProcess, AdminCli, AdminCli, dict[str, str]]]:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--cache-ttl", "100ms"]).start()
    try:
        operator = AdminCli(server, remote=True)
        for user in ("kim", "lee"):
            assert operator("create-user", user).returncode == 0
        kim = json.loads(operator("create-access-key", "--user", "kim").stdout)["AccessKey"]
        _allow(operator, "kim", "icevault:CreateAccessKey", "icevault:ListAccessKeys",
               "icevault:DisableAccessKey", "icevault:DeleteAccessKey")
        time.sleep(0.3)  # the identity-policy cache (--cache-ttl 100ms)
        as_kim = AdminCli(server, remote=True, profile="kim",
                          credentials=_credentials(tmp_path / "kim-credentials", {"kim": kim}))
        yield server, operator, as_kim, kim
    finally:
        server.stop()


def test_a_key_created_without_a_user_is_the_callers_own(
        setup: tuple[ServerProcess, AdminCli, AdminCli, dict[str, str]]) -> None:
    server, _, as_kim, _ = setup
    glacier = server.client()
    glacier.create_vault(vaultName="keep")
    archive = glacier.upload_archive(vaultName="keep", body=b"precious")["archiveId"]
    made = as_kim("create-access-key")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["AccessKey"]
    assert key["UserName"] == "kim"
    # The new key has kim's rights (no Glacier action), not the root's.
    with pytest.raises(ClientError) as caught:
        _client(server, key).delete_archive(vaultName="keep", archiveId=archive)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as caught:
        _client(server, key).set_vault_access_policy(vaultName="keep", policy={"Policy": "{}"})
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert glacier.describe_vault(vaultName="keep")["NumberOfArchives"] == 1


def test_keys_of_the_root_and_of_other_users_are_the_roots(
        setup: tuple[ServerProcess, AdminCli, AdminCli, dict[str, str]]) -> None:
    server, operator, as_kim, kim = setup
    root_key = server.root_credentials()[0]
    lee = json.loads(operator("create-access-key", "--user", "lee").stdout)["AccessKey"]
    for step in (("create-access-key", "--user", "lee"),
                 ("disable-access-key", root_key), ("delete-access-key", root_key),
                 ("disable-access-key", lee["AccessKeyId"]),
                 ("delete-access-key", lee["AccessKeyId"])):
        result = as_kim(*step)
        assert result.returncode == 1, (step, result.stdout)
        assert "AccessDeniedException" in result.stderr, (step, result.stderr)
    # Nothing changed: the root key and lee's key still work.
    server.client().list_vaults()
    keys = {k["AccessKeyId"]: k for k in json.loads(operator("list-access-keys").stdout)[
        "AccessKeys"]}
    assert keys[root_key]["Status"] == "Active"
    assert keys[lee["AccessKeyId"]]["Status"] == "Active"
    # A user lists, and manages, their own keys.
    listed = json.loads(as_kim("list-access-keys").stdout)["AccessKeys"]
    assert [k["AccessKeyId"] for k in listed] == [kim["AccessKeyId"]]
    spare = json.loads(as_kim("create-access-key").stdout)["AccessKey"]
    assert as_kim("delete-access-key", spare["AccessKeyId"]).returncode == 0


def test_topics_are_the_operators(
        setup: tuple[ServerProcess, AdminCli, AdminCli, dict[str, str]]) -> None:
    server, operator, as_kim, _ = setup
    _allow(operator, "kim", "icevault:CreateTopic", "icevault:ListTopics")
    other = json.loads(operator("create-account", "--account-id", "222233334444").stdout)
    as_other = AdminCli(server, remote=True, profile="other", credentials=_credentials(
        server.data_dir.parent / "other-credentials", {"other": other["AccessKey"]}))
    time.sleep(0.3)
    for cli in (as_kim, as_other):
        result = cli("create-topic", "t", "--url", "http://169.254.169.254/latest/meta-data")
        assert result.returncode == 1, result.stdout
        assert "AccessDeniedException" in result.stderr
        assert "operator" in result.stderr
    assert operator("create-topic", "t", "--account-id", "222233334444", "--url",
                    "https://hooks.example/t").returncode == 0
    # The account sees its topic's ARN, not where it delivers.
    listed = json.loads(as_other("list-topics").stdout)["Topics"]
    assert listed == [{"TopicArn": "arn:aws:sns:us-east-1:222233334444:t"}]


@pytest.mark.parametrize("action", ["CreateTopic", "CreateUser", "PutUserPolicy",
                                    "DisableAccessKey", "ListNotifications"])
def test_missing_parameters_are_a_400(sigv4_server: ServerProcess, action: str) -> None:
    from tests.e2e.test_edge import assert_glacier_error
    from tests.support import raw_request

    answer = raw_request(sigv4_server, "POST", f"/_icevault/admin/{action}", body=b"{}")
    body = assert_glacier_error(answer, 400, "MissingParameterValueException")
    assert action in body["message"]
