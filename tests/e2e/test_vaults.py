"""Vault operations through boto3 and the AWS CLI against a real server."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support import ServerProcess


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = exc.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def test_create_is_idempotent_and_describes(glacier: Any, vault_name: str) -> None:
    first = glacier.create_vault(vaultName=vault_name)
    again = glacier.create_vault(vaultName=vault_name)
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert re.fullmatch(rf"/\d{{12}}/vaults/{vault_name}", first["location"])
    account = first["location"].split("/")[1]
    described = glacier.describe_vault(vaultName=vault_name)
    assert described["VaultName"] == vault_name
    assert described["VaultARN"] == f"arn:aws:glacier:us-east-1:{account}:vaults/{vault_name}"
    assert described["NumberOfArchives"] == 0
    assert described["SizeInBytes"] == 0
    assert "LastInventoryDate" not in described
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", described["CreationDate"])
    headers = described["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-requestid"]
    assert headers["date"]
    # The explicit account id of the caller works like '-'.
    assert glacier.describe_vault(accountId=account, vaultName=vault_name)["VaultName"] == vault_name


def test_list_vaults_paginates_sorted(server: ServerProcess, tmp_path: Any) -> None:
    # A server of its own, so the listing holds exactly the vaults made here.
    own = ServerProcess(tmp_path / "data", auth=server.auth).start()
    try:
        client = own.client()
        names = [f"v{i:02d}" for i in range(13)][::-1]
        for name in names:
            client.create_vault(vaultName=name)
        page = client.list_vaults(limit="5")
        assert [v["VaultName"] for v in page["VaultList"]] == sorted(names)[:5]
        assert page["Marker"].endswith(":vaults/v05")
        page2 = client.list_vaults(limit="5", marker=page["Marker"])
        assert [v["VaultName"] for v in page2["VaultList"]] == sorted(names)[5:10]
        everything = [
            v["VaultName"]
            for p in client.get_paginator("list_vaults").paginate(PaginationConfig={"PageSize": 4})
            for v in p["VaultList"]
        ]
        assert everything == sorted(names)
        last = client.list_vaults(limit="5", marker=page2["Marker"])
        assert [v["VaultName"] for v in last["VaultList"]] == sorted(names)[10:]
        assert "Marker" not in last
    finally:
        own.stop()


def test_default_limit_is_ten(server: ServerProcess, tmp_path: Any) -> None:
    own = ServerProcess(tmp_path / "data", auth=server.auth).start()
    try:
        client = own.client()
        for i in range(11):
            client.create_vault(vaultName=f"x{i:02d}")
        page = client.list_vaults()
        assert len(page["VaultList"]) == 10
        assert page["Marker"].endswith(":vaults/x10")
    finally:
        own.stop()


def test_delete_vault_then_not_found(glacier: Any, vault: str) -> None:
    response = glacier.delete_vault(vaultName=vault)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        glacier.describe_vault(vaultName=vault)
    code, status, message = error_of(exc)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert message.startswith("Vault not found for ARN: arn:aws:glacier:us-east-1:")
    with pytest.raises(ClientError) as exc:
        glacier.delete_vault(vaultName=vault)
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)


def test_waiters(glacier: Any, vault_name: str) -> None:
    glacier.create_vault(vaultName=vault_name)
    glacier.get_waiter("vault_exists").wait(vaultName=vault_name, WaiterConfig={"Delay": 0.1})
    glacier.delete_vault(vaultName=vault_name)
    glacier.get_waiter("vault_not_exists").wait(vaultName=vault_name, WaiterConfig={"Delay": 0.1})


def test_delete_refuses_non_empty_vault(glacier: Any, vault: str) -> None:
    archive = glacier.upload_archive(vaultName=vault, body=b"keep me")
    with pytest.raises(ClientError) as exc:
        glacier.delete_vault(vaultName=vault)
    code, status, message = error_of(exc)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert message.startswith("Vault not empty or recently written to: arn:aws:glacier:")
    glacier.delete_archive(vaultName=vault, archiveId=archive["archiveId"])
    upload = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(1024 * 1024))
    with pytest.raises(ClientError) as exc:
        glacier.delete_vault(vaultName=vault)
    assert error_of(exc)[0] == "InvalidParameterValueException"
    glacier.abort_multipart_upload(vaultName=vault, uploadId=upload["uploadId"])
    glacier.delete_vault(vaultName=vault)


@pytest.mark.parametrize("name", ["bad name", "slash/in", "x" * 256, "ünï"])
def test_invalid_vault_names(glacier: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        glacier.create_vault(vaultName=name)
    code, status, message = error_of(exc)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "vault name" in message


def test_bad_and_foreign_account_ids(glacier: Any, vault: str) -> None:
    with pytest.raises(ClientError) as exc:
        glacier.describe_vault(accountId="1234-5678-9012", vaultName=vault)
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as exc:
        glacier.describe_vault(accountId="000000000001", vaultName=vault)
    assert error_of(exc)[:2] == ("AccessDeniedException", 403)


def test_tags(glacier: Any, vault: str) -> None:
    assert glacier.list_tags_for_vault(vaultName=vault)["Tags"] == {}
    glacier.add_tags_to_vault(vaultName=vault, Tags={"team": "ops", "empty": ""})
    glacier.add_tags_to_vault(vaultName=vault, Tags={"team": "infra"})
    assert glacier.list_tags_for_vault(vaultName=vault)["Tags"] == {"team": "infra", "empty": ""}
    glacier.remove_tags_from_vault(vaultName=vault, TagKeys=["empty", "never-there"])
    assert glacier.list_tags_for_vault(vaultName=vault)["Tags"] == {"team": "infra"}
    with pytest.raises(ClientError) as exc:
        glacier.add_tags_to_vault(vaultName=vault, Tags={"aws:reserved": "x"})
    assert error_of(exc)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(ClientError) as exc:
        glacier.add_tags_to_vault(vaultName=vault, Tags={f"k{i}": "v" for i in range(50)})
    assert error_of(exc)[:2] == ("LimitExceededException", 400)
    assert glacier.list_tags_for_vault(vaultName=vault)["Tags"] == {"team": "infra"}
    glacier.add_tags_to_vault(vaultName=vault, Tags={f"k{i}": "v" for i in range(49)})
    assert len(glacier.list_tags_for_vault(vaultName=vault)["Tags"]) == 50
    with pytest.raises(ClientError) as exc:
        glacier.list_tags_for_vault(vaultName=vault + "-missing")
    assert error_of(exc)[:2] == ("ResourceNotFoundException", 404)


def test_aws_cli_vault_round_trip(server: ServerProcess, vault_name: str) -> None:
    created = server.aws("glacier", "create-vault", "--account-id", "-", "--vault-name", vault_name)
    assert json.loads(created.stdout)["location"].endswith(f"/vaults/{vault_name}")
    described = json.loads(
        server.aws("glacier", "describe-vault", "--account-id", "-", "--vault-name", vault_name).stdout
    )
    assert described["VaultName"] == vault_name
    listed = json.loads(server.aws("glacier", "list-vaults", "--account-id", "-").stdout)
    assert vault_name in [v["VaultName"] for v in listed["VaultList"]]
    server.aws("glacier", "delete-vault", "--account-id", "-", "--vault-name", vault_name)
    missing = server.aws(
        "glacier", "describe-vault", "--account-id", "-", "--vault-name", vault_name, check=False
    )
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr


def test_restart_keeps_everything(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    client = fresh_server.client()
    client.create_vault(vaultName="keep")
    client.add_tags_to_vault(vaultName="keep", Tags={"a": "1"})
    archive = client.upload_archive(vaultName="keep", body=b"durable bytes")
    fresh_server.restart()
    client = fresh_server.client()
    described = client.describe_vault(vaultName="keep")
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (1, 13)
    assert client.list_tags_for_vault(vaultName="keep")["Tags"] == {"a": "1"}
    assert archive["archiveId"]
